"""Evaluate a convert run: after `convert`, and again later with `awncompress evaluate OUT`.

The dense reference and the no-training baselines are cut from the *trained* dense model: the
user's fine-tuned model, or ``OUT/dense/`` when awncompress trained the task head itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

from torch import nn

from ..checkpoint.layout import (
    DENSE_DIR,
    NESTED_DIR,
    RECIPE_FILE,
    REPORT_FILES,
    annotate_exports,
    export_dirs_for,
    find_exports,
    find_flop_exports,
    flops_dir,
    width_key,
)
from ..checkpoint.provenance import PROVENANCE_FILE, read_provenance
from ..config import Recipe, apply_overrides, load_recipe
from ..config.settings import StageSettings, read_settings
from ..data.sources import classify_source
from ..data.tokenized import TaskData, load_task_data
from ..errors import AwnError, DataError, NotAnExportError
from ..evaluate.matrix import evaluate_methods
from ..evaluate.methods import TrainingKit, auto_methods, make_method, method_names
from ..files.paths import check_apart, contained
from ..report.files import write_report
from ..train.heap import bound_heap
from ..train.teacher import Teacher
from .bundle import calibration_batches, check_settings, load_model, run_teacher

# (report stage, cost kind, key in the convert run's costs): the teacher logits are computed once
# and shared by the AWN fine-tune and every <scorer>+finetune run.
_RECORDED_COSTS = (
    ("awn", "finetune_s", "awn_seconds"),
    ("dense", "finetune_s", "dense_seconds"),
    ("teacher-logits", "prepare_s", "teacher_logits_seconds"),
    ("exports", "write_s", "export_seconds"),
)


def _method_names(recipe: Recipe, names: Optional[Sequence[str]]) -> list[str]:
    """The methods asked for, or the recipe's plus those a switch it turned on adds (``Method.auto``)."""
    return list(names) if names else auto_methods(list(recipe.evaluate.methods), recipe.switched_on)


def _training_kit(
    original: nn.Module, data: TaskData, settings: StageSettings, quiet: bool, teacher: Optional[Teacher]
) -> TrainingKit:
    """What a method that trains needs: the per-width fine-tune settings, data and teacher (built if not given)."""
    if teacher is None:
        teacher = run_teacher(original, settings, data, quiet)
    return TrainingKit(data.train, data.collate, data.num_train_examples, settings.per_width, teacher)


def evaluate_conversion(
    out: Path,
    original: nn.Module,
    data: TaskData,
    settings: StageSettings,
    exports: dict[str, Path],
    costs: dict,
    calibration: list,
    *,
    quiet: bool = False,
    methods: Optional[Sequence[str]] = None,
    kd_teacher: Optional[Teacher] = None,
    served: Optional[dict] = None,
) -> dict:
    """Evaluate every width × method of a finished run, write the report and annotate the exports.

    ``kd_teacher``: the distillation teacher of the AWN fine-tune, reused by ``<scorer>+finetune``.
    ``served``: the served exports' speed in their engines (run/served.py), kept in the report.
    """
    recipe = settings.recipe
    widths = [float(w) for w in recipe.export.widths]
    names = _method_names(recipe, methods)
    trains = any(make_method(n).trains for n in names if n in method_names())
    training = _training_kit(original, data, settings, quiet, kd_teacher) if trains else None
    began = time.perf_counter()
    record = evaluate_methods(
        original,
        export_dirs_for(widths, exports),
        data.eval,
        data.collate,
        task=recipe.task,
        metric=recipe.resolved_metric,
        methods=names,
        widths=widths,
        calibration=calibration,
        latency=settings.latency,
        batch_size=recipe.evaluate.batch_size,
        seed=recipe.seed,
        model_name=recipe.model,
        data=recipe.data.eval or recipe.data.train,
        profile=read_provenance(exports[NESTED_DIR]).get("profile"),
        costs={stage: {kind: costs[key]} for stage, kind, key in _RECORDED_COSTS if costs.get(key) is not None},
        out=out,
        scorer=recipe.awn.scorer,
        multiple=recipe.export.multiple,
        training=training,
        quiet=quiet,
        flop_dirs={
            t: exports[flops_dir(out, t).name] for t in recipe.flop_targets if flops_dir(out, t).name in exports
        },
    )
    record["costs"].setdefault("evaluation", {})["total_s"] = round(time.perf_counter() - began, 3)
    if recipe.budget is not None:  # the steps were scaled to fit it: the curve is a budget's curve
        record["budget"] = {
            "minutes": recipe.budget,
            "train_steps": recipe.train.steps,
            "dense_steps": recipe.dense.steps,
        }
    record["derived"] = dict(settings.derived)
    if recipe.task == "causal-lm":  # a perplexity means little without the text and the window it was over
        record["perplexity"] = {
            "text": recipe.data.eval or recipe.data.train,
            "window_tokens": recipe.data.max_length,
            "windows": len(data.eval),
        }
    if served is not None:
        record["costs"]["served-speed"] = {"evaluate_s": served.pop("seconds")}
        record["served"] = served
    write_report(record, out)
    annotate_exports(record)
    return record


def _named_inside(out: Path, spec: Optional[str], what: str, flag: str) -> None:
    """A local path that OUT/recipe.yaml names is read only inside OUT; elsewhere the user must name it."""
    if not spec or spec.startswith("builtin:"):
        return
    path = Path(spec).expanduser()
    if not path.exists():
        try:
            source = classify_source(spec)
        except DataError:
            return  # not a path: the data layer says what is wrong with it
        if source.kind != "file":
            return  # a Hub id
        path = Path(source.name)
    if not path.resolve().is_relative_to(out.resolve()):
        raise AwnError(
            f"{out / RECIPE_FILE} names {what} {spec}, outside {out}; awncompress reads files a folder names "
            f"only inside that folder: pass {flag} {spec} to read it"
        )


def _check_written_apart(out: Path, specs: Sequence[Optional[str]], export_dirs: Iterable[Path]) -> None:
    """What `evaluate` rewrites (the report files, the exports' records and cards) is none of its inputs."""
    inputs = []
    for spec in specs:
        if spec and not spec.startswith("builtin:") and Path(spec).expanduser().exists():
            inputs.append(Path(spec).expanduser())
    written = [out / name for name in REPORT_FILES]
    written += [p / name for p in export_dirs for name in (PROVENANCE_FILE, "README.md")]
    for target in written:
        check_apart(target, inputs, "the report file", inside_ok=True)


def reevaluate(
    out: Path,
    *,
    data: Optional[str] = None,
    train_data: Optional[str] = None,
    model: Optional[str] = None,
    metric: Optional[str] = None,
    methods: Optional[Sequence[str]] = None,
    quiet: bool = False,
) -> dict:
    """`awncompress evaluate OUT`: reload the run's recipe, data and exports, evaluate, rewrite the report.

    ``data`` / ``train_data`` / ``model`` / ``metric`` are what the user named on the command line:
    they replace the recipe's, and only they may point outside OUT (or, for a metric, run code).
    """
    out = Path(out)
    bound_heap()  # its per-width fine-tunes free their buffers as a convert's do (train/heap.py)
    recipe_file = out / RECIPE_FILE
    nested, widths = find_exports(out) if out.is_dir() else (None, {})
    if not recipe_file.exists() or nested is None:
        raise NotAnExportError(f"{out} is not an awncompress convert output (it needs {RECIPE_FILE} and {NESTED_DIR}/)")
    recipe = apply_overrides(
        load_recipe(str(recipe_file)), {"data.eval": data, "data.train": train_data, "evaluate.metric": metric}
    )
    check_settings(recipe, trusted_metric=metric)  # first: running code named by a folder is the worst case
    dense = contained(out, DENSE_DIR, str(out)) if (out / DENSE_DIR).exists() else out / DENSE_DIR
    if model is None and not dense.exists():
        _named_inside(out, recipe.model, "the model", "--model")
    if train_data is None:
        _named_inside(out, recipe.data.train, "the training data", "--train-data")
    if data is None:
        _named_inside(out, recipe.data.eval, "the eval data", "--data")
    _check_written_apart(out, [model, recipe.data.train, recipe.data.eval], widths.values())
    location = model or (str(dense) if dense.exists() else recipe.model)
    original, tokenizer, head_trained = load_model(location, recipe.task)
    if not head_trained:
        raise AwnError(
            f"{dense} is missing and {location} has an untrained task head: the dense reference and the baselines "
            "would be cut from an untrained model; pass --model with the fine-tuned model"
        )
    settings = read_settings(recipe)
    task_data = load_task_data(settings.data, tokenizer)
    calibration = calibration_batches(task_data, settings.calibration_batches, settings.train.batch_size)
    train = read_provenance(nested).get("train") or {}
    exports = {
        NESTED_DIR: nested,
        **{width_key(w): p for w, p in widths.items()},
        **{p.name: p for p in find_flop_exports(out).values()},
    }
    return evaluate_conversion(
        out, original, task_data, settings, exports, train, calibration, quiet=quiet, methods=methods
    )
