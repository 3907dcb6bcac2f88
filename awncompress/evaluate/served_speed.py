"""Speed where the exports are served: ONNX files in onnxruntime, GGUF files in llama.cpp, each width
against the full-width file of the same format and quant, beside the FLOP and weight-byte ratios.

Measures (the units engines report):

* onnxruntime: forward latency at batch 1 and batch 32 × ``seq_len`` tokens (ms), against the FLOP
  ratio at ``seq_len`` tokens;
* llama.cpp: prompt processing, ``prompt_tokens`` tokens in one batch, and generation, ``gen_tokens``
  tokens one at a time, both from an empty context (tokens/s, as llama-bench's pp512 / tg128);
  prompt speed-up against the FLOP ratio (the LM head runs on the last position only, as llama.cpp
  computes it), generation speed-up against the ratio of file bytes (decoding reads every weight
  once per token).

Files of one engine are timed round-robin (evaluate/latency.py), so drift on a shared CPU hits every
width alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional

from torch import nn

from ..checkpoint.provenance import read_provenance
from ..model.flops import count_flops
from ..serve.speed import LlamaCppPasses, onnx_pass
from .latency import max_positions, round_robin, spread


@dataclass
class ServedSpeedConfig:
    """How served exports are timed: ``repeats`` timed runs of each measure after ``warmup`` untimed
    ones, on ``threads`` threads."""

    threads: int = 2
    repeats: int = 5
    warmup: int = 1
    batches: tuple[int, ...] = (1, 32)
    seq_len: int = 64
    prompt_tokens: int = 512
    gen_tokens: int = 128


def file_bytes(folder: Path, record: dict) -> int:
    """Bytes of an engine file (with an ONNX file's external data, if any)."""
    total = (folder / record["file"]).stat().st_size
    if record.get("format") == "onnx" and (record.get("onnx") or {}).get("external_data"):
        total += sum(p.stat().st_size for p in folder.iterdir() if p.suffix == ".data")
    return total


def _group(folders: Mapping[str, Path]) -> dict[tuple, dict[str, tuple[Path, dict]]]:
    """{(format, quant): {label: (folder, record)}}."""
    groups: dict[tuple, dict[str, tuple[Path, dict]]] = {}
    for label, folder in folders.items():
        record = read_provenance(folder)
        key = (record["format"], (record.get("gguf") or {}).get("quant"))
        groups.setdefault(key, {})[label] = (folder, record)
    return groups


def _flops(model: nn.Module, widths: list[int], seq_len: int, head_positions: Optional[int] = None) -> float:
    count = count_flops(model, seq_len, ffn_widths=widths)
    if head_positions is None:
        return float(count.total)
    return float(count.total - count.head + count.head * head_positions / seq_len)


def _measures(fmt: str, cfg: ServedSpeedConfig) -> list[tuple[str, str, int]]:
    """(measure name, unit, batch size for ONNX or tokens for llama.cpp) of one format."""
    if fmt == "onnx":
        return [(f"batch {b} × {cfg.seq_len} tokens", "ms", b) for b in cfg.batches]
    return [
        (f"prompt {cfg.prompt_tokens} tokens", "tokens/s", cfg.prompt_tokens),
        (f"generate {cfg.gen_tokens} tokens", "tokens/s", cfg.gen_tokens),
    ]


def _time_group(entries: dict[str, tuple[Path, dict]], fmt: str, cfg: ServedSpeedConfig) -> dict[tuple, list[float]]:
    """{(label, measure): sorted ms} for every file of one format/quant group."""
    times: dict[tuple, list[float]] = {}
    if fmt == "onnx":
        for name, _, batch in _measures(fmt, cfg):
            passes = {
                (label, name): onnx_pass(folder / rec["file"], batch, cfg.seq_len, cfg.threads)
                for label, (folder, rec) in entries.items()
            }
            times.update(round_robin(passes, cfg.warmup, cfg.repeats))
        return times
    opened = {
        label: LlamaCppPasses(folder / rec["file"], cfg.prompt_tokens, cfg.gen_tokens, cfg.threads)
        for label, (folder, rec) in entries.items()
    }
    try:
        for name, _, _ in _measures(fmt, cfg):
            which = "prompt" if name.startswith("prompt") else "generate"
            passes = {(label, name): getattr(p, which) for label, p in opened.items()}
            times.update(round_robin(passes, cfg.warmup, cfg.repeats))
    finally:
        for p in opened.values():
            p.close()
    return times


def _row(
    model: nn.Module,
    label: str,
    entry: tuple[Path, dict],
    measure: tuple[str, str, int],
    ms: list[float],
    ref: Optional[tuple[Path, dict, list[float]]],
    cfg: ServedSpeedConfig,
) -> dict[str, Any]:
    """One file's row for one measure, with its speed-up and ratios against ``ref`` (folder, record, ms)."""
    (folder, record), (name, unit, size) = entry, measure
    fmt = record["format"]
    widths = [int(w) for w in record["layer_widths"]]
    stats = spread(ms)
    value = stats["median_ms"] if unit == "ms" else size / (stats["median_ms"] / 1000)  # size: tokens
    row = {
        "runtime": "onnxruntime" if fmt == "onnx" else "llama.cpp",
        "format": fmt,
        "quant": (record.get("gguf") or {}).get("quant"),
        "export": label,
        "width_fraction": record.get("width_fraction"),
        "intermediate_size": widths[0] if len(set(widths)) == 1 else widths,
        "measure": name,
        "unit": unit,
        "value": round(value, 4),
        **stats,
        "file_bytes": file_bytes(folder, record),
    }
    if ref is None:
        return row
    ref_folder, ref_record, ref_ms = ref
    speedup = spread(ref_ms)["median_ms"] / stats["median_ms"]  # same work, so time ratio = speed ratio
    # a prompt computes the LM head on its last position only; a generated token is one position
    seq, head = {"ms": (cfg.seq_len, None), "prompt": (cfg.prompt_tokens, 1), "generate": (1, None)}[
        "ms" if unit == "ms" else name.split()[0]
    ]
    flops = _flops(model, widths, seq, head) / _flops(model, ref_record["layer_widths"], seq, head)
    row.update(
        speedup=round(speedup, 4),
        flops_ratio=round(flops, 4),
        bytes_ratio=round(row["file_bytes"] / file_bytes(ref_folder, ref_record), 4),
    )
    return row


def _within_positions(cfg: ServedSpeedConfig, limit: Optional[int]) -> ServedSpeedConfig:
    """Sequence lengths a model with ``limit`` positions can take (GPT-2's learned positions end there)."""
    if limit is None:
        return cfg
    prompt = min(cfg.prompt_tokens, limit * 3 // 4)
    return replace(
        cfg, seq_len=min(cfg.seq_len, limit), prompt_tokens=prompt, gen_tokens=min(cfg.gen_tokens, limit - prompt)
    )


def served_speed(model: nn.Module, folders: Mapping[str, Path], cfg: Optional[ServedSpeedConfig] = None) -> dict:
    """Time every served export in ``folders`` ({label: folder}) in its engine; return the report's
    ``served`` entry: {"config", "rows"}.

    ``model``: the model the exports were cut from (its config and FFNs give the FLOP counts). In each
    (format, quant) group the file whose every layer keeps the full ``d_ff`` is the reference the
    others' speed-ups and ratios are taken against (label it "dense"); without one, rows have no
    speed-up.
    """
    cfg = _within_positions(cfg or ServedSpeedConfig(), max_positions(model.config))
    rows = []
    groups = _group(folders)
    for (fmt, _quant), entries in groups.items():
        times = _time_group(entries, fmt, cfg)
        full = [lb for lb, (_, rec) in entries.items() if all(int(w) == int(rec["d_ff"]) for w in rec["layer_widths"])]
        for measure in _measures(fmt, cfg):
            ref = (*entries[full[0]], times[(full[0], measure[0])]) if full else None
            for label, entry in entries.items():
                rows.append(_row(model, label, entry, measure, times[(label, measure[0])], ref, cfg))
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}
    return {"config": {**config, "runtimes": runtime_versions(groups)}, "rows": rows}


def runtime_versions(groups: Mapping[tuple, Any]) -> dict[str, str]:
    """The engine versions that timed ``groups``."""
    out = {}
    formats = {fmt for fmt, _ in groups}
    if "onnx" in formats:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    if "gguf" in formats:
        from ..serve.llama_cpp import runtime_version

        out["llama.cpp"] = runtime_version()
    return out
