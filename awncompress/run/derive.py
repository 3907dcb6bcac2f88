"""Defaults that carry: a setting nobody wrote down is derived from the model, the data and the machine.

The values the benchmarks measured are the defaults for any model (no recipe needed); where a
good value depends on the model or the data, it is derived here, and ``recipe.derived`` records
each derivation, so ``recipe.yaml`` shows what ran and why. A value a recipe or a flag sets is
kept (and checked against the machine's memory).

* ``train.steps``: one pass over the training examples, 100 to 1,000 steps (the demo's 125 steps
  are one pass over its 4,000 examples);
* ``dense.steps``: two passes, 100 to 2,000 steps (the demo's 250);
* ``train.lr``: 3e-4 (best of 5e-5..3e-4 on MiniLM, hidden 384) times 384 / hidden for a wider
  model: Adam's update to a width-d matrix grows with d, and at 3e-4 MPNet (hidden 768) collapsed
  to the majority class in its AWN and per-width fine-tunes, where 1.5e-4 trained;
* ``train.warmup_steps``: a tenth of the steps, which keeps the first Adam steps of a brief
  high-rate fine-tune from throwing away the pretrained weights;
* ``train.extra_widths``: the smallest export width, trained every step (the sandwich rule: +1.0
  points at 12.5 % width on MiniLM over 3 seeds, 25 % perplexity 199.5 → 175.7 on SmolLM2); with no
  full-width pass (``train.full_width_pass: false``) the smallest, middle and largest export widths,
  since nothing else trains the top of the range every step (SmolLM2, 2 seeds: 0.3–5.9 % lower
  perplexity than the smallest and middle alone, most at 75 %);
* ``train.batch_per_width``: on when every batch it draws is an example the fine-tune has not
  drawn yet (few steps over much data, as under ``--budget``): +1.2 / +2.0 / +1.2 points at 12.5 /
  25 / 50 % width on MiniLM at 40 steps (2 seeds), SmolLM2's perplexity 135.9 → 121.7 at 25 % (30
  steps); at one full pass over the data (the demo's 125 steps) it repeats examples and was level
  or up to 0.5 lower, so it stays off there;
* ``train.grad_accum`` / ``evaluate.batch_size``: the largest that fit the machine's memory;
* ``data.max_length``: cut to the positions the model can embed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Optional

from torch import nn

from ..config.recipe import Recipe
from ..data.tokenized import TaskData, example_lengths
from ..errors import AwnError
from ..evaluate.latency import max_positions
from ..evaluate.methods import widest_fine_tune
from ..model.families import find_ffns
from ..model.surgery import full_widths
from ..train.optimizer import vocabulary_matrices
from ..train.settings import TrainConfig, draws_fresh_batches, width_passes
from .memory import (
    GIB,
    ModelShape,
    available_bytes,
    evaluation_bytes,
    fit_eval_batch,
    fit_micro_batch,
    hidden_size,
    logits_note,
    stage_bytes,
    training_bytes,
)

log = logging.getLogger("awncompress")

TRAIN_STEPS = (100, 1000)  # one epoch, within these bounds
LR_REFERENCE = (3e-4, 384)  # (the fine-tune rate measured best, the hidden size it was measured at)
WARMUP_SHARE = 0.1
DENSE_STEPS = (100, 2000)  # two epochs, within these bounds


def _unset(section, name: str) -> bool:
    return name not in section.model_fields_set


def _note(notes: dict[str, str], key: str, why: str) -> None:
    notes[key] = why  # the plan shows these; recipe.yaml records them


def fit_max_length(recipe: Recipe, model: nn.Module) -> Recipe:
    """The recipe with ``data.max_length`` cut to the positions ``model`` can embed (said in the log)."""
    limit = max_positions(model.config)
    if limit is None or recipe.data.max_length <= limit:
        return recipe
    notes = dict(recipe.derived)
    _note(
        notes,
        "data.max_length",
        f"{limit}: the most positions {recipe.model} can embed ({recipe.data.max_length} was asked)",
    )
    return recipe.model_copy(update={"data": recipe.data.model_copy(update={"max_length": limit}), "derived": notes})


def _steps(recipe: Recipe, n: int, notes: dict[str, str], head_trained: bool) -> tuple[int, int]:
    train, dense = recipe.train.steps, recipe.dense.steps
    batch = recipe.train.batch_size
    if _unset(recipe.train, "steps"):
        epoch = math.ceil(n / batch)
        train = min(TRAIN_STEPS[1], max(TRAIN_STEPS[0], epoch))
        _note(
            notes,
            "train.steps",
            f"{train}: one pass over the {n:,} training examples at batch {batch} "
            f"({TRAIN_STEPS[0]} to {TRAIN_STEPS[1]} steps)",
        )
    if _unset(recipe.dense, "steps") and recipe.dense.steps and not head_trained:
        epochs = math.ceil(2 * n / recipe.dense.batch_size)
        dense = min(DENSE_STEPS[1], max(DENSE_STEPS[0], epochs))
        _note(
            notes,
            "dense.steps",
            f"{dense}: two passes over the training examples to train an untrained head "
            f"({DENSE_STEPS[0]} to {DENSE_STEPS[1]} steps)",
        )
    return train, dense


def _lr(recipe: Recipe, model: nn.Module, notes: dict[str, str]) -> float:
    lr, (reference, width) = recipe.train.lr, LR_REFERENCE
    hidden = hidden_size(model.config)
    if not _unset(recipe.train, "lr") or hidden <= width:
        return lr
    lr = float(f"{reference * width / hidden:.2g}")
    _note(
        notes,
        "train.lr",
        f"{lr:g}: {reference:g} (measured at hidden size {width}) × {width}/{hidden}, this model's "
        "hidden size (a wider model takes larger Adam updates per step)",
    )
    return lr


def _warmup(recipe: Recipe, steps: int, notes: dict[str, str]) -> int:
    if not _unset(recipe.train, "warmup_steps"):
        return recipe.train.warmup_steps
    warmup = math.ceil(WARMUP_SHARE * steps)
    _note(notes, "train.warmup_steps", f"{warmup}: a tenth of the {steps} steps, the rate rising linearly to its peak")
    return warmup


def _extra_widths(recipe: Recipe, notes: dict[str, str]) -> list[float]:
    if not _unset(recipe.train, "extra_widths") or recipe.train.mode != "stochastic":
        return list(recipe.train.extra_widths)
    widths = sorted(set(recipe.export.widths))
    if widths[0] >= 1.0:
        return []
    if recipe.train.full_width_pass or widths[-1] >= 1.0 or len(widths) == 1:
        top = "; the full-width pass trains the top" if recipe.train.full_width_pass else ""
        _note(
            notes,
            "train.extra_widths",
            f"[{widths[0]:g}]: the smallest export width, trained every step (the sandwich rule{top})",
        )
        return [widths[0]]
    # No full-width pass: nothing would train the top of the range every step.
    chosen = sorted({widths[0], widths[len(widths) // 2], widths[-1]})
    _note(
        notes,
        "train.extra_widths",
        f"[{', '.join(f'{w:g}' for w in chosen)}]: the smallest, middle and largest export widths, trained every "
        "step (the sandwich rule with no full-width pass)",
    )
    return chosen


def batch_per_width_note(cfg: TrainConfig, n: int) -> tuple[bool, str]:
    """The derived ``train.batch_per_width`` for ``cfg``'s steps and why."""
    passes = width_passes(cfg)
    drawn = cfg.steps * cfg.batch_size * passes
    if draws_fresh_batches(cfg, n):
        return True, (
            f"true: each of the {passes} width passes of a step draws its own batch; "
            f"{cfg.steps} steps × {cfg.batch_size} × {passes} = {drawn:,} draws are all fresh among the {n:,} examples"
        )
    if passes == 1:
        return False, "false: one width pass per step"
    return False, (
        f"false: a batch per width pass ({cfg.steps} steps × {cfg.batch_size} × {passes} = {drawn:,} draws) "
        f"would repeat the {n:,} training examples"
    )


def _batch_per_width(recipe: Recipe, cfg: TrainConfig, n: int, notes: dict[str, str]) -> bool:
    if not _unset(recipe.train, "batch_per_width"):
        return recipe.train.batch_per_width
    on, why = batch_per_width_note(cfg, n)
    _note(notes, "train.batch_per_width", why)
    return on


def teacher_is_live(recipe: Recipe) -> bool:
    """Whether the fine-tunes run the teacher model every step: a causal LM's per-token logits, or
    any distilled hidden states; a classification teacher is otherwise a logit table."""
    return (recipe.task == "causal-lm" and recipe.train.kd_weight > 0) or recipe.train.kd_hidden_weight > 0


def _warn_logits(recipe: Recipe, model: nn.Module, shape: ModelShape) -> None:
    """Warn (in the plan and the run's log) when a language model's vocabulary logits dominate its step."""
    note = logits_note(
        shape,
        tied=bool(getattr(model.config, "tie_word_embeddings", False)),
        teacher_live=teacher_is_live(recipe),
        bytes_per_value=shape.bytes_per_value,
    )
    if note:
        log.warning("%s", note)


def model_shape(model: nn.Module, recipe: Optional[Recipe] = None) -> ModelShape:
    """What the memory estimates need to know about ``model`` (its widest FFN and its FFN layers); with
    ``recipe.awn.grow``, as if every FFN had grown to ``awn.grow_cap`` × its width (the estimates err high);
    with ``recipe.train.freeze_embeddings``, its vocabulary matrices hold no gradient or Adam state."""
    blocks = find_ffns(model)
    ffn_params = sum(p.numel() for b in blocks for p in b.parameters())
    shape = ModelShape.of(model, max(full_widths(blocks)), len(blocks), ffn_params)
    if recipe is not None and recipe.train.freeze_embeddings:
        shape = replace(shape, frozen=sum(p.numel() for p in vocabulary_matrices(model)))
    return shape.grown(recipe.awn.grow_cap) if recipe is not None and recipe.awn.grow else shape


def longest_example(recipe: Recipe, data: TaskData) -> int:
    """Tokens in the longest example of ``data`` (training or evaluation), at most ``data.max_length``:
    batches are padded to their own longest example (``PadCollator``), so this bounds every batch's
    length; short texts (a sentence-classification set) stay far below ``max_length``."""
    longest = max(max(example_lengths(d), default=0) for d in (data.train, data.eval))
    return max(1, min(recipe.data.max_length, longest))


def stage_memory(recipe: Recipe, model: nn.Module, head_trained: bool, seq_len: int) -> dict[str, int]:
    """Bytes each stage of ``recipe``'s run adds to the loaded ``model`` (memory.stage_bytes), at its
    derived micro-batch and evaluation batch over ``seq_len`` tokens (``longest_example``)."""
    r = recipe
    return stage_bytes(
        model_shape(model, r),
        micro_batch=max(1, r.train.batch_size // r.train.grad_accum),
        seq_len=seq_len,
        lm=r.task == "causal-lm",
        teacher_live=teacher_is_live(r),
        checkpointed=r.train.activation_checkpointing,
        dense_stage=not head_trained and r.dense.steps > 0,
        trained_width=widest_fine_tune(r.evaluate.methods, r.export.widths, r.flop_targets),
        eval_batch=r.evaluate.batch_size,
    )


def _fit_micro(recipe: Recipe, shape: ModelShape, seq: int, notes: dict[str, str]) -> tuple[int, bool]:
    """The largest micro-batch that fits, and whether it needs activation checkpointing (turned on,
    when unset, only where not even one example fits without it); AwnError when none fits."""
    lm, live = recipe.task == "causal-lm", teacher_is_live(recipe)
    batch = recipe.train.batch_size
    checkpointed = recipe.train.activation_checkpointing
    micro = fit_micro_batch(shape, batch, seq, lm, live, checkpointed=checkpointed)
    if micro is None and _unset(recipe.train, "activation_checkpointing"):
        micro = fit_micro_batch(shape, batch, seq, lm, live, checkpointed=True)
        if micro is not None:
            checkpointed = True
            without = training_bytes(shape, 1, seq, lm, live) / GIB
            _note(
                notes,
                "train.activation_checkpointing",
                f"on: one example of {seq} tokens needs about {without:.1f} GiB without it; "
                f"{available_bytes() / GIB:.1f} GiB are available",
            )
    if micro is None:
        need = training_bytes(shape, 1, seq, lm, live, checkpointed) / GIB
        raise AwnError(
            f"one training example of {seq} tokens needs about {need:.1f} GiB; {available_bytes() / GIB:.1f} GiB are "
            "available: lower data.max_length or use a machine with more memory"
        )
    return micro, checkpointed


def _memory(recipe: Recipe, model: nn.Module, seq: int, notes: dict[str, str]) -> tuple[int, int, bool]:
    """(grad_accum, evaluation batch, activation checkpointing) that fit batches of ``seq`` tokens an
    example; AwnError when even one example per micro-batch does not."""
    shape = model_shape(model, recipe)
    lm = recipe.task == "causal-lm"
    teacher_live = teacher_is_live(recipe)
    batch, accum = recipe.train.batch_size, recipe.train.grad_accum
    if lm:
        _warn_logits(recipe, model, shape)
    micro, checkpointed = _fit_micro(recipe, shape, seq, notes)
    need = lambda n: training_bytes(shape, n, seq, lm, teacher_live, checkpointed) / GIB  # noqa: E731
    if _unset(recipe.train, "grad_accum") and batch // micro != accum:
        accum = batch // micro
        _note(
            notes,
            "train.grad_accum",
            f"{accum}: micro-batches of {micro} fit the {available_bytes() / GIB:.0f} GiB available "
            f"(a batch of {batch} would need about {need(batch):.1f} GiB)",
        )
    elif batch // accum > micro:
        raise AwnError(
            f"train.batch_size {batch} with train.grad_accum {accum} needs about {need(batch // accum):.1f} GiB per "
            f"micro-batch; set train.grad_accum to {batch // micro} or more"
        )
    evaluation = recipe.evaluate.batch_size
    if _unset(recipe.evaluate, "batch_size"):
        fitted = fit_eval_batch(shape, evaluation, seq, lm)
        if fitted != evaluation:
            _note(
                notes,
                "evaluate.batch_size",
                f"{fitted}: a batch of {evaluation} would need about "
                f"{evaluation_bytes(shape, evaluation, seq, lm) / GIB:.1f} GiB",
            )
            evaluation = fitted
    return accum, evaluation, checkpointed


def derive_defaults(recipe: Recipe, model: nn.Module, data: TaskData, head_trained: bool = True) -> Recipe:
    """The recipe with every unset derivable setting filled in from ``model`` and ``data`` (see the
    module docstring), each derivation recorded in ``recipe.derived``. ``head_trained``: whether the
    dense stage will be skipped (its steps are then left alone)."""
    notes = dict(recipe.derived)
    train_steps, dense_steps = _steps(recipe, data.num_train_examples, notes, head_trained)
    extra = _extra_widths(recipe, notes)
    accum, eval_batch, checkpointed = _memory(recipe, model, longest_example(recipe, data), notes)
    train: TrainConfig = recipe.train.model_copy(
        update={
            "steps": train_steps,
            "extra_widths": extra,
            "grad_accum": accum,
            "activation_checkpointing": checkpointed,
            "lr": _lr(recipe, model, notes),
            "warmup_steps": _warmup(recipe, train_steps, notes),
        }
    )
    train = train.model_copy(
        update={"batch_per_width": _batch_per_width(recipe, train, data.num_train_examples, notes)}
    )
    return recipe.model_copy(
        update={
            "train": train,
            "dense": recipe.dense.model_copy(update={"steps": dense_steps}),
            "evaluate": recipe.evaluate.model_copy(update={"batch_size": eval_batch}),
            "derived": notes,
        }
    )
