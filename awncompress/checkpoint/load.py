"""Load awncompress exports: uniform, per-layer, and nested (any width sliced lazily from disk)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import torch
import transformers
from safetensors import SafetensorError, safe_open
from torch import nn

from ..errors import NotAnExportError, UnsafeCheckpointError, WidthError, first_line
from ..files.paths import check_entries, contained
from ..files.readers import check_folder_files, check_regular, load_json
from ..model.families import attach_spec, find_ffns, set_config_widths
from ..model.flop_targets import pick_for_flops, pick_per_layer_for_flops
from ..model.growth import mark_base_widths
from ..model.head_cuts import Heads, full_units, resolve_heads, truncate_heads_
from ..model.heads import find_heads, has_head_spec
from ..model.surgery import Widths, resolve_widths, truncate_
from .provenance import full_widths_of, layer_caps, read_provenance, recorded_specs, refuse_served

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_safe_checkpoint(path: Union[str, Path]) -> Path:
    """Refuse pickled checkpoints: awncompress never unpickles (arbitrary code execution)."""
    path = Path(path)
    if path.is_file() and path.suffix in PICKLE_SUFFIXES:
        raise UnsafeCheckpointError(
            f"{path} is a pickle checkpoint; awncompress loads safetensors only "
            "(convert it with transformers' save_pretrained)"
        )
    if (
        path.is_dir()
        and not any(path.glob("*.safetensors"))
        and any(p.suffix in PICKLE_SUFFIXES for p in path.iterdir())
    ):
        raise UnsafeCheckpointError(
            f"{path} holds only pickle weights (.bin/.pt); awncompress loads safetensors only "
            "(re-save with safe_serialization)"
        )
    return path


def _model_class(record: dict, config: Any, override: Optional[type]) -> type:
    if override is not None:
        return override
    name = record.get("architecture") or (config.architectures or [None])[0]
    cls = getattr(transformers, name, None) if name else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise NotAnExportError(f"architecture {name!r} is not a transformers model class; pass model_class=")
    if not isinstance(config, cls.config_class):
        raise NotAnExportError(
            f"the export's config.json is a {type(config).__name__}, not what {name} is built from "
            f"({cls.config_class.__name__})"
        )
    return cls


def _check_config(folder: Path, record: dict, config: Any, specs: tuple, widths: list[int]) -> None:
    """The config must agree with the record before anything is built from it (a tampered width would
    otherwise allocate whatever it says)."""
    if record.get("model_type") and getattr(config, "model_type", None) != record["model_type"]:
        raise NotAnExportError(
            f"{folder}/config.json says model_type {config.model_type!r}, its awncompress.json {record['model_type']!r}"
        )
    for spec in specs:
        value = getattr(config, spec.d_ff_attr, None)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise NotAnExportError(f"{folder}/config.json: {spec.d_ff_attr} = {value!r} is not a width")
    if len(specs) == 1 and getattr(config, specs[0].d_ff_attr) != max(int(w) for w in record["layer_widths"]):
        raise NotAnExportError(
            f"{folder}/config.json: {specs[0].d_ff_attr} = {getattr(config, specs[0].d_ff_attr)} but the "
            f"export's widths are {record['layer_widths']}"
        )


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files of a folder: ``model.safetensors``, or the files its index names (which must
    lie inside the folder)."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = load_json(index, "index", NotAnExportError)["weight_map"]
            names = sorted(set(weight_map.values()))
        except NotAnExportError as exc:
            raise NotAnExportError(f"{index} is not a safetensors index (JSON with a weight_map): {exc}") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NotAnExportError(
                f"{index} is not a safetensors index (JSON with a weight_map): {first_line(exc)}"
            ) from None
        if not all(isinstance(n, str) for n in names):
            raise NotAnExportError(f"{index}: weight_map values must be file names")
        files = [check_regular(contained(folder, n, str(index)), "weight file", NotAnExportError) for n in names]
        if not all(f.suffix == ".safetensors" for f in files):
            raise NotAnExportError(f"{index} names files that are not .safetensors")
        return files
    single = folder / "model.safetensors"
    if not single.exists():
        raise NotAnExportError(f"{folder} has no model.safetensors")
    return [check_regular(contained(folder, single.name, str(folder)), "weight file", NotAnExportError)]


def _ffn_param_roles(model: nn.Module) -> dict[str, str]:
    """FFN parameter name → how to cut it: "fused" (rows j and d_ff + j of a [gate; up] projection)
    or "leading" (the first rows / columns)."""
    names = {id(m): n for n, m in model.named_modules()}
    roles = {}
    for block in find_ffns(model):
        for module in block.modules():
            role = "fused" if block.kind == "fused" and module is block.up else "leading"
            prefix = names[id(module)]
            for pn, _ in module.named_parameters(recurse=False):
                roles[f"{prefix}.{pn}" if prefix else pn] = role
    return roles


def _head_param_roles(model: nn.Module) -> dict[str, str]:
    """Attention parameter name → how to cut it: "thirds" (GPT-2's fused [q; k; v], last axis) or
    "leading" (the first rows / columns: units are contiguous blocks, most important first)."""
    names = {id(m): n for n, m in model.named_modules()}
    roles = {}
    for block in find_heads(model):
        for module in block.projections():
            role = "thirds" if block.spec.fused_qkv and module is block.q else "leading"
            for pn, _ in module.named_parameters(recurse=False):
                roles[f"{names[id(module)]}.{pn}"] = role
    return roles


def _cut(view: Any, have: tuple, want: tuple, role: str) -> torch.Tensor:
    """The leading part of a tensor on disk; for a fused projection both halves' leading rows, for a
    fused [q; k; v] each third's leading columns."""
    if role == "thirds" and have[-1] != want[-1]:
        third, keep = have[-1] // 3, want[-1] // 3
        lead = tuple(slice(0, w) for w in want[:-1])
        return torch.cat([view[(*lead, slice(i * third, i * third + keep))] for i in range(3)], dim=-1)
    if role == "fused" and have[0] != want[0]:
        half, keep = have[0] // 2, want[0] // 2
        rest = tuple(slice(0, w) for w in want[1:])
        return torch.cat([view[(slice(0, keep), *rest)], view[(slice(half, half + keep), *rest)]])
    return view[tuple(slice(0, w) for w in want)]


def _read_file(file: Path, target: dict, sliceable: dict[str, str], state: dict, unexpected: list[str]) -> None:
    """Tensors of one safetensors file into ``state`` (FFN tensors in ``sliceable`` cut to the target shape)."""
    try:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                if key not in target:
                    unexpected.append(key)
                    continue
                want = tuple(target[key].shape)
                view = f.get_slice(key)
                have = tuple(view.get_shape())
                if have == want:
                    state[key] = f.get_tensor(key)
                elif key in sliceable and len(have) == len(want) and all(h >= w for h, w in zip(have, want)):
                    state[key] = _cut(view, have, want, sliceable[key])
                else:
                    raise NotAnExportError(
                        f"{file.name}: tensor {key} has shape {list(have)}, the model expects {list(want)}"
                    )
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        if isinstance(exc, NotAnExportError):
            raise
        raise NotAnExportError(f"{file} is not a readable safetensors file: {first_line(exc)}") from None


@torch.no_grad()
def _load_weights(model: nn.Module, folder: Path, slice_ffn: bool) -> None:
    """Copy the safetensors weights into ``model``; FFN tensors may be sliced to the model's sizes.

    Slicing reads only the leading rows/columns from disk (``get_slice``), never the full tensor.
    """
    target = model.state_dict()
    sliceable = _ffn_param_roles(model) if slice_ffn else {}
    if slice_ffn and has_head_spec(model):
        sliceable.update(_head_param_roles(model))
    state: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for file in safetensors_files(folder):
        _read_file(file, target, sliceable, state, unexpected)
    if unexpected:
        raise NotAnExportError(f"{folder}: weights the model does not have: {', '.join(unexpected[:5])}")
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    missing = [k for k in target if k not in state and k not in tied]
    if missing:
        raise NotAnExportError(f"{folder}: missing weights: {', '.join(missing[:5])}")


def _build(cls: type, config: Any, specs: tuple, widths: list[int]) -> nn.Module:
    """An instance of ``cls`` whose FFN layers have ``widths`` neurons (weights to be loaded).

    The config records each kind of FFN's largest width: exact for uniform widths, an upper bound
    per layer. One kind of FFN is built at its largest width directly (no full-width detour).
    """
    if len(specs) == 1:
        setattr(config, specs[0].d_ff_attr, max(widths))
    model = cls(config)
    attach_spec(model, specs)  # the specs it was exported with, for every later step
    blocks = find_ffns(model)
    if len(blocks) != len(widths):
        raise NotAnExportError(
            f"the export records {len(widths)} layer widths but {cls.__name__} has {len(blocks)} FFN layers"
        )
    for block, w in zip(blocks, widths):
        if w > block.width:
            raise NotAnExportError(
                f"the export records width {w} for {block.layer}, wider than its config allows ({block.width})"
            )
        if w != block.width:
            block.select_(torch.arange(w))
    set_config_widths(model.config, blocks)
    return model


def _from_transformers(cls: type, config: Any, folder: Path, specs: tuple, widths: list[int]) -> nn.Module:
    """Mixture-of-experts checkpoints store experts under other names than the model holds them
    (transformers converts them on load), so they load through ``from_pretrained`` and are cut after."""
    safetensors_files(folder)  # the index's file names must stay inside the folder
    try:
        model = cls.from_pretrained(folder, config=config, use_safetensors=True)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise NotAnExportError(f"{folder} could not be loaded: {first_line(exc)}") from None
    attach_spec(model, specs)
    if [b.width for b in find_ffns(model)] != widths:
        truncate_(model, widths)
    return model


def _check_shape(folder: Path, cls: type, config: Any, specs: tuple, full: list[int]) -> None:
    """Build the model on the meta device (no memory) and check its FFN layers against the record."""
    try:
        with torch.device("meta"):
            probe = cls(config)
    except Exception as exc:  # noqa: BLE001 - a config that cannot even build is not an export
        raise NotAnExportError(f"{folder}/config.json does not build a {cls.__name__}: {first_line(exc)}") from None
    attach_spec(probe, specs)
    widths = [b.width for b in find_ffns(probe)]
    if len(widths) != len(full) or any(w > f for w, f in zip(widths, full)):
        raise NotAnExportError(f"{folder}/config.json builds FFN widths {widths}, not the export's {full}")


def load_pretrained(
    path: Union[str, Path],
    width: Optional[Union[Widths, str]] = None,
    *,
    heads: Optional[Heads] = None,
    flops: Optional[float] = None,
    per_layer: bool = False,
    seq_len: Optional[int] = None,
    model_class: Optional[type] = None,
    dtype: Optional[torch.dtype] = None,
) -> nn.Module:
    """Load an awncompress export as a transformers model in eval mode.

    Args:
        path: an export folder (uniform, per-layer or nested).
        width: nested exports only: an int (neurons), a fraction of d_ff, a per-layer list of ints,
            or "learned" for the per-layer widths the fine-tune learned; None = full width.
        heads: nested exports with ordered heads only: query heads (int), a fraction of the heads,
            or one count per layer; whole KV groups are kept.
        flops: nested exports with ordered heads only, instead of ``width``/``heads``: the fraction of
            the full model's FLOPs (at ``seq_len`` tokens: default the run's mean example length as
            recorded, else 128) to keep; the (width, heads) pair is picked from the recorded profiles
            (see ``flop_targets.pick_for_flops``); ``per_layer=True`` lets each layer take its own pair
            from its own learned rates (``pick_per_layer_for_flops``).
        model_class: the transformers class to build (default: the one recorded at export).
        dtype: cast the loaded model to this dtype.

    Example:
        >>> model = load_pretrained("out/nested", width=0.25)
        >>> model = load_pretrained("out/nested-heads", flops=0.3)
    """
    folder = check_safe_checkpoint(path)
    record = read_provenance(folder)
    refuse_served(folder, record)
    check_entries(folder, str(folder))
    check_folder_files(folder, "export", NotAnExportError)
    fmt = record["format"]
    if (width is not None or heads is not None or flops is not None) and fmt != "nested":
        raise WidthError(
            f"{folder} is a {fmt} export with fixed widths; width=, heads= and flops= apply to nested exports only"
        )
    if (heads is not None or flops is not None) and not record.get("layer_heads"):
        raise WidthError(f"{folder} was exported without ordered heads; heads= and flops= need a run with heads")
    if flops is not None and (width is not None or heads is not None):
        raise WidthError("give flops= or width=/heads=, not both")
    specs = recorded_specs(record)
    # A class the user names brings its own config class (its family may be unknown to AutoConfig).
    try:
        config = (model_class.config_class if model_class is not None else transformers.AutoConfig).from_pretrained(
            folder
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotAnExportError(f"{folder}/config.json cannot be read as a model config: {first_line(exc)}") from None
    cls = _model_class(record, config, model_class)
    stored = [int(w) for w in record["layer_widths"]]
    _check_config(folder, record, config, specs, stored)
    caps = layer_caps(record)
    # The config holds one FFN size: with grown layers, the widest one's (each layer is cut after).
    _check_shape(folder, cls, config, specs, [max(caps)] * len(caps) if record.get("grown_widths") else caps)
    widths = _widths(folder, record, width, stored)
    if any(s.experts for s in specs):
        model = _from_transformers(cls, config, folder, specs, widths)
    else:
        model = _build(cls, config, specs, full_widths_of(record) if flops is not None else widths)
        if flops is not None:
            length = seq_len or int(record.get("flops_seq_len") or 128)
            if per_layer:
                profile = record.get("profile") or {}
                chosen = pick_per_layer_for_flops(
                    model, flops, length, profile.get("normalised_rates") or [], profile.get("head_rates") or []
                )
                truncate_(model, chosen.widths)
                heads = chosen.heads
            else:
                pick = pick_for_flops(model, flops, length, *_mean_rates(record))
                truncate_(model, pick.width)
                heads = pick.heads
        if record.get("layer_heads"):
            truncate_heads_(model, record["layer_heads"] if heads is None else _head_counts(model, record, heads))
        _load_weights(model, folder, slice_ffn=fmt == "nested")
    if record.get("grown_widths"):
        mark_base_widths(model, full_widths_of(record))
    if dtype is not None:
        model.to(dtype)
    return model.eval()


def _widths(folder: Path, record: dict, width: Optional[Union[Widths, str]], stored: list[int]) -> list[int]:
    if width is None:
        return stored
    if width == "learned":
        profile = record.get("profile") or {}
        if "active_widths" not in profile:
            raise NotAnExportError(f"{folder} records no learned per-layer widths")
        return [int(w) for w in profile["active_widths"]]
    fmt = record["format"]
    if fmt != "nested":
        return resolve_widths(width, stored, len(stored))
    return resolve_widths(width, full_widths_of(record), len(stored), caps=layer_caps(record))


def _head_counts(model: nn.Module, record: dict, heads: Heads) -> list[int]:
    """Query heads per layer for ``heads`` (as ``resolve_heads`` reads it) on the full-headed model."""
    group = int(record["head_group"])
    return [u * group for u in resolve_heads(heads, group, full_units(model))]


def _mean_rates(record: dict) -> tuple[Optional[float], Optional[float]]:
    profile = record.get("profile") or {}
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return mean(profile.get("normalised_rates") or []), mean(profile.get("head_rates") or [])
