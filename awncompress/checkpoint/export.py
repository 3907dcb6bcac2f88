"""Write loadable checkpoints: one folder per uniform width, per-layer widths, or one nested folder.

All formats are safetensors + config (+ tokenizer), an ``awncompress.json`` provenance file and a
model card; every folder is written atomically (see atomic.py). Exports take a *folded* (vanilla)
model whose neurons are already in importance order.
"""

from __future__ import annotations

import copy
import datetime as _dt
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from safetensors import SafetensorError
from torch import nn

from ..errors import NotAnExportError, UnsupportedModelError
from ..files.atomic import atomic_dir, atomic_write, check_writable, write_failure
from ..files.manifest import only_kept
from ..model.families import attach_spec, find_ffns, specs_for
from ..model.head_cuts import Heads, truncate_heads_
from ..model.heads import find_heads, layer_heads, set_config_heads
from ..model.surgery import Width, full_widths, layer_widths, resolve_widths, truncate_
from ..version import __version__
from .provenance import read_provenance, write_provenance


def is_export(folder: Path) -> bool:
    """Whether ``folder`` is an awncompress export with a valid record, or one that ``--overwrite``
    emptied of awncompress's files (so ``overwrite`` may replace what awncompress wrote in it)."""
    if only_kept(folder):
        return True
    try:
        read_provenance(folder)
    except NotAnExportError:
        return False
    return True


def _provenance(
    model: nn.Module,
    fmt: str,
    widths: list[int],
    full: list[int],
    source: Optional[str],
    method: str,
    extra: Optional[dict],
    grown: Optional[list[int]] = None,
) -> dict[str, Any]:
    config = model.config
    specs = specs_for(model)
    record: dict[str, Any] = {
        "format": fmt,
        "awncompress_version": __version__,
        "source_model": source or getattr(config, "_name_or_path", None) or None,
        "method": method,
        "model_type": config.model_type,
        "architecture": type(model).__name__,
        "ffn_spec": specs[0].to_dict() if len(specs) == 1 else [s.to_dict() for s in specs],
        "d_ff": max(full),
        "layer_widths": widths,
        "width_fraction": round(sum(widths) / sum(full), 6),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if len(set(full)) > 1:
        record["full_widths"] = full  # FFNs of several kinds (e.g. experts and a shared expert)
    if grown is not None and any(g > f for g, f in zip(grown, full)):
        record["grown_widths"] = grown  # layers that grew past their pretrained width (growth.py)
    if fmt == "uniform" and len(set(widths)) == 1:
        record["width"] = widths[0]
    record.update(extra or {})
    return record


def _check_loadable(
    folder: Path, saved: nn.Module, per_layer: bool, widths: list[int], heads: Optional[list[int]]
) -> None:
    """Refuse to finish an export whose own config does not rebuild the saved shapes.

    The model class is rebuilt on the meta device from the config just written (exports with a width
    per layer, per-layer or grown, then cut as ``load_pretrained`` cuts them, and head-cut exports
    the config cannot describe cut to ``heads``); any tensor whose shape differs means a width the
    config cannot say, i.e. a checkpoint vanilla transformers (or the loader) could not load.
    """
    config = type(saved.config).from_pretrained(folder)
    try:
        with torch.device("meta"):  # shapes only, no memory
            rebuilt = type(saved)(config)
    except Exception:  # noqa: BLE001 - a class that cannot be built on meta is built for real
        rebuilt = type(saved)(config)
    if per_layer:
        attach_spec(rebuilt, specs_for(saved))
        truncate_(rebuilt, widths)
    if heads is not None:
        truncate_heads_(rebuilt, heads)
    want = {k: tuple(v.shape) for k, v in saved.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    bad = [k for k in want if got.get(k) != want[k]]
    if bad:
        attrs = sorted({s.d_ff_attr for s in specs_for(saved)})
        raise UnsupportedModelError(
            f"refusing to write {folder.name}: {type(saved).__name__} rebuilt from its exported config "
            f"has {bad[0]} of shape {list(got.get(bad[0], []))}, not {list(want[bad[0]])}; the config "
            f"attribute(s) {', '.join(attrs)} do not set this family's FFN width"
        )


def _save(model: nn.Module, folder: Path, record: dict, tokenizer: Any) -> None:
    try:
        model.save_pretrained(folder, safe_serialization=True)
    except SafetensorError as exc:
        raise write_failure(exc, folder) from None
    _check_loadable(
        folder,
        model,
        record["format"] == "per-layer" or "grown_widths" in record,
        record["layer_widths"],
        None if record.get("loads_with", "transformers") == "transformers" else record.get("layer_heads"),
    )
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    write_provenance(folder, record)
    (folder / "README.md").write_text(model_card(record))


def export_uniform(
    model: nn.Module,
    out: Union[str, Path],
    width: Width,
    *,
    tokenizer: Any = None,
    source: Optional[str] = None,
    method: str = "awn",
    multiple: Optional[int] = None,
    overwrite: bool = False,
    extra: Optional[dict] = None,
    heads: Optional[Heads] = None,
) -> Path:
    """Save ``model`` truncated to one width (int neurons or fraction of d_ff) to ``out``.

    The folder loads with plain ``AutoModelFor*.from_pretrained`` (the config's FFN size is set).
    ``heads`` (query heads, or a fraction; the model's heads must be ordered) also cuts attention
    heads: Llama-family configs say the cut, so those still load in vanilla transformers; BERT and
    GPT-2 derive the head size from the head count, so those load with ``awncompress.load_pretrained``
    (``awncompress.json`` says which in ``loads_with``). ``model`` itself is not modified.
    """
    return _export_truncated(model, out, width, "uniform", multiple, tokenizer, source, method, overwrite, extra, heads)


def export_per_layer(
    model: nn.Module,
    out: Union[str, Path],
    widths: Sequence[int],
    *,
    tokenizer: Any = None,
    source: Optional[str] = None,
    method: str = "awn",
    overwrite: bool = False,
    extra: Optional[dict] = None,
    heads: Optional[Heads] = None,
) -> Path:
    """Save ``model`` with a different width per FFN layer; load it with ``awncompress.load_pretrained``.

    Vanilla configs hold one FFN size, so the config keeps the largest width (see ``truncate_``)
    and ``awncompress.json`` records the list. ``heads``: as for ``export_uniform``, or per layer.
    """
    return _export_truncated(
        model, out, list(widths), "per-layer", None, tokenizer, source, method, overwrite, extra, heads
    )


def _cut_heads(model: nn.Module, small: nn.Module, heads: Heads, fmt: str) -> dict:
    """Cut ``small``'s heads; the record keys that describe the cut and who can load it."""
    full = max(layer_heads(model))
    group = find_heads(model)[0].group
    cut = truncate_heads_(small, heads)
    vanilla = fmt == "uniform" and set_config_heads(small.config, find_heads(small))
    return {
        "layer_heads": cut,
        "full_heads": full,
        "head_group": group,
        "loads_with": "transformers" if vanilla else "awncompress",
    }


def _export_truncated(
    model: nn.Module,
    out: Union[str, Path],
    widths: Any,
    fmt: str,
    multiple: Optional[int],
    tokenizer: Any,
    source: Optional[str],
    method: str,
    overwrite: bool,
    extra: Optional[dict],
    heads: Optional[Heads] = None,
) -> Path:
    """Truncate a copy of ``model`` to ``widths`` (and ``heads``) and save it as ``fmt``; ``model`` is not modified."""
    out = check_writable(out, overwrite, is_export)
    if fmt == "per-layer" and any(b.kind == "experts" for b in find_ffns(model)):
        raise UnsupportedModelError(
            "per-layer exports of mixture-of-experts models are not supported: a MoE config "
            "holds one expert width, which every layer's experts share"
        )
    full, grown = full_widths(find_ffns(model)), layer_widths(model)
    small = copy.deepcopy(model)
    resolved = truncate_(small, widths, multiple=multiple)
    if heads is not None:
        extra = {**(extra or {}), **_cut_heads(model, small, heads, fmt)}
    with atomic_dir(out, overwrite, is_export) as tmp:
        _save(small, tmp, _provenance(small, fmt, resolved, full, source, method, extra, grown), tokenizer)
    return out


def export_nested(
    model: nn.Module,
    out: Union[str, Path],
    *,
    widths: Sequence[float] = (),
    profile: Optional[dict] = None,
    tokenizer: Any = None,
    source: Optional[str] = None,
    method: str = "awn",
    overwrite: bool = False,
    extra: Optional[dict] = None,
    heads: bool = False,
) -> Path:
    """Save the folded, ordered full-width model once; any width is sliced from it at load time.

    ``widths``: the width fractions this run recommends (recorded as the width table);
    ``profile``: the learned per-layer profile (see ``adaptive.profile_summary``), recorded too.
    ``heads``: the model's attention heads are ordered too (converted with heads), so
    ``load_pretrained(path, heads=...)`` or ``flops=...`` may cut them.
    """
    out = check_writable(out, overwrite, is_export)
    full, grown = full_widths(find_ffns(model)), layer_widths(model)
    table = {}
    for w in widths:
        per_layer = resolve_widths(float(w), full, len(full))
        table[f"{w:g}"] = per_layer[0] if len(set(per_layer)) == 1 else per_layer
    record_extra = {"width_table": table, **({"profile": profile} if profile else {}), **(extra or {})}
    if heads:
        blocks = find_heads(model)
        record_extra.update(
            layer_heads=[b.n_heads for b in blocks],
            full_heads=max(b.n_heads for b in blocks),
            head_group=blocks[0].group,
        )
    if any(g > f for g, f in zip(grown, full)):  # per-layer widths: the config cannot say them
        record_extra["loads_with"] = "awncompress"
    with atomic_dir(out, overwrite, is_export) as tmp:
        _save(model, tmp, _provenance(model, "nested", grown, full, source, method, record_extra, grown), tokenizer)
    return out


def update_provenance(folder: Union[str, Path], **fields: Any) -> dict:
    """Add fields (e.g. measured metrics, FLOPs) to an export's awncompress.json and rewrite its card."""
    folder = Path(folder)
    record = read_provenance(folder)
    record.update(fields)
    write_provenance(folder, record)
    atomic_write(folder / "README.md", model_card(record))
    return record


def model_card(record: dict) -> str:
    """A short Hugging Face model card (README.md) for an export."""
    fmt = record["format"]
    source = record.get("source_model") or "a local model"
    widths = record["layer_widths"]
    if fmt == "uniform":
        width_line = f"FFN width {widths[0]} of {record['d_ff']} ({record['width_fraction']:.1%})"
        arch = record["architecture"]
        load = f'from transformers import {arch}\nmodel = {arch}.from_pretrained("PATH")'
    elif fmt == "per-layer":
        width_line = f"per-layer FFN widths {widths} of {record['d_ff']} ({record['width_fraction']:.1%} on average)"
        load = 'import awncompress\nmodel = awncompress.load_pretrained("PATH")'
    else:
        width_line = f"nested: full width {record['d_ff']}, any width materialised at load time"
        load = 'import awncompress\nmodel = awncompress.load_pretrained("PATH", width=0.5)'
    if record.get("layer_heads") and fmt != "nested":
        heads = record["layer_heads"]
        width_line += f"; attention heads {heads[0] if len(set(heads)) == 1 else heads} of {record['full_heads']}"
        if record.get("loads_with") == "awncompress":
            load = 'import awncompress\nmodel = awncompress.load_pretrained("PATH")'
    lines = [
        "---",
        "library_name: transformers",
        *([f"base_model: {source}"] if record.get("source_model") else []),
        "tags:",
        "- awncompress",
        "- pruned",
        "- adaptive-width",
        "---",
        "",
        f"# {source} — {fmt} FFN-width export",
        "",
        f"Made by awncompress {record['awncompress_version']} from {source} with method `{record['method']}`: "
        f"{width_line}.",
        "",
    ]
    facts = []
    if "flops" in record:
        facts.append(f"| FLOPs per example | {record['flops']:,} |")
    if "flops_ratio" in record:
        facts.append(f"| FLOPs vs dense | {record['flops_ratio']:.3f} |")
    if "params" in record:
        facts.append(f"| parameters | {record['params']:,} |")
    if "metric" in record:
        m = record["metric"]
        facts.append(f"| {m['name']} ({m.get('data', 'eval data')}) | {m['value']:.4g} |")
    if facts:
        lines += ["| | |", "|---|---|", *facts, ""]
    lines += ["## Load", "", "```python", load, "```", ""]
    return "\n".join(lines)
