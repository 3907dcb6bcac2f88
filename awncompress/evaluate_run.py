"""Evaluate a convert run: after `convert`, and again later with `awncompress evaluate OUT`.

The dense reference and the no-training baselines are cut from the *trained* dense model: the
user's fine-tuned model, or ``OUT/dense/`` when awncompress trained the task head itself.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from torch import nn

from .convert import order_, truncate_
from .data import TaskData, load_task_data
from .errors import NotAnExportError
from .evaluation import LatencyConfig, annotate_exports, evaluate_methods, find_exports
from .export import per_layer_dir
from .finetune import finetune
from .loading import load_pretrained, read_provenance
from .recipes import Recipe, apply_overrides, load_recipe
from .report import write_report
from .teacher import Teacher, distillation_teacher


def finetune_baseline(original: nn.Module, data: TaskData, recipe: Recipe, calibration: list,
                      quiet: bool, kd_teacher: Optional[Teacher] = None) -> Callable[[float], nn.Module]:
    """``<scorer>+finetune``: truncate by the recipe's scorer, then fine-tune that width alone.

    Same step budget, batch, learning rate and loss (KD from the same teacher, the trained
    original) as the AWN fine-tune, so a gap between the two is the method, not the distillation.
    ``kd_teacher``: that teacher as the AWN fine-tune used it (e.g. its cached logits); None
    builds it from ``original``.
    """
    from .pipeline import train_config

    cfg = dataclasses.replace(train_config(recipe), mode="deterministic", checkpoint_every=0)
    ordered = copy.deepcopy(original).requires_grad_(True)  # the original is the frozen teacher
    order_(ordered, recipe.awn.scorer, calibration, seed=recipe.seed)
    if kd_teacher is None and cfg.kd_weight > 0:
        kd_teacher = distillation_teacher(original, recipe.task, data.train, data.collate, recipe.evaluate.batch_size, quiet)

    def build(fraction: float) -> nn.Module:
        model = copy.deepcopy(ordered)
        truncate_(model, float(fraction), multiple=recipe.export.multiple)
        finetune(model, data.train, data.collate, cfg, num_examples=data.num_train_examples,
                 teacher=kd_teacher if cfg.kd_weight > 0 else None, seed=recipe.seed, quiet=quiet,
                 desc=f"{recipe.awn.scorer}+finetune {fraction:g}")
        return model

    return build


def per_layer_method(out: Path) -> Callable[[float], nn.Module]:
    """``awn-per-layer``: the per-layer export at the FFN FLOP budget of each width, from disk."""
    def load(fraction: float) -> nn.Module:
        folder = per_layer_dir(out, fraction)
        if not folder.exists():
            raise NotAnExportError(f"{folder} is missing: convert with --per-layer to write per-layer exports")
        return load_pretrained(folder)

    return load


def _methods(recipe: Recipe, out: Path, original: nn.Module, data: TaskData, calibration: list, quiet: bool,
             names: Optional[Sequence[str]] = None, kd_teacher: Optional[Teacher] = None) -> list:
    methods: list[Any] = []
    for name in names or recipe.evaluate.methods:
        if name == "finetune":
            methods.append((f"{recipe.awn.scorer}+finetune", finetune_baseline(original, data, recipe, calibration, quiet, kd_teacher)))
        else:
            methods.append(name)
    if recipe.export.per_layer and not names:
        methods.insert(1, ("awn-per-layer", per_layer_method(out)))
    return methods


# (report stage, cost kind, key in the convert run's costs): the teacher logits are computed once
# and shared by the AWN fine-tune and every <scorer>+finetune run.
_RECORDED_COSTS = (("awn", "finetune_s", "awn_seconds"), ("dense", "finetune_s", "dense_seconds"),
                   ("teacher-logits", "prepare_s", "teacher_logits_seconds"))


def _latency(recipe: Recipe) -> Optional[LatencyConfig]:
    e = recipe.evaluate
    if not e.latency_repeats:
        return None
    return LatencyConfig(batch_size=e.latency_batch_size, seq_len=e.latency_seq_len, repeats=e.latency_repeats, seed=recipe.seed)


def evaluate_conversion(out: Path, original: nn.Module, data: TaskData, recipe: Recipe, exports: dict[str, Path],
                        costs: dict, calibration: list, *, quiet: bool = False,
                        methods: Optional[Sequence[str]] = None, kd_teacher: Optional[Teacher] = None) -> dict:
    """Evaluate every width × method of a finished run, write the report and annotate the exports.

    ``kd_teacher``: the distillation teacher of the AWN fine-tune, reused by ``<scorer>+finetune``.
    """
    widths = [float(w) for w in recipe.export.widths]
    export_dirs = {w: exports.get(f"{w:g}", exports["nested"]) for w in widths}
    profile = read_provenance(exports["nested"]).get("profile")
    began = time.perf_counter()
    record = evaluate_methods(
        original, export_dirs, data.eval, data.collate, task=recipe.task, metric=recipe.resolved_metric,
        methods=_methods(recipe, out, original, data, calibration, quiet, methods, kd_teacher), widths=widths,
        calibration=calibration, latency=_latency(recipe), batch_size=recipe.evaluate.batch_size, seed=recipe.seed,
        model_name=recipe.model, data=recipe.data.eval or recipe.data.train, profile=profile,
        costs={stage: {kind: costs[key]} for stage, kind, key in _RECORDED_COSTS if costs.get(key) is not None},
    )
    record["costs"].setdefault("evaluation", {})["total_s"] = round(time.perf_counter() - began, 3)
    write_report(record, out)
    annotate_exports(record)
    return record


def reevaluate(out: Path, *, data: Optional[str] = None, methods: Optional[Sequence[str]] = None, quiet: bool = False) -> dict:
    """`awncompress evaluate OUT`: reload the run's recipe, data and exports, evaluate, rewrite the report."""
    from .pipeline import DENSE_DIR, calibration_batches, data_config, load_model

    out = Path(out)
    recipe_file = out / "recipe.yaml"
    nested, widths = find_exports(out) if out.is_dir() else (None, {})
    if not recipe_file.exists() or nested is None:
        raise NotAnExportError(f"{out} is not an awncompress convert output (it needs recipe.yaml and nested/)")
    recipe = load_recipe(str(recipe_file))
    if data is not None:
        recipe = apply_overrides(recipe, {"data.eval": data})
    dense = out / DENSE_DIR
    original, tokenizer, _ = load_model(str(dense) if dense.exists() else recipe.model, recipe.task)
    task_data = load_task_data(data_config(recipe), tokenizer)
    calibration = calibration_batches(task_data, recipe.awn.calibration_batches, recipe.train.batch_size)
    record = read_provenance(nested)
    train = record.get("train") or {}
    exports = {"nested": nested, **{f"{w:g}": p for w, p in widths.items()}}
    return evaluate_conversion(out, original, task_data, recipe, exports, train, calibration, quiet=quiet, methods=methods)
