"""The settings of one fine-tuning stage: a recipe's ``train`` section (the dense stage reuses it)."""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import Field

from ..errors import TrainingError
from ..files.schema import (
    BatchSize,
    LearningRate,
    NonBlank,
    Seconds,
    Section,
    StepCount,
    StepCountOrNone,
    Temperature,
    UnitInterval,
    Weight,
    Width,
    one_of,
)

TRAIN_MODES: tuple[str, ...] = ("stochastic", "deterministic")
MIXED_PRECISION: tuple[str, ...] = ("no", "fp16", "bf16")


class TrainConfig(Section):
    """Budget and loss of one fine-tuning stage (a recipe's ``train`` section).

    ``batch_size`` is the global batch per optimizer step, split over processes and
    ``grad_accum`` micro-batches. ``mode``: "stochastic" trains each step at full width (if
    ``full_width_pass``) and at one width per layer sampled from that layer's learned profile, plus
    each fraction of ``extra_widths`` (the sandwich rule: e.g. [0.125] always trains the smallest
    width a user will export); "deterministic" trains the rescaled full-width model only.
    ``sample_from``: when given, the sampled width is one of these fractions (the export widths,
    say) instead of one drawn from each layer's profile. ``batch_per_width``: each width pass of a
    step draws its own batch (the step then sees ``width_passes`` batches at the cost of one teacher
    pass per batch) instead of every width seeing the same one. ``narrow_passes``: a width pass
    computes only the FFN neurons it keeps (``narrow.py``; the same function and gradients, checked
    on the model before training) instead of computing all of them and masking the rest.
    ``kd_weight`` mixes distillation from the teacher (1: KD only, 0: task loss only);
    ``kd_hidden_weight`` adds distillation of every layer's output (the mean squared error to the
    teacher's hidden states, relative to their size), one signal per layer per token. ``rate_lr``
    is the learning rate of the per-layer rates. ``max_seconds`` stops training early (null: no
    limit); ``checkpoint_every`` 0 disables checkpoints. ``group_by_length`` batches examples of
    similar length together (see ``batching.IndexStream``) so less time goes on padding; it changes nothing
    when all examples have one length (causal-lm windows). ``activation_checkpointing`` keeps only each
    decoder layer's input for the backward and recomputes the rest (about a third more compute for a
    fraction of the activation memory); derived on when not even one example fits without it.
    ``freeze_embeddings`` leaves the input embedding and a language model's output head (the
    vocabulary-sized matrices; one when tied) as they are: no gradient, no Adam state for them.
    """

    section = "train"
    steps: StepCount = 125
    batch_size: BatchSize = 32
    lr: LearningRate = 3e-4  # a brief fine-tune wants a high rate: best of 5e-5..3e-4 on MiniLM and SmolLM2
    rate_lr: Weight = 0.05
    weight_decay: Weight = 0.0
    warmup_steps: StepCountOrNone = 0
    mode: Annotated[NonBlank, one_of(lambda: TRAIN_MODES)] = "stochastic"
    full_width_pass: bool = True
    extra_widths: list[Width] = Field(default_factory=list)
    sample_from: list[Width] = Field(default_factory=list)
    batch_per_width: bool = False
    narrow_passes: bool = True
    kd_weight: UnitInterval = 0.5
    kd_hidden_weight: Weight = 0.0
    kd_temperature: Temperature = 2.0
    prior_weight: Weight = 1.0
    grad_accum: BatchSize = 1
    mixed_precision: Annotated[NonBlank, one_of(lambda: MIXED_PRECISION)] = "no"
    max_seconds: Optional[Seconds] = None
    checkpoint_every: StepCountOrNone = 50
    group_by_length: bool = True
    activation_checkpointing: bool = False
    freeze_embeddings: bool = False


def width_passes(cfg: TrainConfig) -> int:
    """Forward/backward passes per AWN step: the sampled width, the full width and each sandwich width."""
    if cfg.mode != "stochastic":
        return 1
    return 1 + int(cfg.full_width_pass) + len(cfg.extra_widths)


def batches_per_step(cfg: TrainConfig) -> int:
    """Distinct batches an AWN step draws from the data stream."""
    return width_passes(cfg) if cfg.batch_per_width else 1


def examples_drawn(cfg: TrainConfig) -> int:
    """Stream positions a ``cfg.steps``-step fine-tune draws (an AWN one, with ``batch_per_width``,
    a batch per width pass)."""
    return cfg.steps * cfg.batch_size * batches_per_step(cfg)


def draws_fresh_batches(cfg: TrainConfig, n_train: int) -> bool:
    """Whether a fine-tune with ``batch_per_width`` on would draw only examples it has not drawn
    before: ``steps × batch × width_passes`` within the ``n_train`` training examples. DryTimings: a
    batch per width gained 1.2-2.0 points on MiniLM at 40 steps (mean of 2 seeds) and 8-10 % of
    SmolLM2's perplexity at 30, where the extra batches are fresh; at one full pass over the data
    (MiniLM, 125 steps) it was level or up to 0.5 lower (BENCHMARKS.md, third sweep)."""
    return (
        cfg.mode == "stochastic" and width_passes(cfg) > 1 and cfg.steps * cfg.batch_size * width_passes(cfg) <= n_train
    )


def check_batch(cfg: TrainConfig, processes: int, what: str = "batch size") -> None:
    """TrainingError unless the batch splits evenly over ``grad_accum`` micro-batches × processes."""
    per_micro, rest = divmod(cfg.batch_size, cfg.grad_accum * processes)
    if rest or per_micro == 0:
        raise TrainingError(
            f"{what} {cfg.batch_size} must be a multiple of grad_accum × processes = {cfg.grad_accum * processes}"
        )
