"""Typed recipes: one YAML file describes a whole ``awncompress convert`` run.

A recipe has a few top-level fields (``model``, ``task``, ``seed``, ``out``) and one section per
stage: ``data`` (see :class:`~awncompress.data.tokenized.DataSection`), ``awn`` (conversion), ``dense``
(training an untrained task head first; the result is the distillation teacher), ``train`` (the
brief AWN fine-tune, :class:`~awncompress.train.settings.TrainConfig`), ``export`` and ``evaluate``.
Every field has a default, except ``model``.

Recipes are strict (pydantic models, see files/schema.py): an unknown key at any level, a value of the
wrong type or out of range is a :class:`~awncompress.errors.RecipeError` that names the key by its
dotted path, e.g. ``unknown key 'lr_rate' in train (known: steps, batch_size, ...)`` or
``train.steps must be >= 1 (got 0)``.

Shipped recipes live in ``awncompress/config/recipes/*.yaml`` (package data, so an installed package
finds them) and are named by file stem: ``awncompress convert demo``. Data source strings are
described in :mod:`awncompress.data.sources`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ..checkpoint.layout import WIDTH_DIR_PREFIX, width_key
from ..data.tasks import DEFAULT_METRICS, TASKS
from ..data.tokenized import DataSection
from ..errors import RecipeError
from ..evaluate.methods import default_method_names, make_method, method_names
from ..files.schema import (
    BatchSize,
    GrowCap,
    LearningRate,
    Minutes,
    Multiple,
    NonBlank,
    NonNegativeInt,
    OpenFraction,
    RateScale,
    Scale,
    Section,
    Seed,
    StepCountOrNone,
    Tokens,
    Weight,
    Width,
    cross_error,
    one_of,
)
from ..model.growth import GROW_INITS
from ..model.scorers import SCORERS, get_scorer
from ..model.surgery import AWNConfig
from ..train.settings import TrainConfig

RECIPE_DIR: Path = Path(__file__).resolve().parent / "recipes"
# The recipe switches methods may require (Method.requires), with the flag that turns each on.
SWITCH_FLAGS = {"awn.heads": "--heads", "export.per_layer": "--per-layer"}

# The initial neuron orders: every registered scorer, or "none" to keep the pretrained order.
SCORER_CHOICES = one_of(lambda: (*SCORERS, "none"))


class AwnSection(Section):
    """How FFNs are converted: initial neuron order and the AWN profile and priors.

    ``init_rate`` / ``rate_prior_mean`` are normalised rates λ·d_ff (null: the rate whose
    k-quantile is the full width). ``calibration_batches`` feed the importance scorer. ``heads``:
    order the attention heads too and learn a profile over them (off by default; see heads.py).
    ``grow``: during the fine-tune, a layer whose learned quantile passes its width gains neurons,
    up to ``grow_cap`` × its pretrained width, their input weights from ``grow_init`` ("tiny": TINY's
    expressivity bottleneck; "random"), their output weights zero (off by default; see growth.py).
    ``size_weight``: a Nimble-style cost on each FFN layer's quantile width in units of its pretrained
    width, added to the prior (0: none; see ``adaptive.awn_prior``).
    """

    section = "awn"
    scorer: Annotated[NonBlank, SCORER_CHOICES] = AWNConfig.scorer
    k: OpenFraction = AWNConfig.k
    init_rate: Optional[RateScale] = AWNConfig.init_rate
    rate_prior_mean: RateScale = AWNConfig.rate_prior_mean
    rate_prior_std: Scale = AWNConfig.rate_prior_std
    weight_prior_std: Scale = AWNConfig.weight_prior_std
    calibration_batches: BatchSize = 8
    heads: bool = AWNConfig.heads
    grow: bool = False
    grow_cap: GrowCap = 2.0
    grow_init: Annotated[NonBlank, one_of(lambda: GROW_INITS)] = "tiny"
    size_weight: Weight = 0.0


class DenseSection(Section):
    """A first, ordinary fine-tune of the dense model (e.g. to train a freshly initialised
    classification head). Its result is the distillation teacher. ``steps: 0`` skips it."""

    section = "dense"
    steps: StepCountOrNone = 250
    lr: LearningRate = 5e-5
    batch_size: BatchSize = 32


DEFAULT_FLOP_TARGETS: tuple[float, ...] = (0.2, 0.3, 0.4)  # below what an FFN-only cut reaches (~0.43 on BERT)


class ExportSection(Section):
    """Which checkpoints to write.

    ``widths``: FFN width fractions of the uniform exports. ``multiple``: round each layer's width
    to a multiple of this (null: no rounding). ``per_layer``: for every width, also export
    per-layer widths allocated by the learned profiles at the same FFN FLOPs (``per-layer-<w>/``).
    ``flops``: with ``awn.heads``, fractions of the dense model's FLOPs; each gets a uniform export
    of the (FFN width, heads) pair the learned profiles pick for it (``flops-<t>/``); empty:
    ``DEFAULT_FLOP_TARGETS``. ``formats``: ``hf`` (always written: the run evaluates it), ``onnx``
    (``width-<w>-onnx/``) and ``gguf`` (``width-<w>-gguf-<quant>/``, quantized as ``quant``), each
    checked in its engine before it is written (see awncompress/serve/).
    """

    section = "export"
    widths: list[Width] = Field(default_factory=lambda: [0.125, 0.25, 0.375, 0.5, 0.75], min_length=1)
    multiple: Optional[Multiple] = None
    per_layer: bool = False
    flops: list[Width] = Field(default_factory=list)
    formats: list[Literal["hf", "onnx", "gguf"]] = Field(default_factory=lambda: ["hf"], min_length=1, max_length=3)
    quant: Literal["f32", "f16", "q8_0", "q4_k_m"] = "f16"

    @field_validator("formats", mode="before")
    @classmethod
    def _not_vllm(cls, value: Any) -> Any:
        if isinstance(value, list) and "vllm" in value:
            raise cross_error(
                "export.formats: vllm is for the learned per-layer widths: after the run, awncompress export "
                "OUT/nested --learned --format vllm --multiple 256 (uniform exports serve in vLLM as they are)"
            )
        return value

    @field_validator("formats")
    @classmethod
    def _hf_first(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(["hf", *value]))  # the run evaluates the transformers exports


class EvaluateSection(Section):
    """What to measure on the exported widths.

    ``methods``: registered evaluation methods (``awncompress.evaluate.methods``): "awn" (the exports)
    beside baselines. ``metric``: a shipped metric name or a metric module path (null: the task's
    default). ``latency_repeats: 0`` skips latency.
    """

    section = "evaluate"
    methods: list[Annotated[NonBlank, one_of(method_names)]] = Field(default_factory=default_method_names, min_length=1)
    metric: Optional[NonBlank] = None
    batch_size: BatchSize = 64
    latency_batch_size: BatchSize = 8
    latency_seq_len: Tokens = 64
    latency_repeats: Annotated[NonNegativeInt, Field(le=100000)] = 20


SECTIONS: dict[str, type[Section]] = {
    "data": DataSection,
    "awn": AwnSection,
    "train": TrainConfig,
    "dense": DenseSection,
    "export": ExportSection,
    "evaluate": EvaluateSection,
}


class Recipe(Section):
    """A whole ``awncompress convert`` run. Constructing one validates (and normalises) every field.

    ``model``: a local folder, a Hub id, or a builtin asset ("builtin:minilm", "builtin:smollm2", "builtin:gemma3").
    ``task``: "text-classification" or "causal-lm". ``out``: default output folder (null: the CLI
    decides). ``budget``: minutes the whole run should take (its fine-tunes' steps are scaled to fit
    what a dry pass measured; null: no limit). A setting a recipe leaves out is derived from the model, the data and
    the machine when the run starts (see ``awncompress.run.derive``); ``derived`` records each one and why.
    """

    model: NonBlank
    task: Annotated[NonBlank, one_of(lambda: TASKS)] = "text-classification"
    seed: Seed = 0
    out: Optional[NonBlank] = None
    budget: Optional[Minutes] = None
    data: DataSection = Field(default_factory=DataSection)
    awn: AwnSection = Field(default_factory=AwnSection)
    train: TrainConfig = Field(default_factory=TrainConfig)
    dense: DenseSection = Field(default_factory=DenseSection)
    export: ExportSection = Field(default_factory=ExportSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    derived: dict[str, str] = Field(default_factory=dict)

    @field_validator(*SECTIONS, mode="before")
    @classmethod
    def _empty_section_is_defaults(cls, value: Any) -> Any:
        return {} if value is None else value  # a section with every key commented out

    @model_validator(mode="after")
    def _cross_checks(self) -> "Recipe":
        methods, widths = self.evaluate.methods, self.export.widths
        if len(set(methods)) != len(methods):
            raise cross_error(f"evaluate.methods lists a method twice: {methods}")
        folders: dict[str, float] = {}
        for w in widths:
            if width_key(w) in folders:
                raise cross_error(
                    f"export.widths lists a width twice: {folders[width_key(w)]:g} and {w!r} name the same "
                    f"folder {WIDTH_DIR_PREFIX}{width_key(w)}"
                )
            folders[width_key(w)] = w
        if self.train.warmup_steps > self.train.steps:
            raise cross_error(
                f"train.warmup_steps ({self.train.warmup_steps}) must not exceed train.steps ({self.train.steps})"
            )
        ordering = [m for m in methods if make_method(m).needs_scorer]
        if ordering and self.awn.scorer == "none":
            raise cross_error(
                f"evaluate.methods lists {', '.join(ordering)}, which cuts neurons in awn.scorer's order, "
                "but awn.scorer is 'none'"
            )
        if self.awn.heads and self.awn.scorer != "none" and not get_scorer(self.awn.scorer).scores_heads:
            raise cross_error(
                f"awn.scorer {self.awn.scorer} scores FFN neurons only: choose another scorer for awn.heads"
            )
        if self.export.flops and not self.awn.heads:
            raise cross_error("export.flops sets FLOP targets for FFN+heads exports: set awn.heads to true (--heads)")
        for switch, flag in SWITCH_FLAGS.items():
            needing = [m for m in methods if make_method(m).requires == switch]
            if needing and not self.switched_on(switch):
                raise cross_error(f"evaluate.methods lists {', '.join(needing)}: set {switch} to true ({flag})")
        return self

    def switched_on(self, key: str) -> bool:
        """Whether the recipe switch ``key`` ("section.field", e.g. "awn.heads") is on."""
        section, _, name = key.partition(".")
        return bool(getattr(getattr(self, section), name))

    @property
    def flop_targets(self) -> list[float]:
        """The FLOP targets of the FFN+heads exports (none without ``awn.heads``)."""
        return [float(t) for t in (self.export.flops or DEFAULT_FLOP_TARGETS)] if self.awn.heads else []

    @property
    def resolved_metric(self) -> str:
        """``evaluate.metric``, or the task's default metric when it is null."""
        return self.evaluate.metric or DEFAULT_METRICS[self.task]

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts/lists/scalars; ``recipe_from_dict(r.to_dict()) == r``."""
        return self.model_dump()


# --------------------------------------------------------------------------------------------- files


def recipe_from_dict(data: Any) -> Recipe:
    """Build and validate a :class:`Recipe` from plain data (e.g. parsed YAML)."""
    if not isinstance(data, dict):
        raise RecipeError(f"recipe: expected a mapping, got {type(data).__name__}")
    if "model" not in data and not [k for k in data if k not in Recipe.model_fields]:
        raise RecipeError("the recipe has no 'model' (a local folder, Hub id or builtin:<name>)")
    return Recipe(**data)


def default_recipe(model: str, task: str = "text-classification") -> Recipe:
    """The recipe ``awncompress convert ./my-model`` runs when no recipe is named.

    For causal-lm the dense stage is skipped (the LM head is pretrained; the original model is the
    teacher).
    """
    try:
        recipe = Recipe(model=model, task=task)
    except RecipeError:
        raise RecipeError(f"task must be one of: {', '.join(TASKS)} (got {task!r})") from None
    if task == "causal-lm":
        recipe.dense.steps = 0
    return recipe
