"""The stages of a convert run, in order, each one call: dense stage (when the head is untrained) →
teacher → score, order, wrap → AWN fine-tune → fold → exports → evaluation (reloaded from disk) →
report. ``run.convert.run_convert`` checks everything first and runs these; ``run.plan`` runs them once
on a tiny copy to fail fast and to time them.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from safetensors import SafetensorError
from torch import nn

from ..checkpoint.export import export_nested, export_per_layer, export_uniform
from ..checkpoint.layout import CHECKPOINTS_DIR, DENSE_DIR, NESTED_DIR, flops_dir, per_layer_dir, width_dir, width_key
from ..config.recipe import Recipe
from ..config.settings import StageSettings
from ..data.tokenized import TaskData, example_lengths
from ..files.atomic import atomic_dir, remove_temps, write_failure
from ..files.manifest import remove_written
from ..model.adaptive import profile_summary, widths_for_budget
from ..model.families import find_ffns
from ..model.flop_targets import pick_for_flops
from ..model.surgery import convert_, fold_, full_widths, layer_widths
from ..train.checkpoints import latest_checkpoint
from ..train.finetune import TrainResult, finetune
from ..train.heap import release_free_memory
from ..train.teacher import CachedTeacher, Teacher
from .bundle import Bundle, calibration_batches, run_teacher
from .ranks import is_main_process
from .reevaluate import evaluate_conversion
from .served import time_served, write_served

log = logging.getLogger("awncompress")


@dataclass
class ConvertResult:
    """Where `convert` wrote things and what the stages cost."""

    out: Path
    exports: dict[str, Path]
    awn: TrainResult
    dense: Optional[TrainResult] = None
    report: Optional[dict] = None
    profile: dict = field(default_factory=dict)
    costs: dict = field(default_factory=dict)


def _teachers(
    model: nn.Module, settings: StageSettings, data: TaskData, quiet: bool
) -> tuple[nn.Module, Optional[Teacher], Optional[float]]:
    """The frozen dense model, the distillation teacher built from it, and the seconds a logit table took."""
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    began = time.perf_counter()
    distil = run_teacher(teacher, settings, data, quiet)
    seconds = round(time.perf_counter() - began, 3) if isinstance(distil, CachedTeacher) else None
    release_free_memory()  # the logit table's forward passes left their freed buffers resident (0.5 GiB on MiniLM)
    return teacher, distil, seconds


def _dense_stage(
    settings: StageSettings, bundle: Bundle, out: Path, checkpoints: Path, resume: bool, quiet: bool
) -> TrainResult:
    """Train an untrained task head densely (the model then becomes the KD teacher); save it to dense/."""
    log.info(
        "the task head of %s is untrained: training it densely first (it becomes the KD teacher)",
        settings.recipe.model,
    )
    data = bundle.data
    result = finetune(
        bundle.model,
        data.train,
        data.collate,
        settings.dense,
        num_examples=data.num_train_examples,
        seed=settings.seed,
        checkpoint_dir=checkpoints / "dense",
        resume=resume,
        quiet=quiet,
        desc="dense head",
    )
    if is_main_process():
        save_dense(bundle.model, bundle.tokenizer, out / DENSE_DIR)
    return result


def run_stages(
    settings: StageSettings,
    out: Path,
    bundle: Bundle,
    *,
    resume: bool,
    quiet: bool,
    evaluate: bool,
    llama_cpp: Optional[Path] = None,
    checkpoints: Optional[Path] = None,
) -> ConvertResult:
    """dense stage → teacher → score/order/wrap → AWN fine-tune → fold → exports → evaluation, into ``out``.

    ``checkpoints``: where the fine-tunes checkpoint (default ``out/checkpoints``); under a launcher every
    process names the main process's, since they all write (sharded) or read (on --resume) the same ones."""
    recipe, model, tokenizer, data = settings.recipe, bundle.model, bundle.tokenizer, bundle.data
    checkpoints = checkpoints or out / CHECKPOINTS_DIR
    dense_result = None if bundle.head_trained else _dense_stage(settings, bundle, out, checkpoints, resume, quiet)
    teacher, kd_teacher, teacher_seconds = _teachers(model, settings, data, quiet)
    batches = calibration_batches(data, settings.calibration_batches, settings.train.batch_size)
    convert_(model, settings.awn, calibration=batches)
    release_free_memory()  # and so did scoring on the calibration batches
    awn_result = finetune(
        model,
        data.train,
        data.collate,
        settings.train,
        num_examples=data.num_train_examples,
        prior=settings.prior,
        teacher=kd_teacher,
        seed=settings.seed,
        checkpoint_dir=checkpoints / "awn",
        resume=resume,
        quiet=quiet,
        desc="awn fine-tune",
        growth=settings.growth,
    )
    if not is_main_process():  # the rest is the main process's alone (ranks.py)
        return ConvertResult(out=out, exports={}, awn=awn_result, dense=dense_result)
    profile = profile_summary(model)
    fold_(model)

    costs = {
        "awn_seconds": awn_result.seconds,
        "dense_seconds": dense_result.seconds if dense_result else None,
        "teacher_logits_seconds": teacher_seconds,
    }
    began = time.perf_counter()
    exports = write_exports(
        model, tokenizer, recipe, out, profile, extra={"train": costs}, overwrite=True, seq_len=mean_length(data.eval)
    )
    exports.update(served := write_served(model, tokenizer, recipe, out, llama_cpp))
    costs["export_seconds"] = round(time.perf_counter() - began, 3)
    speed = time_served(model, tokenizer, recipe, out, served, llama_cpp) if evaluate else None
    result = ConvertResult(out=out, exports=exports, awn=awn_result, dense=dense_result, profile=profile, costs=costs)
    if evaluate:
        result.report = evaluate_conversion(
            out, teacher, data, settings, exports, costs, batches, quiet=quiet, kd_teacher=kd_teacher, served=speed
        )
    if latest_checkpoint(checkpoints / "awn") is not None:
        remove_written(checkpoints)  # the exports hold everything now (files awncompress did not write stay)
    remove_temps(out)
    return result


def save_dense(model: nn.Module, tokenizer: Any, folder: Path) -> Path:
    """The dense model with its freshly trained head: the report's reference and the baselines' source."""
    with atomic_dir(folder, overwrite=True) as tmp:
        try:
            model.save_pretrained(tmp)
        except SafetensorError as exc:
            raise write_failure(exc, folder) from None
        tokenizer.save_pretrained(tmp)
    return folder


def mean_length(dataset: Any) -> int:
    """Mean tokens per example: the length FLOP targets are picked at."""
    lengths = example_lengths(dataset)
    return max(1, round(sum(lengths) / len(lengths))) if lengths else 128


def write_flop_exports(
    model: nn.Module,
    tokenizer: Any,
    recipe: Recipe,
    out: Path,
    profile: dict,
    seq_len: int,
    extra: Optional[dict] = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """One flops-<t>/ per FLOP target: the (FFN width, heads) the learned profiles pick for it."""
    rates = [sum(r) / len(r) if r else None for r in (profile.get("normalised_rates"), profile.get("head_rates"))]
    exports = {}
    for target in recipe.flop_targets:
        pick = pick_for_flops(model, target, seq_len, *rates)
        exports[flops_dir(out, target).name] = export_uniform(
            model,
            flops_dir(out, target),
            pick.width,
            heads=pick.heads,
            tokenizer=tokenizer,
            source=recipe.model,
            method="awn-heads",
            overwrite=overwrite,
            extra={**(extra or {}), "flops_target": target, "flops_seq_len": seq_len},
        )
    return exports


def write_exports(
    model: nn.Module,
    tokenizer: Any,
    recipe: Recipe,
    out: Path,
    profile: dict,
    extra: Optional[dict] = None,
    overwrite: bool = False,
    seq_len: int = 128,
) -> dict[str, Path]:
    """nested/, one width-<w>/ per recipe width and, if asked, per-layer-<w>/ at the same FFN FLOPs and
    flops-<t>/ per FLOP target (with heads; picked at ``seq_len`` tokens)."""
    source = recipe.model
    exports = {
        NESTED_DIR: export_nested(
            model,
            out / NESTED_DIR,
            widths=recipe.export.widths,
            profile=profile,
            tokenizer=tokenizer,
            source=source,
            overwrite=overwrite,
            heads=recipe.awn.heads,
            extra={**(extra or {}), **({"flops_seq_len": seq_len} if recipe.awn.heads else {})},
        )
    }
    exports.update(write_flop_exports(model, tokenizer, recipe, out, profile, seq_len, extra, overwrite))
    for w in recipe.export.widths:
        exports[width_key(w)] = export_uniform(
            model,
            width_dir(out, w),
            float(w),
            tokenizer=tokenizer,
            source=source,
            multiple=recipe.export.multiple,
            overwrite=overwrite,
            extra=extra,
        )
    if recipe.export.per_layer:
        exports.update(write_per_layer_exports(model, tokenizer, recipe, out, profile, extra, overwrite))
    return exports


def write_per_layer_exports(
    model: nn.Module,
    tokenizer: Any,
    recipe: Recipe,
    out: Path,
    profile: dict,
    extra: Optional[dict] = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """per-layer-<w>/ for each recipe width: the widths the learned rates give at that width's FFN FLOPs."""
    full = full_widths(find_ffns(model))
    exports = {}
    for w in recipe.export.widths:
        widths = widths_for_budget(profile["normalised_rates"], full, float(w), layer_widths(model))
        exports[per_layer_dir(out, w).name] = export_per_layer(
            model,
            per_layer_dir(out, w),
            widths,
            tokenizer=tokenizer,
            source=recipe.model,
            method="awn-per-layer",
            overwrite=overwrite,
            extra={**(extra or {}), "flop_budget": float(w)},
        )
    return exports
