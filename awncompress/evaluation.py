"""Evaluate exported widths beside no-training baselines: metric, FLOPs, parameters, latency.

One call, :func:`evaluate_methods`, builds the *report record* (a plain dict, see report.py for the
files written from it). Methods:

- ``awn``: the fine-tuned, folded model, reloaded from its export folders on disk;
- ``wina``, ``activation``, ``magnitude``, ``random``: the *original* model, neurons ordered by that
  static score on calibration batches, then truncated to the same per-layer widths (no training);
- ``wina-dynamic``: the original model at full width with a per-token top-k mask on every FFN's
  hidden neurons, ranked by ``|h_j|·||W_down[:, j]||``; FLOPs are counted on active neurons only,
  so its row is flagged ``theoretical`` (no kernel here skips the masked neurons);
- any ``(name, fn)`` pair, ``fn(width_fraction) -> model``, e.g. a per-width fine-tune baseline.

FLOPs are per example at the evaluation data's real (non-padded) token counts; latency is the
median forward-pass time on fixed random input ids, after warm-up, on the device at hand.
"""
from __future__ import annotations

import copy
import datetime as _dt
import logging
import math
import platform
import re
import statistics
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import torch
import transformers
from torch import nn
from torch.utils.data import DataLoader

from .archs import find_ffns
from .convert import layer_widths, order_, resolve_widths, truncate_
from .data import length_order
from .errors import DataError, MetricError, NotAnExportError, UnknownScorerError, WidthError
from .export import PROVENANCE_FILE, WIDTH_DIR_PREFIX, update_provenance
from .flops import count_flops
from .loading import check_safe_checkpoint, load_pretrained, read_provenance
from .metrics import compute_metric, higher_is_better, load_metric
from .scoring import NEEDS_ACTIVATIONS, SCORERS, model_inputs, neuron_norms
from .version import __version__

logger = logging.getLogger("awncompress")

__all__ = [
    "LatencyConfig", "STATIC_METHODS", "DYNAMIC_METHOD", "DEFAULT_METHODS", "LM_TASKS", "REPORT_SCHEMA_VERSION",
    "evaluate_model", "measure_latency", "dynamic_wina", "flops_per_example", "evaluate_methods",
    "evaluate_output_dir", "find_exports", "annotate_exports", "device_name", "default_metric", "is_lm_task",
]

REPORT_SCHEMA_VERSION = 1
STATIC_METHODS: tuple[str, ...] = tuple(SCORERS)  # wina, activation, magnitude, random
DYNAMIC_METHOD = "wina-dynamic"
DEFAULT_METHODS: tuple[str, ...] = ("awn", *STATIC_METHODS, DYNAMIC_METHOD)
BUILTIN_METHODS: tuple[str, ...] = DEFAULT_METHODS
LM_TASKS = frozenset({"causal-lm", "causal_lm", "clm", "lm", "language-modeling", "text-generation"})

MethodSpec = Union[str, tuple[str, Callable[[float], nn.Module]]]


# --------------------------------------------------------------------------------------------- task


def is_lm_task(task: str) -> bool:
    """Whether ``task`` is causal language modelling (metric over next-token NLL) rather than classification."""
    return task.strip().lower() in LM_TASKS


def default_metric(task: str) -> str:
    """perplexity for causal-lm, accuracy for classification tasks."""
    return "perplexity" if is_lm_task(task) else "accuracy"


def _task_from_model(model: nn.Module) -> str:
    name = type(model).__name__
    return "causal-lm" if name.endswith(("ForCausalLM", "LMHeadModel")) else "text-classification"


# --------------------------------------------------------------------------------------------- metric


def _first_item(dataset: Any) -> Optional[Mapping]:
    try:
        if len(dataset) == 0:
            return None
        return dataset[0]
    except (TypeError, KeyError, IndexError):
        return next(iter(dataset), None)


def check_eval_data(dataset: Any) -> None:
    """Raise DataError unless ``dataset`` is non-empty and its items carry ``labels``."""
    if dataset is None:
        raise DataError("no evaluation data given")
    first = _first_item(dataset)
    if first is None:
        raise DataError("the evaluation data is empty")
    if not isinstance(first, Mapping) or "input_ids" not in first:
        raise DataError(f"evaluation items must be dicts with input_ids/attention_mask/labels, got {type(first).__name__}")
    if "labels" not in first:
        keys = ", ".join(sorted(first))
        raise DataError(f"the evaluation data has no labels (item keys: {keys}); a metric needs labeled data "
                        "(for causal-lm the labels are the input ids)")


def _loader(dataset: Any, collate: Optional[Callable], batch_size: int, order: Sequence[int]) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=order, collate_fn=collate)


def _device_of(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _resolve_device(device: Optional[Union[str, torch.device]]) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.inference_mode()
def evaluate_model(
    model: nn.Module,
    dataset: Any,
    collate: Optional[Callable],
    task: str,
    metric: Optional[str] = None,
    batch_size: int = 32,
    device: Optional[Union[str, torch.device]] = None,
    correct: Optional[list] = None,
) -> float:
    """The metric of ``model`` on ``dataset`` (items: dicts of input_ids / attention_mask / labels).

    Classification: predictions are the argmax of the logits (the logit itself when there is one
    output, for regression metrics such as spearmanr). Causal LM: per-sequence summed next-token
    NLL and token counts (labels -100 are ignored), which the offline ``perplexity`` metric turns
    into token-weighted perplexity. ``metric`` defaults to accuracy / perplexity by task.
    ``correct``: for classification, receives 1/0 per example in dataset order (paired tests).

    Raises DataError for data without labels, MetricError for a metric that cannot be loaded offline.
    """
    metric = metric or default_metric(task)
    check_eval_data(dataset)
    if device is not None:
        model.to(device)
    device = _device_of(model)
    was_training = model.training
    model.eval()
    lm = is_lm_task(task)
    predictions: list = []
    references: list = []
    try:
        order = length_order(dataset)  # the metric ignores the order; `correct` is put back in dataset order
        for batch in _loader(dataset, collate, batch_size, order):
            if "labels" not in batch:
                raise DataError("an evaluation batch has no labels (check the collate function)")
            labels = batch["labels"].to(device)
            out = model(**model_inputs(batch, device))
            logits = out.logits if hasattr(out, "logits") else out[0]
            if lm:
                shift_logits = logits[:, :-1, :].float()
                shift_labels = labels[:, 1:]
                nll = nn.functional.cross_entropy(
                    shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                    ignore_index=-100, reduction="none",
                ).view(shift_labels.shape)
                predictions += nll.double().sum(1).tolist()
                references += (shift_labels != -100).sum(1).tolist()
            else:
                if logits.shape[-1] == 1:
                    predictions += logits[..., 0].float().tolist()
                else:
                    predictions += logits.argmax(-1).tolist()
                references += labels.tolist()
    finally:
        model.train(was_training)
    if correct is not None and not lm:
        hits = [0] * len(order)
        for position, index in enumerate(order):
            hits[index] = int(predictions[position] == references[position])
        correct.extend(hits)
    try:
        return compute_metric(metric, predictions, references)
    except MetricError:
        raise
    except (ValueError, TypeError) as exc:  # e.g. a classification metric fed regression outputs
        raise MetricError(f"metric {metric!r} could not score the {task} predictions: {exc}") from exc


# --------------------------------------------------------------------------------------------- FLOPs


def example_lengths(dataset: Any) -> Counter:
    """How many evaluation examples have each non-padded length (attention_mask sum, else len(input_ids))."""
    columns = getattr(dataset, "column_names", None)
    if columns is not None and not isinstance(columns, dict):
        key = "attention_mask" if "attention_mask" in columns else "input_ids"
        column = dataset[key]
        if key == "attention_mask":
            return Counter(int(sum(m)) for m in column)
        return Counter(len(ids) for ids in column)
    counts: Counter = Counter()
    for item in dataset:
        mask = item.get("attention_mask")
        if mask is not None:
            counts[int(torch.as_tensor(mask).sum())] += 1
        else:
            counts[int(torch.as_tensor(item["input_ids"]).numel())] += 1
    return counts


def flops_per_example(model: nn.Module, lengths: Mapping[int, int], ffn_widths: Optional[Sequence[int]] = None) -> dict:
    """Mean FLOPs per example over examples of the given lengths ({length: count}).

    Returns {"flops", "ffn_flops", "ffn_share"}; each length is counted once (cached by count).
    """
    total = ffn = 0
    n = 0
    for length, count in lengths.items():
        if length <= 0:
            continue
        fc = count_flops(model, int(length), ffn_widths=ffn_widths)
        total += fc.total * count
        ffn += fc.ffn * count
        n += count
    if n == 0:
        raise DataError("the evaluation data holds no tokens")
    mean_total, mean_ffn = total / n, ffn / n
    return {"flops": int(round(mean_total)), "ffn_flops": int(round(mean_ffn)),
            "ffn_share": round(mean_ffn / mean_total, 6) if mean_total else 0.0}


# --------------------------------------------------------------------------------------------- latency


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
                raise ValueError(f"LatencyConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"LatencyConfig.warmup must be >= 0, got {self.warmup}")


def _max_positions(config: Any) -> Optional[int]:
    n = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if n is None:
        return None
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        n -= (getattr(config, "pad_token_id", 1) or 1) + 1  # positions start after the padding index
    return int(n)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of already sorted values."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@torch.inference_mode()
def measure_latency(model: nn.Module, cfg: Optional[LatencyConfig] = None, device: Optional[Union[str, torch.device]] = None) -> dict:
    """Median and spread (p10, p90) of one forward pass, in milliseconds.

    Fixed random input ids (seeded), all-ones attention mask, ``torch.inference_mode``, CUDA
    synchronised around each pass. Returns {"median_ms", "p10_ms", "p90_ms", "batch_size",
    "seq_len", "repeats", "warmup"}.
    """
    cfg = cfg or LatencyConfig()
    if device is not None:
        model.to(device)
    device = _device_of(model)
    config = model.config
    seq_len = cfg.seq_len
    max_pos = _max_positions(config)
    if max_pos is not None and seq_len > max_pos:
        seq_len = max_pos
    vocab = int(config.vocab_size)
    g = torch.Generator().manual_seed(cfg.seed)
    ids = torch.randint(min(3, vocab - 1), vocab, (cfg.batch_size, seq_len), generator=g).to(device)
    mask = torch.ones_like(ids)
    was_training = model.training
    model.eval()
    cuda = device.type == "cuda"
    times: list[float] = []
    try:
        for i in range(cfg.warmup + cfg.repeats):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= cfg.warmup:
                times.append((time.perf_counter() - start) * 1000)
    finally:
        model.train(was_training)
    times.sort()
    return {"median_ms": round(statistics.median(times), 4), "p10_ms": round(_percentile(times, 10), 4),
            "p90_ms": round(_percentile(times, 90), 4), "batch_size": cfg.batch_size, "seq_len": seq_len,
            "repeats": cfg.repeats, "warmup": cfg.warmup}


def device_name(device: Optional[Union[str, torch.device]] = None) -> dict:
    """What the timings ran on: {"type", "name", "threads"} (CPU model from /proc/cpuinfo, or the GPU name)."""
    device = _resolve_device(device)
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


# --------------------------------------------------------------------------------------------- dynamic WINA


@contextmanager
def dynamic_wina(model: nn.Module, fraction: Union[float, int, Sequence[int]]) -> Iterator[list[int]]:
    """Per-token WINA top-k on every FFN, as a masked dense model, while the context is open.

    A forward pre-hook on each down projection keeps, for every token, the ``k`` hidden neurons of
    largest ``|h_j|·||W_down[:, j]||`` and zeroes the rest. ``fraction``: a fraction of d_ff, an int
    number of neurons, or one int per layer (same rounding as ``truncate_``). Yields the per-layer k.
    At k = d_ff no hook is installed, so the model is exactly the dense one.
    """
    blocks = find_ffns(model)
    d_ff = max(b.width for b in blocks)
    ks = resolve_widths(fraction if not isinstance(fraction, tuple) else list(fraction), d_ff, len(blocks))
    handles = []

    def make_hook(k: int, norms: torch.Tensor):
        def hook(_module, args):
            h = args[0]
            scores = h.detach().abs() * norms.to(device=h.device, dtype=h.dtype)
            keep = scores.topk(k, dim=-1, sorted=False).indices
            masked = torch.zeros_like(h).scatter(-1, keep, h.gather(-1, keep))
            return (masked, *args[1:])
        return hook

    try:
        for block, k in zip(blocks, ks):
            if k > block.width:
                raise WidthError(f"layer {block.layer} has {block.width} neurons; cannot keep {k} active")
            if k == block.width:
                continue
            handles.append(block.down.register_forward_pre_hook(make_hook(k, neuron_norms(block.down, "out"))))
        yield ks
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------------------------- rows


def count_params(model: nn.Module) -> int:
    """Number of parameters (tied weights once)."""
    return sum(p.numel() for p in model.parameters())


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the parameters in memory (tied weights once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def checkpoint_bytes(folder: Union[str, Path]) -> int:
    """Bytes of the safetensors files in an export folder."""
    return sum(f.stat().st_size for f in Path(folder).glob("*.safetensors"))


def _intermediate(widths: Sequence[int]) -> Union[int, list[int]]:
    widths = [int(w) for w in widths]
    return widths[0] if len(set(widths)) == 1 else widths


class _Measure:
    """Shared state of one evaluation run: data, lengths, metric, latency settings, dense reference."""

    def __init__(self, dataset, collate, task, metric, batch_size, device, latency):
        self.dataset, self.collate, self.task, self.metric = dataset, collate, task, metric
        self.batch_size, self.device, self.latency = batch_size, device, latency
        self.lengths = example_lengths(dataset)
        self.dense: Optional[dict] = None
        self.last_correct: Optional[str] = None  # per-example 1/0 of the last entry (classification)
        self.correct: dict[str, str] = {}

    def flops(self, model: nn.Module, ffn_widths: Optional[Sequence[int]] = None) -> dict:
        return flops_per_example(model, self.lengths, ffn_widths)

    def entry(self, model: nn.Module, *, flop_widths: Optional[Sequence[int]] = None, timed: bool = True) -> dict:
        """metric, FLOPs, params and latency of ``model`` (moved to the evaluation device).

        ``timed=False`` (theoretical rows): a masked dense model runs at dense speed or slower, so
        timing it would say nothing about the method; its latency is left empty.
        """
        model.to(self.device)
        hits: list[int] = []
        value = evaluate_model(model, self.dataset, self.collate, self.task, self.metric, self.batch_size, correct=hits)
        self.last_correct = "".join(map(str, hits)) or None
        entry = {"metric": self.metric, "value": value, **self.flops(model, flop_widths),
                 "params": count_params(model), "weight_bytes": weight_bytes(model)}
        lat = measure_latency(model, self.latency) if self.latency is not None and timed else None
        entry.update({"latency_ms": lat["median_ms"] if lat else None, "latency_p10_ms": lat["p10_ms"] if lat else None,
                      "latency_p90_ms": lat["p90_ms"] if lat else None})
        return entry

    def row(self, method: str, fraction: float, model: nn.Module, *, widths: Sequence[int],
            export: Optional[Path] = None, theoretical: bool = False, flop_widths: Optional[Sequence[int]] = None) -> dict:
        entry = self.entry(model, flop_widths=flop_widths, timed=not theoretical)
        if self.last_correct is not None:
            self.correct[f"{method}@{fraction:g}"] = self.last_correct
        dense = self.dense
        row = {"method": method, "width_fraction": float(fraction), "intermediate_size": _intermediate(widths),
               **entry,
               "flops_ratio": round(entry["flops"] / dense["flops"], 6) if dense["flops"] else None,
               "params_ratio": round(entry["params"] / dense["params"], 6),
               "latency_ratio": (round(entry["latency_ms"] / dense["latency_ms"], 6)
                                 if entry["latency_ms"] is not None and dense.get("latency_ms") else None),
               "checkpoint_bytes": checkpoint_bytes(export) if export is not None and _fmt(export) != "nested" else None,
               "export": str(export) if export is not None else None,
               "theoretical": bool(theoretical)}
        logger.info("%s @ %g: %s = %.4f, FLOPs x%.3f", method, fraction, self.metric, row["value"], row["flops_ratio"] or 0)
        return row


def _fmt(folder: Path) -> Optional[str]:
    try:
        return read_provenance(folder)["format"]
    except NotAnExportError:
        return None


def _normalise_methods(methods: Optional[Sequence[MethodSpec]]) -> list[tuple[str, Optional[Callable]]]:
    methods = list(DEFAULT_METHODS if methods is None else methods)
    if not methods:
        raise UnknownScorerError(f"no evaluation method given; choose from {', '.join(BUILTIN_METHODS)} or pass (name, fn)")
    out: list[tuple[str, Optional[Callable]]] = []
    for m in methods:
        if isinstance(m, str):
            if m not in BUILTIN_METHODS:
                raise UnknownScorerError(f"unknown evaluation method {m!r}; built-in methods: {', '.join(BUILTIN_METHODS)} "
                                         "(or pass a (name, fn) pair with fn(width_fraction) -> model)")
            out.append((m, None))
        elif isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str) and callable(m[1]):
            if m[0] in BUILTIN_METHODS:
                raise UnknownScorerError(f"method name {m[0]!r} is built in; give the callable another name (e.g. '{m[0]}+finetune')")
            out.append((m[0], m[1]))
        else:
            raise UnknownScorerError(f"a method must be a name or a (name, fn) pair, got {m!r}")
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise UnknownScorerError(f"methods repeat a name: {names}")
    return out


def _width_key(w: float) -> str:
    return f"{float(w):g}"


def _match_export(width: float, export_dirs: Mapping[float, Path]) -> Optional[Path]:
    for w, path in export_dirs.items():
        if math.isclose(float(w), float(width), rel_tol=1e-9, abs_tol=1e-9):
            return Path(path)
    return None


def _awn_model(width: float, folder: Path) -> tuple[nn.Module, dict]:
    """Reload the awn model of one width from disk (a uniform/per-layer folder, or a nested one sliced)."""
    record = read_provenance(folder)
    if record["format"] == "nested":
        return load_pretrained(folder, width=float(width)), record
    return load_pretrained(folder), record


def evaluate_methods(
    original: nn.Module,
    export_dirs: Optional[Mapping[float, Union[str, Path]]],
    dataset: Any,
    collate: Optional[Callable],
    task: Optional[str] = None,
    metric: Optional[str] = None,
    methods: Optional[Sequence[MethodSpec]] = None,
    widths: Optional[Sequence[float]] = None,
    calibration: Optional[Iterable[Mapping[str, torch.Tensor]]] = None,
    latency: Optional[LatencyConfig] = LatencyConfig(),
    *,
    batch_size: int = 32,
    device: Optional[Union[str, torch.device]] = None,
    seed: int = 0,
    model_name: Optional[str] = None,
    data: Optional[Union[str, dict]] = None,
    profile: Optional[dict] = None,
    costs: Optional[Mapping[str, Mapping[str, float]]] = None,
) -> dict:
    """Evaluate every method at every width against the dense ``original``; returns the report record.

    Args:
        original: the dense model the exports came from (the baselines are cut from a copy of it;
            it is moved to ``device`` and left unchanged otherwise).
        export_dirs: {width fraction: folder} of the awn exports. A uniform or per-layer folder is
            loaded as is; a nested folder is sliced to that width. Every awn row is reloaded from disk.
        dataset, collate: evaluation items (dicts with input_ids / attention_mask / labels) and the
            function that pads a list of them into a batch.
        task: "text-classification" (default: read from the model class) or "causal-lm".
        metric: any name ``awncompress.metrics.load_metric`` can load (default accuracy / perplexity).
        methods: built-in names ("awn", "wina", "activation", "magnitude", "random", "wina-dynamic")
            and/or (name, fn) pairs where ``fn(width_fraction) -> model``. Default: all built-ins.
        widths: width fractions to evaluate (default: the keys of ``export_dirs``). Baselines use the
            exact per-layer widths of the awn export at that width when there is one.
        calibration: batches for the wina / activation scores (required when those are asked for).
        latency: timing settings, or None to skip latency.
        profile: the learned profile to record ({"k", "normalised_rates", "active_widths", ...}).
        costs: extra wall-clock costs to record per method, e.g. {"awn": {"finetune_s": 112.0}}.

    Raises NotAnExportError (a width with no export on disk, a folder that is not an export),
    DataError (no labels, no calibration for wina/activation), MetricError (metric not loadable offline),
    UnknownScorerError (an unknown method name).
    """
    task = task or _task_from_model(original)
    metric = metric or default_metric(task)
    load_metric(metric)  # fail fast (MetricError) before any model is evaluated
    check_eval_data(dataset)
    specs = _normalise_methods(methods)
    names = [n for n, _ in specs]
    export_dirs = {float(w): Path(p) for w, p in (export_dirs or {}).items()}
    if widths is None:
        widths = sorted(export_dirs)
    widths = sorted({float(w) for w in widths})
    if not widths:
        raise WidthError("no widths to evaluate: pass widths= or awn export folders")
    for w in widths:
        if not 0.0 < w <= 1.0:
            raise WidthError(f"width fraction {w} must be in (0, 1]")
    if "awn" in names:
        missing = [w for w in widths if _match_export(w, export_dirs) is None]
        if missing:
            have = ", ".join(_width_key(w) for w in sorted(export_dirs)) or "none"
            raise NotAnExportError(f"no awn export on disk for width(s) {', '.join(map(_width_key, missing))}; "
                                   f"exported widths: {have}")
        for w in widths:
            folder = _match_export(w, export_dirs)
            check_safe_checkpoint(folder)
            read_provenance(folder)  # NotAnExportError for a folder that is not an export
    needs_calibration = [n for n in names if n in NEEDS_ACTIVATIONS]
    if needs_calibration and calibration is None:
        raise DataError(f"method(s) {', '.join(needs_calibration)} need calibration batches (pass calibration=, "
                        "e.g. a few training batches)")
    if calibration is not None:
        calibration = list(calibration)

    device = _resolve_device(device)
    measure = _Measure(dataset, collate, task, metric, batch_size, device, latency)
    blocks = find_ffns(original)
    d_ff = max(b.width for b in blocks)
    n_layers = len(blocks)

    # Per-width integer widths: the awn export's own widths when it exists, else the fraction's rounding.
    layer_plan: dict[float, list[int]] = {}
    for w in widths:
        folder = _match_export(w, export_dirs)
        record = read_provenance(folder) if folder is not None else None
        if record is not None and record["format"] != "nested" and len(record["layer_widths"]) == n_layers:
            layer_plan[w] = [int(x) for x in record["layer_widths"]]
        else:
            layer_plan[w] = resolve_widths(w, d_ff, n_layers)

    original.eval()
    started = time.perf_counter()
    dense = measure.entry(original)
    if measure.last_correct is not None:
        measure.correct["dense"] = measure.last_correct
    dense["intermediate_size"] = _intermediate(layer_widths(original))
    dense["eval_s"] = round(time.perf_counter() - started, 3)
    measure.dense = dense
    logger.info("dense: %s = %.4f", metric, dense["value"])

    rows: list[dict] = []
    run_costs: dict[str, dict[str, float]] = {}
    for name, fn in specs:
        prepare_s = eval_s = 0.0
        ordered = None
        if name in STATIC_METHODS:
            t = time.perf_counter()
            ordered = copy.deepcopy(original)
            order_(ordered, name, calibration, seed=seed)
            prepare_s += time.perf_counter() - t
        for w in widths:
            t = time.perf_counter()
            export = None
            theoretical = False
            flop_widths = None
            if name == "awn":
                export = _match_export(w, export_dirs)
                model, _ = _awn_model(w, export)
            elif name in STATIC_METHODS:
                model = copy.deepcopy(ordered)
                truncate_(model, layer_plan[w])
            elif name == DYNAMIC_METHOD:
                model = original
            else:
                model = fn(w)
                if not isinstance(model, nn.Module):
                    raise TypeError(f"method {name!r} returned {type(model).__name__}, not a model")
            prepare_s += time.perf_counter() - t
            t = time.perf_counter()
            if name == DYNAMIC_METHOD:
                with dynamic_wina(model, layer_plan[w]) as ks:
                    row = measure.row(name, w, model, widths=ks, theoretical=True, flop_widths=ks)
                row["params"], row["params_ratio"] = dense["params"], 1.0  # the masked model keeps every weight
            else:
                row = measure.row(name, w, model, widths=layer_widths(model), export=export,
                                  theoretical=theoretical, flop_widths=flop_widths)
            eval_s += time.perf_counter() - t
            rows.append(row)
            if model is not original:
                del model
        run_costs[name] = {"prepare_s": round(prepare_s, 3), "evaluate_s": round(eval_s, 3)}
    for name, extra in (costs or {}).items():
        run_costs.setdefault(name, {}).update({k: float(v) for k, v in extra.items()})

    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model_name or getattr(original.config, "_name_or_path", None) or type(original).__name__,
        "architecture": type(original).__name__,
        "task": task,
        "data": data,
        "num_eval_examples": sum(measure.lengths.values()),
        "seed": seed,
        "metric": {"name": metric, "higher_is_better": higher_is_better(metric)},
        "versions": {"awncompress": __version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
        "device": device_name(device),
        "latency_config": asdict(latency) if latency is not None else None,
        "d_ff": d_ff,
        "num_layers": n_layers,
        "dense": dense,
        "rows": rows,
        "profile": _profile(profile, d_ff),
        "costs": run_costs,
        # "method@width" → one 1/0 per eval example (classification): lets paired tests compare methods.
        "per_example_correct": measure.correct or None,
    }


def _profile(profile: Optional[dict], d_ff: int) -> Optional[dict]:
    if not profile or "active_widths" not in profile:
        return None
    widths = [int(w) for w in profile["active_widths"]]
    out = {"k": profile.get("k"), "d_ff": d_ff, "active_widths": widths,
           "active_fractions": [round(w / d_ff, 6) for w in widths],
           "normalised_rates": [float(r) for r in profile.get("normalised_rates", [])]}
    return out


# --------------------------------------------------------------------------------------------- output dirs

_WIDTH_DIR = re.compile(rf"^{re.escape(WIDTH_DIR_PREFIX)}(\d+(?:\.\d+)?(?:e-?\d+)?)$")


def find_exports(out_dir: Union[str, Path]) -> tuple[Optional[Path], dict[float, Path]]:
    """The nested folder (or None) and {width fraction: folder} of the width-*/ folders in ``out_dir``.

    ``out_dir`` may also be one export folder itself. Raises NotAnExportError when there is none.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise NotAnExportError(f"{out_dir} is not a directory")
    if (out_dir / PROVENANCE_FILE).exists():
        record = read_provenance(out_dir)
        if record["format"] == "nested":
            return out_dir, {}
        return None, {float(record["width_fraction"]): out_dir}
    nested = out_dir / "nested"
    nested = nested if (nested / PROVENANCE_FILE).exists() else None
    width_dirs: dict[float, Path] = {}
    for child in sorted(out_dir.iterdir()):
        match = _WIDTH_DIR.match(child.name)
        if child.is_dir() and match and (child / PROVENANCE_FILE).exists():
            width_dirs[float(match.group(1))] = child
    if nested is None and not width_dirs:
        raise NotAnExportError(f"{out_dir} is not an awncompress output: no nested/ or width-*/ folder with "
                               f"{PROVENANCE_FILE} (run `awncompress convert` first)")
    return nested, width_dirs


def _recorded_metric(record: dict) -> Optional[str]:
    m = record.get("metric")
    if isinstance(m, dict):
        m = m.get("name")
    return m if isinstance(m, str) and m else None


def _load_original(source: Optional[str], record: dict, where: Path) -> nn.Module:
    if not source:
        raise NotAnExportError(f"{where}/{PROVENANCE_FILE} records no source_model; pass original= (a model or a path)")
    path = Path(source)
    if path.exists():
        check_safe_checkpoint(path)
    cls = getattr(transformers, record.get("architecture") or "", None)
    if cls is None:
        raise NotAnExportError(f"architecture {record.get('architecture')!r} in {where} is not a transformers class")
    try:
        return cls.from_pretrained(source).eval()
    except (OSError, ValueError) as exc:
        raise NotAnExportError(f"cannot load the original model {source!r} recorded in {where}: "
                               f"{str(exc).splitlines()[0]}; pass original= (a model or a local path)") from exc


def evaluate_output_dir(
    out_dir: Union[str, Path],
    dataset: Any,
    collate: Optional[Callable],
    *,
    original: Optional[Union[nn.Module, str, Path]] = None,
    task: Optional[str] = None,
    metric: Optional[str] = None,
    methods: Optional[Sequence[MethodSpec]] = None,
    widths: Optional[Sequence[float]] = None,
    calibration: Optional[Iterable[Mapping[str, torch.Tensor]]] = None,
    latency: Optional[LatencyConfig] = LatencyConfig(),
    batch_size: int = 32,
    device: Optional[Union[str, torch.device]] = None,
    seed: Optional[int] = None,
    data: Optional[Union[str, dict]] = None,
    costs: Optional[Mapping[str, Mapping[str, float]]] = None,
) -> dict:
    """Evaluate what ``awncompress convert`` wrote to ``out_dir`` (``nested/`` and ``width-*/`` folders).

    The awn widths are the ``width-*/`` folders (each reloaded from disk); a width asked for that has
    no folder is sliced from ``nested/`` if the nested width table lists it, else NotAnExportError.
    The original model (for the dense reference and the baselines) is ``original`` or the
    ``source_model`` recorded in the nested export. Task, metric, seed, learned profile and costs are
    taken from the nested record's ``task`` / ``metric`` / ``seed`` / ``profile`` / ``costs`` when present.
    """
    nested, width_dirs = find_exports(out_dir)
    ref_folder = nested or next(iter(width_dirs.values()))
    record = read_provenance(ref_folder)
    available = dict(width_dirs)
    if nested is not None:
        nested_record = read_provenance(nested)
        for key in (nested_record.get("width_table") or {}):
            w = float(key)
            if _match_export(w, available) is None:
                available[w] = nested
    if widths is None:
        widths = sorted(available)
    else:
        missing = [w for w in widths if _match_export(float(w), available) is None]
        if missing:
            have = ", ".join(_width_key(w) for w in sorted(available)) or "none"
            raise NotAnExportError(f"width(s) {', '.join(_width_key(float(w)) for w in missing)} not exported in {out_dir}; "
                                   f"on disk: {have}")
    export_dirs = {float(w): _match_export(float(w), available) for w in widths}
    if not isinstance(original, nn.Module):
        source = str(original) if original is not None else record.get("source_model")
        original = _load_original(source, record, ref_folder)
    merged_costs: dict[str, dict[str, float]] = {}
    recorded = record.get("costs")
    if isinstance(recorded, dict):
        merged_costs["awn"] = {k: float(v) for k, v in recorded.items() if isinstance(v, (int, float))}
    for name, extra in (costs or {}).items():
        merged_costs.setdefault(name, {}).update(extra)
    result = evaluate_methods(
        original, export_dirs, dataset, collate, task or record.get("task"), metric or _recorded_metric(record),
        methods, widths, calibration, latency, batch_size=batch_size, device=device,
        seed=record.get("seed", 0) if seed is None else seed,
        model_name=record.get("source_model"), data=data, profile=record.get("profile"), costs=merged_costs,
    )
    result["output_dir"] = str(Path(out_dir))
    return result


def annotate_exports(record: dict) -> list[Path]:
    """Write each awn row's measured metric, FLOPs and parameters into its export's awncompress.json
    (and so its model card). Nested folders (one folder for many widths) are left alone.
    Returns the folders updated."""
    updated = []
    for row in record["rows"]:
        if row["method"] != "awn" or not row.get("export"):
            continue
        folder = Path(row["export"])
        if _fmt(folder) in (None, "nested"):
            continue
        update_provenance(folder, flops=row["flops"], flops_ratio=row["flops_ratio"], params=row["params"],
                          metric={"name": row["metric"], "value": row["value"], "data": str(record.get("data") or "eval data")})
        updated.append(folder)
    return updated
