"""Forward-pass latency, timed round-robin so that models compare fairly on a shared machine.

On a busy CPU the speed of a forward pass drifts by tens of per cent over seconds; timing one
model's passes and then the next one's turns that drift into fake differences. Here every model
gets its warm-up, then the timed passes go round the models in turn (one pass each per round, the
round's order rotating), so drift hits all of them alike, and each model's latency is the median
of its passes.
"""

from __future__ import annotations

import functools
import math
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class LatencyConfig:
    """Forward-pass timing: ``repeats`` timed passes over a ``batch_size`` × ``seq_len`` batch of
    fixed random ids after ``warmup`` untimed ones (seq_len is capped at the model's positions)."""

    batch_size: int = 8
    seq_len: int = 64
    warmup: int = 3
    repeats: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "repeats"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"LatencyConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ConfigError(f"LatencyConfig.warmup must be >= 0, got {self.warmup}")


def resolve_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """``device``, or CUDA when there is one, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_of(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


# Families whose position ids start after the padding index (RoBERTa's convention).
_POSITIONS_AFTER_PADDING = (
    "roberta",
    "xlm-roberta",
    "camembert",
    "mpnet",
    "xlm-roberta-xl",
    "data2vec-text",
    "longformer",
)


def max_positions(config: Any) -> Optional[int]:
    """How many positions a model can embed (None: no limit it declares)."""
    n = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if n is None or n <= 0:  # XLNet: -1, relative positions without a limit
        return None
    if getattr(config, "model_type", "") in _POSITIONS_AFTER_PADDING:
        n -= (getattr(config, "pad_token_id", 1) or 1) + 1  # positions start after the padding index
    return int(n)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of already sorted values."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _inputs(model: nn.Module, cfg: LatencyConfig, device: torch.device) -> dict[str, torch.Tensor]:
    config = model.config
    seq_len = min(cfg.seq_len, max_positions(config) or cfg.seq_len)
    vocab = int(config.vocab_size)
    g = torch.Generator().manual_seed(cfg.seed)
    ids = torch.randint(min(3, vocab - 1), vocab, (cfg.batch_size, seq_len), generator=g).to(device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _timed_pass(model: nn.Module, inputs: Mapping[str, torch.Tensor], cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()
    model(**inputs)
    if cuda:
        torch.cuda.synchronize()


def round_robin(passes: Mapping[Hashable, Callable[[], Any]], warmup: int, repeats: int) -> dict[Hashable, list[float]]:
    """Each callable's timed runs in milliseconds, sorted: ``warmup`` untimed runs each, then ``repeats``
    rounds that run every callable once, the round's order rotating (see the module docstring)."""
    keys = list(passes)
    for k in keys:
        for _ in range(warmup):
            passes[k]()
    times: dict[Hashable, list[float]] = {k: [] for k in keys}
    for r in range(repeats):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            start = time.perf_counter()
            passes[k]()
            times[k].append((time.perf_counter() - start) * 1000)
    return {k: sorted(ts) for k, ts in times.items()}


def spread(sorted_ms: Sequence[float]) -> dict[str, float]:
    """{"median_ms", "p10_ms", "p90_ms"} of sorted timings."""
    return {
        "median_ms": round(statistics.median(sorted_ms), 4),
        "p10_ms": round(_percentile(sorted_ms, 10), 4),
        "p90_ms": round(_percentile(sorted_ms, 90), 4),
    }


@torch.inference_mode()
def time_round_robin(models: Mapping[Hashable, nn.Module], cfg: Optional[LatencyConfig] = None) -> dict[Hashable, dict]:
    """Latency of each model, its timed passes interleaved with the others' (see the module docstring).

    Models run where they are. Returns per key {"median_ms", "p10_ms", "p90_ms", "batch_size",
    "seq_len", "repeats", "warmup"}.
    """
    cfg = cfg or LatencyConfig()
    keys = list(models)
    inputs = {k: _inputs(models[k], cfg, device_of(models[k])) for k in keys}
    cuda = any(device_of(m).type == "cuda" for m in models.values())
    modes = {k: models[k].training for k in keys}
    try:
        for k in keys:
            models[k].eval()
        passes = {k: functools.partial(_timed_pass, models[k], inputs[k], cuda) for k in keys}
        times = round_robin(passes, cfg.warmup, cfg.repeats)
    finally:
        for k in keys:
            models[k].train(modes[k])
    return {
        k: {
            **spread(times[k]),
            "batch_size": cfg.batch_size,
            "seq_len": int(inputs[k]["input_ids"].shape[1]),
            "repeats": cfg.repeats,
            "warmup": cfg.warmup,
        }
        for k in keys
    }


def measure_latency(
    model: nn.Module, cfg: Optional[LatencyConfig] = None, device: Optional[Union[str, torch.device]] = None
) -> dict:
    """Median and spread (p10, p90) of one model's forward pass, in milliseconds.

    Fixed random input ids (seeded), all-ones attention mask, ``torch.inference_mode``, CUDA
    synchronised around each pass. Returns {"median_ms", "p10_ms", "p90_ms", "batch_size",
    "seq_len", "repeats", "warmup"}.
    """
    if device is not None:
        model.to(device)
    return time_round_robin({0: model}, cfg)[0]


def device_name(device: Optional[Union[str, torch.device]] = None) -> dict:
    """What the timings ran on: {"type", "name", "threads"} (CPU model from /proc/cpuinfo, or the GPU name)."""
    device = resolve_device(device)
    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device), "threads": None}
    name = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return {"type": device.type, "name": name, "threads": torch.get_num_threads()}
