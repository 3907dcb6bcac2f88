"""Evaluate every method at every width against the dense model: validate → dense row → methods ×
widths → latency → the report record.

The methods are the registered ones (awncompress.evaluate.methods), the measurements are measure.py
(metric, FLOPs, sizes) and latency.py (round-robin timing). FLOPs are per example at the
evaluation data's real (non-padded) token counts. Latency is timed once per distinct model shape
(rows of the same per-layer widths, e.g. every static baseline at one width, share a timing),
round-robin over the shapes, on fixed random input ids.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import torch
import transformers
from torch import nn

from ..checkpoint.layout import export_format, match_export
from ..checkpoint.provenance import read_provenance
from ..data.tasks import default_metric, is_lm_task, task_from_model
from ..errors import DataError, UnknownMethodError, WidthError
from ..model.families import find_ffns
from ..model.growth import grow_to_
from ..model.head_cuts import truncate_heads_
from ..model.surgery import full_widths, layer_widths, resolve_widths, truncate_
from ..train.heap import release_free_memory
from ..version import __version__
from .latency import LatencyConfig, device_name, resolve_device, time_round_robin
from .measure import (
    check_eval_data,
    checkpoint_bytes,
    count_params,
    evaluate_model,
    flops_per_example,
    length_counts,
    weight_bytes,
)
from .methods import Candidate, EvalContext, Method, MethodSpec, default_method_names, resolve_methods
from .metrics import higher_is_better, load_metric

logger = logging.getLogger("awncompress")

REPORT_SCHEMA_VERSION = 1


class _Evaluator:
    """The data, metric and dense reference of one evaluation; measures one model into a report entry."""

    def __init__(
        self, dataset: Any, collate: Optional[Callable], task: str, metric: str, batch_size: int, device: torch.device
    ) -> None:
        self.dataset, self.collate, self.task, self.metric = dataset, collate, task, metric
        self.batch_size, self.device = batch_size, device
        self.lengths = length_counts(dataset)
        self.correct: dict[str, str] = {}  # "method@width" → one 1/0 per example (classification)
        self.nll: dict[str, list[float]] = {}  # "method@width" → each window's mean NLL (causal LM)

    def per_example(self) -> dict:
        """The report's per-example results, "method@width" → one 1/0 per eval example (classification)
        or each window's mean next-token NLL (causal LM): what paired tests compare methods on."""
        return {"per_example_correct": self.correct or None, "per_example_nll": self.nll or None}

    def entry(self, model: nn.Module, widths: Optional[Sequence[int]], key: str) -> dict:
        model.to(self.device)
        per_example: list = []  # 1/0 per example, or each window's mean NLL for a causal LM
        value = evaluate_model(
            model, self.dataset, self.collate, self.task, self.metric, self.batch_size, correct=per_example
        )
        if per_example and is_lm_task(self.task):
            self.nll[key] = [round(float(x), 5) for x in per_example]
        elif per_example:
            self.correct[key] = "".join(map(str, per_example))
        return {
            "metric": self.metric,
            "value": value,
            **flops_per_example(model, self.lengths, widths),
            "params": count_params(model),
            "weight_bytes": weight_bytes(model),
        }


def _intermediate(widths: Sequence[int]) -> Union[int, list[int]]:
    widths = [int(w) for w in widths]
    return widths[0] if len(set(widths)) == 1 else widths


def _row(label: str, fraction: float, cand: Candidate, entry: dict, dense: dict, theoretical: bool) -> dict:
    export = cand.export
    row = {
        "method": label,
        "width_fraction": float(fraction),
        "intermediate_size": _intermediate(cand.widths),
        **entry,
        "flops_ratio": round(entry["flops"] / dense["flops"], 6) if dense["flops"] else None,
        "params_ratio": round(entry["params"] / dense["params"], 6),
        "checkpoint_bytes": checkpoint_bytes(export)
        if export is not None and export_format(export) != "nested"
        else None,
        "export": str(export) if export is not None else None,
        "theoretical": bool(theoretical),
    }
    row.pop("flops_source", None)
    logger.info(
        "%s @ %g: %s = %.4f, FLOPs x%.3f", label, fraction, entry["metric"], row["value"], row["flops_ratio"] or 0
    )
    return row


def _layer_plan(
    widths: Sequence[float], export_dirs: Mapping[float, Path], full: Sequence[int]
) -> dict[float, list[int]]:
    """Per width, the per-layer neuron counts every static method cuts to: the awn export's own widths
    where a uniform or per-layer export exists, else the fraction's rounding."""
    plan = {}
    for w in widths:
        folder = match_export(w, export_dirs)
        record = read_provenance(folder) if folder is not None else None
        if record is not None and record["format"] != "nested" and len(record["layer_widths"]) == len(full):
            plan[w] = [int(x) for x in record["layer_widths"]]
        else:
            plan[w] = resolve_widths(w, list(full), len(full))
    return plan


def _check_widths(widths: Optional[Sequence[float]], export_dirs: Mapping[float, Path]) -> list[float]:
    widths = sorted({float(w) for w in (sorted(export_dirs) if widths is None else widths)})
    if not widths:
        raise WidthError("no widths to evaluate: pass widths= or awn export folders")
    for w in widths:
        if not 0.0 < w <= 1.0:
            raise WidthError(f"width fraction {w} must be in (0, 1]")
    return widths


def _run_method(method: Method, ctx: EvalContext, measure: _Evaluator, dense: dict) -> tuple[list[dict], dict, dict]:
    """Rows of one method at every width, its costs, and {row index: shape} for the timed rows."""
    label = method.label(ctx)
    began = time.perf_counter()
    method.prepare(ctx)
    prepare_s, eval_s = time.perf_counter() - began, 0.0
    rows, shapes = [], {}
    flops_axis = method.axis == "flops"
    for w in sorted(ctx.flop_dirs) if flops_axis else ctx.widths:
        began = time.perf_counter()
        with method.at_width(ctx, w) as cand:
            prepare_s += time.perf_counter() - began
            began = time.perf_counter()
            entry = measure.entry(cand.model, cand.widths if method.theoretical else None, f"{label}@{w:g}")
            rows.append(_row(label, w, cand, entry, dense, method.theoretical))
            if flops_axis:  # the point is a FLOP target; its FFN width is what the pick gave
                rows[-1].update(
                    flops_target=float(w),
                    heads=_intermediate(cand.heads or []),
                    width_fraction=round(sum(cand.widths) / sum(layer_widths(ctx.original)), 6),
                )
            if not method.theoretical:
                shapes[len(rows) - 1] = _shape(cand.widths, cand.heads)
            eval_s += time.perf_counter() - began
    return rows, {"prepare_s": round(prepare_s, 3), "evaluate_s": round(eval_s, 3)}, shapes


def _shape(widths: Sequence[int], heads: Optional[Sequence[int]] = None) -> tuple:
    """What a timing is keyed by: FFN widths per layer and, for head cuts, query heads per layer."""
    return tuple(int(x) for x in widths), tuple(int(h) for h in heads) if heads else None


def _time_shapes(original: nn.Module, shapes: set[tuple], latency: LatencyConfig) -> dict[tuple, dict]:
    """Latency of each distinct shape: copies of the dense model cut to it (grown to it where a layer
    grew past the dense width: only the shape is timed), timed round-robin."""
    full = _shape(layer_widths(original))
    models = {}
    for shape in sorted(shapes, key=lambda s: (s[0], s[1] or ()), reverse=True):
        if shape == full:
            models[shape] = original
        else:
            models[shape] = copy.deepcopy(original)
            grow_to_(models[shape], list(shape[0]))
            truncate_(models[shape], list(shape[0]))
            if shape[1] is not None:
                truncate_heads_(models[shape], list(shape[1]))
    return time_round_robin(models, latency)


def _add_latency(
    dense: dict, rows: list[dict], row_shapes: dict[int, tuple], timings: dict[tuple, dict], full: tuple
) -> None:
    def fill(target: dict, t: Optional[dict]) -> None:
        target.update(
            {
                "latency_ms": t["median_ms"] if t else None,
                "latency_p10_ms": t["p10_ms"] if t else None,
                "latency_p90_ms": t["p90_ms"] if t else None,
            }
        )

    fill(dense, timings.get(full))
    for i, row in enumerate(rows):
        fill(row, timings.get(row_shapes[i]) if i in row_shapes else None)
        ms, base = row["latency_ms"], dense.get("latency_ms")
        row["latency_ratio"] = round(ms / base, 6) if ms is not None and base else None


def _profile(profile: Optional[dict], d_ff: int) -> Optional[dict]:
    if not profile or "active_widths" not in profile:
        return None
    widths = [int(w) for w in profile["active_widths"]]
    return {
        "k": profile.get("k"),
        "d_ff": d_ff,
        "active_widths": widths,
        "active_fractions": [round(w / d_ff, 6) for w in widths],
        "normalised_rates": [float(r) for r in profile.get("normalised_rates", [])],
        **({"grown_widths": [int(w) for w in profile["grown_widths"]]} if profile.get("grown_widths") else {}),
        **(
            {"head_rates": [float(r) for r in profile["head_rates"]], "active_units": profile.get("active_units")}
            if profile.get("head_rates")
            else {}
        ),
    }


def _check_methods(chosen: list[Method], ctx: EvalContext) -> None:
    """Each method's own check, and no two rows of one name."""
    for method in chosen:
        method.check(ctx)
    labels = [m.label(ctx) for m in chosen]
    if len(set(labels)) != len(labels):
        raise UnknownMethodError(f"two methods would write rows of the same name: {labels}")


def _dense_entry(original: nn.Module, measure: _Evaluator, full: tuple) -> tuple[dict, str]:
    """The dense model's report entry and where its FLOPs came from."""
    original.eval()
    began = time.perf_counter()
    dense = measure.entry(original, None, "dense")
    flops_source = dense.pop("flops_source")
    dense.update(intermediate_size=_intermediate(full), eval_s=round(time.perf_counter() - began, 3))
    logger.info("dense: %s = %.4f", measure.metric, dense["value"])
    return dense, flops_source


def _run_methods(chosen: list[Method], ctx: EvalContext, measure: _Evaluator, dense: dict) -> tuple:
    """Every method's rows, {row index: shape} of the timed rows, and each method's costs."""
    rows: list[dict] = []
    row_shapes: dict[int, tuple] = {}
    run_costs: dict[str, dict[str, float]] = {}
    while chosen:  # popped, so that what a method prepared (an ordered copy) is freed after its rows
        method = chosen.pop(0)
        method_rows, run_costs[method.label(ctx)], shapes = _run_method(method, ctx, measure, dense)
        row_shapes.update({len(rows) + i: s for i, s in shapes.items()})
        rows += method_rows
        del method
        release_free_memory()  # its copies are gone; their pages go back before the next method's
    return rows, row_shapes, run_costs


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
    model_name: Optional[str] = None,
    data: Optional[Union[str, dict]] = None,
    profile: Optional[dict] = None,
    costs: Optional[Mapping[str, Mapping[str, float]]] = None,
    **context: Any,
) -> dict:
    """Evaluate every method at every width against the dense ``original``; returns the report record.

    Args:
        original: the dense model the exports came from (the baselines are cut from copies of it;
            it is moved to ``device`` and left unchanged otherwise).
        export_dirs: {width fraction: folder} of the awn exports (uniform / per-layer folders load
            as they are, a nested folder is sliced to the width).
        dataset, collate: evaluation items (dicts with input_ids / attention_mask / labels) and the
            function that pads a list of them into a batch.
        task / metric: default: read from the model class / the task's default metric.
        methods: registered names (``awncompress.evaluate.methods.method_names()``), Method objects and/or
            (name, fn) pairs where ``fn(width_fraction) -> model``. Default: the default methods.
        widths: width fractions to evaluate (default: the keys of ``export_dirs``).
        calibration: batches for the wina / activation scores (required when those are asked for).
        latency: timing settings, or None to skip latency.
        profile / costs: the learned profile and extra wall-clock costs per method to record.
        context: the :class:`~awncompress.evaluate.methods.EvalContext` fields methods read (``seed``,
            ``out``, ``scorer``, ``multiple``, ``training``, ``quiet``, ``flop_dirs``: {FLOP target:
            folder} of the FFN+heads exports); a field added there needs no change here.

    Raises NotAnExportError, DataError, MetricError, UnknownMethodError, WidthError before anything is
    evaluated when the inputs cannot work.
    """
    task = task or task_from_model(original)
    metric = metric or default_metric(task)
    load_metric(metric)  # fail fast (MetricError) before any model is evaluated
    check_eval_data(dataset)
    chosen = resolve_methods(default_method_names() if methods is None else methods)
    export_dirs = {float(w): Path(p) for w, p in (export_dirs or {}).items()}
    widths = _check_widths(widths, export_dirs)
    needs = [m.name for m in chosen if m.needs_calibration]
    if needs and calibration is None:
        raise DataError(
            f"method(s) {', '.join(needs)} need calibration batches (pass calibration=, e.g. a few training batches)"
        )
    full = tuple(layer_widths(original))
    flop_dirs = {float(k): Path(p) for k, p in (context.pop("flop_dirs", None) or {}).items()}
    calibration = None if calibration is None else list(calibration)
    ctx = EvalContext(original, widths, {}, calibration, export_dirs=export_dirs, flop_dirs=flop_dirs, **context)
    _check_methods(chosen, ctx)
    ctx.layer_plan = _layer_plan(widths, export_dirs, full_widths(find_ffns(original)))

    measure = _Evaluator(dataset, collate, task, metric, batch_size, resolve_device(device))
    dense, flops_source = _dense_entry(original, measure, full)
    rows, row_shapes, run_costs = _run_methods(chosen, ctx, measure, dense)
    began = time.perf_counter()
    timings = _time_shapes(original, {_shape(full), *row_shapes.values()}, latency) if latency is not None else {}
    run_costs["latency"] = {"evaluate_s": round(time.perf_counter() - began, 3)}
    _add_latency(dense, rows, row_shapes, timings, _shape(full))
    for name, extra in (costs or {}).items():
        run_costs.setdefault(name, {}).update({k: float(v) for k, v in extra.items()})
    device, seed = measure.device, ctx.seed
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
        "versions": {
            "awncompress": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "device": device_name(device),
        "latency_config": (
            {**asdict(latency), "schedule": "round-robin", "shapes": len(timings)} if latency is not None else None
        ),
        "flops_source": flops_source,
        "d_ff": max(full),
        "num_layers": len(full),
        "dense": dense,
        "rows": rows,
        "profile": _profile(profile, max(full)),
        "costs": run_costs,
        **measure.per_example(),
    }
