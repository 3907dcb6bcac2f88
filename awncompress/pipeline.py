"""`awncompress convert` end to end, one function call per arrow of the data flow:

recipe → load model → (dense stage if the head is untrained) → score → order → wrap → fine-tune
→ fold → export widths → evaluate (reloaded from disk) → report.
"""
from __future__ import annotations

import copy
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .adaptive import profile_summary, widths_for_budget
from .atomic import atomic_dir, remove_temps
from .archs import find_ffns
from .convert import convert_, fold_, full_widths
from .data import TaskData, load_task_data
from .errors import AwnError, ModelLoadError
from .evaluate_run import evaluate_conversion
from .export import export_nested, export_per_layer, export_uniform
from .finetune import TrainResult, finetune, latest_checkpoint
from .layout import CHECKPOINTS_DIR, DENSE_DIR, NESTED_DIR, per_layer_dir, width_dir, width_key
from .outdir import begin_output, check_output, check_resume
from .recipes import Recipe
from .stages import (awn_config, calibration_batches, check_settings, data_config, dense_config, fit_to_model, load_model,
                     prior_config)
from .teacher import CachedTeacher, Teacher, distillation_teacher

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


def _load(recipe: Recipe) -> tuple[Recipe, nn.Module, Any, bool, TaskData]:
    """Model, tokenizer, whether its head is trained, and the data (``data.max_length`` fitted to the
    model, so the recipe is returned too); a head of the wrong size is refused."""
    torch.manual_seed(recipe.seed)
    model, tokenizer, head_trained = load_model(recipe.model, recipe.task)
    recipe = fit_to_model(recipe, model)
    data = load_task_data(data_config(recipe), tokenizer)
    if recipe.task == "text-classification" and model.config.num_labels != data.num_labels:
        if head_trained:
            raise ModelLoadError(f"{recipe.model} has a head for {model.config.num_labels} labels but the data has {data.num_labels}")
        model, tokenizer, head_trained = load_model(recipe.model, recipe.task, data.num_labels)
    if data.label_names and recipe.task == "text-classification":
        model.config.id2label = dict(enumerate(data.label_names))
        model.config.label2id = {n: i for i, n in enumerate(data.label_names)}
    return recipe, model, tokenizer, head_trained, data


def _teachers(model: nn.Module, recipe: Recipe, data: TaskData, quiet: bool) -> tuple[nn.Module, Optional[Teacher], Optional[float]]:
    """The frozen dense model, the distillation teacher built from it, and the seconds a logit table took."""
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    began = time.perf_counter()
    kd_teacher = (distillation_teacher(teacher, recipe.task, data.train, data.collate, recipe.evaluate.batch_size, quiet)
                  if recipe.train.kd_weight > 0 else None)
    seconds = round(time.perf_counter() - began, 3) if isinstance(kd_teacher, CachedTeacher) else None
    return teacher, kd_teacher, seconds


def run_convert(
    recipe: Recipe,
    out: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    evaluate: bool = True,
    trusted_metric: Optional[str] = None,
) -> ConvertResult:
    """Run a whole conversion as the recipe says; see the module docstring for the stages.

    Everything that can be checked is checked before the output folder is made (see outdir.py and
    ``stages.check_settings``); ``trusted_metric`` is a metric the user named on the command line.
    """
    out = Path(out)
    check_output(out, recipe, resume=resume, overwrite=overwrite)
    check_settings(recipe, trusted_metric)
    recipe, model, tokenizer, head_trained, data = _load(recipe)
    if resume:
        check_resume(out, recipe)
    begin_output(out, recipe, resume=resume)
    try:
        return _stages(recipe, out, model, tokenizer, head_trained, data, resume=resume, quiet=quiet, evaluate=evaluate)
    except OSError as exc:
        if isinstance(exc, AwnError) or exc.filename is None:
            raise
        raise AwnError(f"{exc.filename}: {exc.strerror or exc}; once that is fixed, the run in {out} "
                       "continues with --resume") from None


def _stages(recipe: Recipe, out: Path, model: nn.Module, tokenizer: Any, head_trained: bool, data: TaskData, *,
            resume: bool, quiet: bool, evaluate: bool) -> ConvertResult:
    """dense stage → teacher → score/order/wrap → AWN fine-tune → fold → exports → evaluation."""
    checkpoints = out / CHECKPOINTS_DIR
    dense_result = None
    if not head_trained:
        log.info("the task head of %s is untrained: training it densely first (it becomes the KD teacher)", recipe.model)
        dense_result = finetune(model, data.train, data.collate, dense_config(recipe), num_examples=data.num_train_examples,
                                seed=recipe.seed, checkpoint_dir=checkpoints / "dense", resume=resume, quiet=quiet,
                                desc="dense head")
        save_dense(model, tokenizer, out / DENSE_DIR)
    teacher, kd_teacher, teacher_seconds = _teachers(model, recipe, data, quiet)
    batches = calibration_batches(data, recipe.awn.calibration_batches, recipe.train.batch_size)
    convert_(model, awn_config(recipe), calibration=batches)
    awn_result = finetune(model, data.train, data.collate, recipe.train, num_examples=data.num_train_examples,
                          prior=prior_config(recipe), teacher=kd_teacher, seed=recipe.seed,
                          checkpoint_dir=checkpoints / "awn", resume=resume, quiet=quiet, desc="awn fine-tune")
    profile = profile_summary(model)
    fold_(model)

    costs = {"awn_seconds": awn_result.seconds, "dense_seconds": dense_result.seconds if dense_result else None,
             "teacher_logits_seconds": teacher_seconds}
    exports = write_exports(model, tokenizer, recipe, out, profile, extra={"train": costs}, overwrite=True)
    result = ConvertResult(out=out, exports=exports, awn=awn_result, dense=dense_result, profile=profile)
    if evaluate:
        result.report = evaluate_conversion(out, teacher, data, recipe, exports, costs, batches, quiet=quiet,
                                            kd_teacher=kd_teacher)
    if latest_checkpoint(checkpoints / "awn") is not None:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the exports hold everything now
    remove_temps(out)
    return result


def save_dense(model: nn.Module, tokenizer: Any, folder: Path) -> Path:
    """The dense model with its freshly trained head: the report's reference and the baselines' source."""
    with atomic_dir(folder, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return folder


def write_exports(model: nn.Module, tokenizer: Any, recipe: Recipe, out: Path, profile: dict,
                  extra: Optional[dict] = None, overwrite: bool = False) -> dict[str, Path]:
    """nested/, one width-<w>/ per recipe width and, if asked, per-layer-<w>/ at the same FFN FLOPs."""
    source = recipe.model
    exports = {NESTED_DIR: export_nested(model, out / NESTED_DIR, widths=recipe.export.widths, profile=profile, tokenizer=tokenizer,
                                       source=source, overwrite=overwrite, extra=extra)}
    for w in recipe.export.widths:
        exports[width_key(w)] = export_uniform(model, width_dir(out, w), float(w), tokenizer=tokenizer, source=source,
                                           multiple=recipe.export.multiple, overwrite=overwrite, extra=extra)
    if recipe.export.per_layer:
        full = full_widths(find_ffns(model))
        for w in recipe.export.widths:
            widths = widths_for_budget(profile["normalised_rates"], full, float(w))
            exports[per_layer_dir(out, w).name] = export_per_layer(model, per_layer_dir(out, w), widths, tokenizer=tokenizer,
                                                           source=source, method="awn-per-layer", overwrite=overwrite,
                                                           extra={**(extra or {}), "flop_budget": float(w)})
    return exports
