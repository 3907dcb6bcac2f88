"""`awncompress convert` end to end, one function call per arrow of the data flow:

recipe → load model → (dense stage if the head is untrained) → score → order → wrap → fine-tune
→ fold → export widths → evaluate (reloaded from disk) → report.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import transformers
from torch import nn

from .adaptive import profile_summary, widths_for_budget
from .atomic import atomic_dir, check_writable
from .convert import AWNConfig, convert_, fold_, layer_widths
from .data import DataConfig, TaskData, load_task_data
from .errors import AwnError
from .export import export_nested, export_per_layer, export_uniform, per_layer_dir, width_dir
from .finetune import PriorConfig, TrainConfig, TrainResult, finetune, latest_checkpoint
from .loading import check_safe_checkpoint
from .recipes import Recipe, dump_recipe
from .teacher import CachedTeacher, distillation_teacher

DENSE_DIR = "dense"

log = logging.getLogger("awncompress")

BUILTIN_MODELS = ("builtin:minilm", "builtin:smollm2")


class ModelLoadError(AwnError, OSError):
    """A model that cannot be found or loaded (missing path, Hub unreachable, no safetensors)."""


@dataclass
class ConvertResult:
    """Where `convert` wrote things and what the stages cost."""

    out: Path
    exports: dict[str, Path]
    awn: TrainResult
    dense: Optional[TrainResult] = None
    report: Optional[dict] = None
    profile: dict = field(default_factory=dict)


def resolve_model(name: str) -> str:
    """A loadable location for a model name: builtin asset folder, local folder, or the Hub id."""
    if name.startswith("builtin:"):
        from . import assets

        if name == "builtin:minilm":
            return str(assets.minilm_path())
        if name == "builtin:smollm2":
            return str(assets.smollm2_path())
        raise ModelLoadError(f"unknown builtin model {name!r}; builtins: {', '.join(BUILTIN_MODELS)}")
    path = Path(name).expanduser()
    if path.exists():
        check_safe_checkpoint(path)
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith(("/", "\\")):
        raise ModelLoadError(f"model path {name} does not exist")
    return name  # a Hub id


def _auto_class(task: str) -> type:
    return transformers.AutoModelForSequenceClassification if task == "text-classification" else transformers.AutoModelForCausalLM


def load_model(name: str, task: str, num_labels: Optional[int] = None) -> tuple[nn.Module, Any, bool]:
    """Model, tokenizer and whether its task head came trained (False: a dense stage is needed).

    Safetensors only and no remote code; a Hub id without network gets one plain sentence.
    """
    location = resolve_model(name)
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": False}
    if task == "text-classification" and num_labels is not None:
        kwargs["num_labels"] = num_labels
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(location, trust_remote_code=False)
        model, info = _auto_class(task).from_pretrained(location, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if location == name and not Path(name).exists():
            raise ModelLoadError(f"could not load {name!r} from the Hugging Face Hub (is there a network connection? "
                                 f"a local folder works offline): {first}") from None
        raise ModelLoadError(f"could not load model from {location}: {first}") from None
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    head_trained = not info.get("missing_keys")
    return model.eval(), tokenizer, head_trained


def data_config(recipe: Recipe) -> DataConfig:
    """The data layer's config from a recipe."""
    d = recipe.data
    return DataConfig(task=recipe.task, train=d.train, eval=d.eval, text_column=d.text_column,
                      text_pair_column=d.text_pair_column, label_column=d.label_column, max_length=d.max_length,
                      max_train_examples=d.max_train_examples, max_eval_examples=d.max_eval_examples,
                      eval_fraction=d.eval_fraction, seed=recipe.seed)


def awn_config(recipe: Recipe) -> AWNConfig:
    """The conversion config from a recipe's ``awn`` section."""
    a = recipe.awn
    return AWNConfig(scorer=a.scorer, k=a.k, init_rate=a.init_rate, rate_prior_mean=a.rate_prior_mean,
                     rate_prior_std=a.rate_prior_std, weight_prior_std=a.weight_prior_std, seed=recipe.seed)


def train_config(recipe: Recipe) -> TrainConfig:
    """The AWN fine-tune config from a recipe's ``train`` section (same field names)."""
    return TrainConfig(**dataclasses.asdict(recipe.train))


def dense_config(recipe: Recipe) -> TrainConfig:
    """The dense head-training stage: task loss only, the recipe's ``dense`` budget."""
    t = train_config(recipe)
    return dataclasses.replace(t, steps=recipe.dense.steps, lr=recipe.dense.lr, batch_size=recipe.dense.batch_size,
                               kd_weight=0.0, mode="deterministic")


def calibration_batches(data: TaskData, n_batches: int, batch_size: int) -> list[dict[str, torch.Tensor]]:
    """The first training batches, for activation statistics (never the eval data)."""
    n = min(len(data.train), n_batches * batch_size)
    return [data.collate([data.train[i] for i in range(s, min(n, s + batch_size))]) for s in range(0, n, batch_size)]


def run_convert(
    recipe: Recipe,
    out: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    evaluate: bool = True,
) -> ConvertResult:
    """Run a whole conversion as the recipe says; see the module docstring for the stages."""
    out = Path(out)
    if resume:
        if not (out / "checkpoints").exists():
            raise AwnError(f"nothing to resume in {out}: it has no checkpoints/ folder")
    else:
        check_writable(out, overwrite)
    # Load and check the model and data before anything is written: bad input leaves no folder.
    torch.manual_seed(recipe.seed)
    model, tokenizer, head_trained = load_model(recipe.model, recipe.task)
    data = load_task_data(data_config(recipe), tokenizer)
    if recipe.task == "text-classification" and model.config.num_labels != data.num_labels:
        if head_trained:
            raise ModelLoadError(f"{recipe.model} has a head for {model.config.num_labels} labels but the data has {data.num_labels}")
        model, tokenizer, head_trained = load_model(recipe.model, recipe.task, data.num_labels)
    if data.label_names and recipe.task == "text-classification":
        model.config.id2label = dict(enumerate(data.label_names))
        model.config.label2id = {n: i for i, n in enumerate(data.label_names)}
    if not resume and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(dump_recipe(recipe))

    dense_result = None
    if not head_trained:
        log.info("the task head of %s is untrained: training it densely first (it becomes the KD teacher)", recipe.model)
        dense_result = finetune(model, data.train, data.collate, dense_config(recipe), num_examples=data.num_train_examples,
                                seed=recipe.seed, checkpoint_dir=out / "checkpoints" / "dense", resume=resume, quiet=quiet,
                                desc="dense head")
        save_dense(model, tokenizer, out / DENSE_DIR)
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    began = time.perf_counter()
    kd_teacher = (distillation_teacher(teacher, recipe.task, data.train, data.collate, recipe.evaluate.batch_size, quiet)
                  if recipe.train.kd_weight > 0 else None)
    teacher_seconds = round(time.perf_counter() - began, 3) if isinstance(kd_teacher, CachedTeacher) else None

    cfg = awn_config(recipe)
    batches = calibration_batches(data, recipe.awn.calibration_batches, recipe.train.batch_size)
    convert_(model, cfg, calibration=batches)
    awn_result = finetune(
        model, data.train, data.collate, train_config(recipe), num_examples=data.num_train_examples,
        prior=PriorConfig(cfg.rate_prior_mean, cfg.rate_prior_std, cfg.weight_prior_std),
        teacher=kd_teacher, seed=recipe.seed,
        checkpoint_dir=out / "checkpoints" / "awn", resume=resume, quiet=quiet, desc="awn fine-tune",
    )
    profile = profile_summary(model)
    fold_(model)

    costs = {"awn_seconds": awn_result.seconds, "dense_seconds": dense_result.seconds if dense_result else None,
             "teacher_logits_seconds": teacher_seconds}
    exports = write_exports(model, tokenizer, recipe, out, profile, extra={"train": costs}, overwrite=True)
    result = ConvertResult(out=out, exports=exports, awn=awn_result, dense=dense_result, profile=profile)
    if evaluate:
        from .evaluate_run import evaluate_conversion  # evaluation pulls in matplotlib: only when asked

        result.report = evaluate_conversion(out, teacher, data, recipe, exports, costs, batches, quiet=quiet,
                                            kd_teacher=kd_teacher)
    if latest_checkpoint(out / "checkpoints" / "awn") is not None:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the exports hold everything now
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
    exports = {"nested": export_nested(model, out / "nested", widths=recipe.export.widths, profile=profile, tokenizer=tokenizer,
                                       source=source, overwrite=overwrite, extra=extra)}
    for w in recipe.export.widths:
        exports[f"{w:g}"] = export_uniform(model, width_dir(out, w), float(w), tokenizer=tokenizer, source=source,
                                           multiple=recipe.export.multiple, overwrite=overwrite, extra=extra)
    if recipe.export.per_layer:
        d_ff = max(layer_widths(model))
        for w in recipe.export.widths:
            widths = widths_for_budget(profile["normalised_rates"], d_ff, float(w))
            exports[f"per-layer-{w:g}"] = export_per_layer(model, per_layer_dir(out, w), widths, tokenizer=tokenizer,
                                                           source=source, method="awn-per-layer", overwrite=overwrite,
                                                           extra={**(extra or {}), "flop_budget": float(w)})
    return exports
