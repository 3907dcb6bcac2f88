"""A convert run's served exports (``export.formats`` besides hf): written per width, each checked in
its engine, then timed there against a full-width file of the same format and quant."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..checkpoint.provenance import read_provenance
from ..config.recipe import Recipe
from ..evaluate.served_speed import ServedSpeedConfig, served_speed
from ..serve.common import scratch_beside
from ..serve.export import export_served
from ..serve.llama_cpp import has_runtime

REFERENCE = "dense"  # the full-width file's label in the report's served rows


def served_formats(recipe: Recipe) -> list[str]:
    """The recipe's export formats besides hf."""
    return [fmt for fmt in recipe.export.formats if fmt != "hf"]


def write_served(
    model: nn.Module, tokenizer: Any, recipe: Recipe, out: Path, llama_cpp: Optional[Path]
) -> dict[str, Path]:
    """``export.formats`` besides hf: one ONNX / GGUF folder per width, each checked in its engine first."""
    written = {}
    for fmt in served_formats(recipe):
        for w in recipe.export.widths:
            folder = export_served(model, out, float(w), fmt, **_options(recipe, fmt, tokenizer, llama_cpp))
            written[folder.name] = folder
    return written


def _options(recipe: Recipe, fmt: str, tokenizer: Any, llama_cpp: Optional[Path]) -> dict[str, Any]:
    return dict(
        quant=recipe.export.quant if fmt == "gguf" else None,
        tokenizer=tokenizer,
        source=recipe.model,
        multiple=recipe.export.multiple,
        overwrite=True,
        llama_cpp=llama_cpp,
    )


def time_served(
    model: nn.Module, tokenizer: Any, recipe: Recipe, out: Path, written: dict[str, Path], llama_cpp: Optional[Path]
) -> Optional[dict]:
    """The report's ``served`` entry for ``written`` (None when nothing was served): each file timed in
    its engine (evaluate/served_speed.py, ``evaluate.latency_repeats`` runs; 0 skips it) beside the
    full-width file of its format, which is written to a scratch folder in ``out`` and removed.
    {"config", "rows", "seconds"}."""
    repeats = recipe.evaluate.latency_repeats
    # without llama-cpp-python, GGUF files were checked in transformers: llama.cpp is not here to time them
    formats = [fmt for fmt in served_formats(recipe) if fmt != "gguf" or has_runtime()]
    written = {k: p for k, p in written.items() if read_provenance(p)["format"] in formats}
    if not written or repeats == 0:
        return None
    began = time.perf_counter()
    cfg = ServedSpeedConfig(threads=torch.get_num_threads(), repeats=repeats, seq_len=recipe.evaluate.latency_seq_len)
    with scratch_beside(out / "served-reference") as scratch:
        folders = dict(written)
        for fmt in formats:
            options = _options(recipe, fmt, tokenizer, llama_cpp)
            folders[f"{REFERENCE} {fmt}"] = export_served(model, scratch, 1.0, fmt, **options)
        served = served_speed(model, folders, cfg)
    for row in served["rows"]:
        row["export"] = row["export"].split()[0]
    served["seconds"] = round(time.perf_counter() - began, 3)
    return served
