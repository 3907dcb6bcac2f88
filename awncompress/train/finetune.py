"""The brief fine-tune: task loss or KD from the frozen original, plus the AWN prior / N.

Runs through ``accelerate`` (device placement, fp16/bf16, several processes under
``accelerate launch``). Reproducible and resumable by construction: the data order, dropout and
sampled widths of step ``s`` depend only on ``(seed, s)``, so a run resumed from a checkpoint
takes exactly the steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.tokenized import example_lengths
from ..errors import TrainingError
from ..files.manifest import remove_written
from ..model.adaptive import adaptive_modules, awn_prior, awn_units
from ..model.narrow import Narrowing, narrowing_agrees, plan_narrowing, width_pass
from .batching import IndexStream
from .checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from .heap import release_free_memory
from .losses import distillation_loss, hidden_loss, lm_loss
from .optimizer import lr_factor, optimizer_for
from .recompute import activation_checkpointing
from .settings import TrainConfig, batches_per_step, check_batch, examples_drawn
from .sharded_checkpoints import load_sharded, save_sharded
from .sharding import clip_grad_norm_, gather_into, shard_copy, sharding_requested, sync_ignored_grads
from .teacher import CachedTeacher, Teacher


@dataclass
class PriorConfig:
    """The AWN prior terms, named as in AWNConfig and the recipe's ``awn`` section."""

    rate_prior_mean: float
    rate_prior_std: float
    weight_prior_std: float


@dataclass
class TrainResult:
    """What a stage did: steps taken, wall seconds (resumed parts included), the task/KD loss per step
    and the wall seconds of each step this process ran (the first one includes warm-up)."""

    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    stopped_early: bool = False
    step_seconds: list[float] = field(default_factory=list)


def _width_postfix(model: nn.Module) -> str:
    wrappers = adaptive_modules(model)
    if not wrappers:
        return ""
    pct = [round(100 * w.active_width() / w.width) for w in wrappers]
    if len(pct) <= 8:
        return "/".join(map(str, pct))
    return f"{min(pct)}–{max(pct)} (mean {sum(pct) / len(pct):.0f})"


@dataclass
class _Run:
    """One fine-tune in progress: what every step needs."""

    accelerator: Any
    model: nn.Module  # as prepared by accelerate (maybe DDP-wrapped)
    inner: nn.Module  # the model itself
    optimizer: Any
    wrappers: list
    teacher: Optional[Teacher]
    stream: IndexStream
    train_set: Any
    collate: Any
    cfg: TrainConfig
    prior: Optional[PriorConfig]
    num_examples: int
    seed: int
    narrowing: Narrowing = field(default_factory=list)  # which units' width passes compute only their kept neurons
    sharded: bool = False  # ``model`` is an FSDP2-sharded copy (sharding.py); the caller's gets its state at the end
    rank: int = 0  # this process among the ``world`` that share each batch (1: it trains alone)
    world: int = 1


def _width_plans(run: _Run, step: int) -> list[Optional[list[int]]]:
    """The widths this step trains: None = full width, else one truncation width per layer."""
    cfg, wrappers = run.cfg, run.wrappers
    width_rng = torch.Generator().manual_seed(run.seed * 1_000_033 + step)
    plans: list[Optional[list[int]]] = []
    if not wrappers or cfg.mode == "deterministic" or cfg.full_width_pass:
        plans.append(None)
    if wrappers and cfg.mode == "stochastic":
        if cfg.sample_from:
            pick = cfg.sample_from[int(torch.randint(len(cfg.sample_from), (), generator=width_rng))]
            plans.append([max(1, round(pick * w.width)) for w in wrappers])
        else:
            plans.append([w.sample_width(width_rng) for w in wrappers])
        plans += [[max(1, round(f * w.width)) for w in wrappers] for f in cfg.extra_widths]
    return plans


def _teacher_outputs(run: _Run, indices: list[int], inputs: dict) -> tuple[Optional[torch.Tensor], Optional[tuple]]:
    """The teacher's logits and, for layer-wise distillation, its hidden states (None: no teacher)."""
    if isinstance(run.teacher, CachedTeacher):
        return run.teacher(indices).to(run.accelerator.device), None
    if run.teacher is not None:
        hidden = run.cfg.kd_hidden_weight > 0
        with torch.no_grad(), run.accelerator.autocast():
            out = run.teacher(**inputs, output_hidden_states=hidden)
        return out.logits, out.hidden_states if hidden else None
    return None, None


def _micro_batch(run: _Run, first: int, size: int) -> tuple:
    """The micro-batch at stream positions ``first``.. (this process's share): the batch, the model's
    inputs, whether labels are per token, and the teacher's outputs for it."""
    accelerator, world = run.accelerator, run.world
    indices = [run.stream[p] for p in range(first + run.rank, first + size, world)]
    batch = {k: v.to(accelerator.device) for k, v in run.collate([run.train_set[i] for i in indices]).items()}
    model_inputs = {k: v for k, v in batch.items() if k != "labels"}
    # Token labels: the LM loss is computed here, in chunks (the model's own loss copies the logits twice).
    lm = batch["labels"].dim() == 2
    return (batch, model_inputs, lm, *_teacher_outputs(run, indices, model_inputs))


def _train_step(run: _Run, step: int) -> tuple[float, float]:
    """One optimizer step over ``grad_accum`` micro-batches × the step's width plans; (loss, prior/N)."""
    cfg, accelerator = run.cfg, run.accelerator
    world = run.world
    torch.manual_seed(run.seed * 1_000_003 + step)  # dropout of this step, identical on resume
    for group in run.optimizer.param_groups:
        group["lr"] = group["base_lr"] * lr_factor(step, cfg)
    plans = _width_plans(run, step)
    blocks = batches_per_step(cfg) if run.wrappers else 1
    micro_size = cfg.batch_size // cfg.grad_accum
    step_loss, step_prior = 0.0, 0.0
    for micro in range(cfg.grad_accum):
        for i, plan in enumerate(plans):
            if i < blocks:  # every pass its own batch, or the first pass's batch for all of them
                batch, model_inputs, lm, teacher_logits, teacher_hidden = _micro_batch(
                    run, (step * blocks + i) * cfg.batch_size + micro * micro_size, micro_size
                )
            last = micro == cfg.grad_accum - 1 and i == len(plans) - 1
            with (
                nullcontext() if last or world == 1 or run.sharded else accelerator.no_sync(run.model),
                width_pass(run.wrappers, plan, run.narrowing),
            ):
                with accelerator.autocast():
                    out = run.model(**(model_inputs if lm else batch), output_hidden_states=teacher_hidden is not None)
                loss = lm_loss(out.logits, batch["labels"]) if lm else out.loss
                if teacher_logits is not None:
                    mask = batch.get("attention_mask") if out.logits.dim() == 3 else None
                    kd = distillation_loss(out.logits, teacher_logits, cfg.kd_temperature, mask)
                    loss = (1 - cfg.kd_weight) * loss + cfg.kd_weight * kd
                if teacher_hidden is not None:
                    loss = loss + cfg.kd_hidden_weight * hidden_loss(
                        out.hidden_states, teacher_hidden, batch.get("attention_mask")
                    )
                loss = loss / (cfg.grad_accum * len(plans))
                step_loss += float(loss.detach())
                if last and run.prior is not None and cfg.prior_weight:
                    p = run.prior
                    penalty = (
                        cfg.prior_weight
                        * awn_prior(run.inner, p.rate_prior_mean, p.rate_prior_std, p.weight_prior_std)
                        / run.num_examples
                    )
                    step_prior = float(penalty.detach())
                    loss = loss + penalty
                accelerator.backward(loss)
    if run.sharded:
        sync_ignored_grads([w.raw_rate for w in run.wrappers])
        clip_grad_norm_(run.model.parameters(), 1.0)
    else:
        accelerator.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    if world > 1:  # each process saw its share of the batch: the step's loss is their mean
        step_loss = float(accelerator.reduce(torch.tensor(step_loss, device=accelerator.device), "mean"))
    return step_loss, step_prior


def _checkpoint(run: _Run, folder: Path, finished: int, seconds: float, losses: list[float], desc: str) -> None:
    """Save step-``finished``/ and drop older checkpoints (main process only)."""
    accelerator = run.accelerator
    if run.world > 1:
        accelerator.wait_for_everyone()
    state = {"step": finished, "seconds": seconds, "losses": losses, "stage": desc}
    if run.sharded:  # every process writes its shards
        save_sharded(folder / f"step-{finished}", run.model, run.optimizer, state, run.rank)
    elif run.rank == 0:
        optimizer = run.optimizer.optimizer if hasattr(run.optimizer, "optimizer") else run.optimizer
        save_checkpoint(folder / f"step-{finished}", run.inner, optimizer, state)
    if run.rank == 0:
        for old in folder.glob("step-*"):
            if old.name != f"step-{finished}":
                remove_written(old)
    if run.world > 1:
        accelerator.wait_for_everyone()


def _stream(train_set: Any, cfg: TrainConfig, seed: int) -> IndexStream:
    return IndexStream(
        len(train_set), seed, example_lengths(train_set) if cfg.group_by_length else None, cfg.batch_size
    )


def examples_seen(train_set: Any, cfg: TrainConfig, seed: int) -> list[int]:
    """The training examples a ``cfg.steps``-step fine-tune with ``seed`` draws, sorted: what a
    cached teacher must hold logits for (every fine-tune of a run walks this same stream)."""
    drawn = examples_drawn(cfg)
    if drawn >= len(train_set):  # the first epoch is a permutation: every example
        return list(range(len(train_set)))
    stream = _stream(train_set, cfg, seed)
    return sorted(stream[p] for p in range(drawn))


def _start(
    model: nn.Module,
    train_set: Any,
    collate: Any,
    cfg: TrainConfig,
    teacher: Optional[Teacher],
    prior: Optional[PriorConfig],
    num_examples: int,
    seed: int,
    checkpoint: Optional[Path],
    alone: bool,
) -> tuple[_Run, int, float, list[float]]:
    """Accelerator, optimizer and data stream; the step, seconds and losses to resume from."""
    from accelerate import Accelerator

    # cpu=True without CUDA: under torchrun that selects gloo (MULTI_CPU) instead of a silent single process.
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    world = 1 if alone else accelerator.num_processes
    check_batch(cfg, world)
    if isinstance(teacher, CachedTeacher) and len(teacher) != len(train_set):
        raise TrainingError(
            f"the cached teacher holds {len(teacher)} examples but the training set has {len(train_set)}"
        )
    sharded = world > 1 and sharding_requested()
    optimizer = optimizer_for(model, cfg)
    state = {"step": 0, "seconds": 0.0, "losses": []}
    if checkpoint is not None and not sharded:
        state = load_checkpoint(checkpoint, model, optimizer, max_step=cfg.steps)
    prepared, inner, optimizer = _prepare(accelerator, model, optimizer, cfg, sharded, alone)
    if checkpoint is not None and sharded:  # each process reads its shards into the sharded copy
        state = load_sharded(checkpoint, prepared, optimizer, max_step=cfg.steps)
    start, done_seconds, losses = state["step"], state["seconds"], state["losses"]
    if teacher is not None and not isinstance(teacher, CachedTeacher):
        teacher = teacher.eval().requires_grad_(False)
        teacher = shard_copy(teacher, accelerator.device, cfg.mixed_precision) if sharded else teacher
        teacher = teacher.to(accelerator.device)
    run = _Run(
        accelerator=accelerator,
        model=prepared,
        inner=inner,
        optimizer=optimizer,
        wrappers=awn_units(inner),
        teacher=teacher,
        stream=_stream(train_set, cfg, seed),
        train_set=train_set,
        collate=collate,
        cfg=cfg,
        prior=prior,
        num_examples=num_examples,
        seed=seed,
        sharded=sharded,
        rank=0 if alone else accelerator.process_index,
        world=world,
    )
    run.narrowing = _narrowing(run)
    return run, start, done_seconds, losses


def _prepare(
    accelerator: Any, model: nn.Module, optimizer: Any, cfg: TrainConfig, sharded: bool, alone: bool
) -> tuple[nn.Module, nn.Module, Any]:
    """The model the steps run (FSDP2-sharded copy, accelerate-prepared, or the model itself when it
    trains alone), the model itself (or the sharded copy), and the optimizer over the former."""
    if sharded:
        student = shard_copy(model, accelerator.device, cfg.mixed_precision)
        return student, student, optimizer_for(student, cfg)
    if alone:
        return model.to(accelerator.device), model, optimizer
    prepared, optimizer = accelerator.prepare(model, optimizer)
    return prepared, accelerator.unwrap_model(prepared), optimizer


def _narrowing(run: _Run) -> Narrowing:
    """The units whose width passes compute only their kept neurons: planned, then checked on two
    training examples against the masked passes (a model that disagrees keeps them masked)."""
    if not (run.cfg.narrow_passes and run.cfg.mode == "stochastic" and run.wrappers):
        return []
    narrowing = plan_narrowing(run.inner, run.wrappers)
    if not any(narrowing):
        return []
    batch = run.collate([run.train_set[i] for i in range(min(2, len(run.train_set)))])
    inputs = {k: v.to(run.accelerator.device) for k, v in batch.items() if k != "labels"}
    return narrowing if narrowing_agrees(run.inner, run.wrappers, narrowing, inputs) else []


def finetune(
    model: nn.Module,
    train_set: Any,
    collate: Any,
    cfg: TrainConfig,
    *,
    num_examples: int,
    prior: Optional[PriorConfig] = None,
    teacher: Optional[Teacher] = None,
    seed: int = 0,
    checkpoint_dir: Optional[Path] = None,
    resume: bool = False,
    quiet: bool = False,
    desc: str = "fine-tune",
    alone: bool = False,
) -> TrainResult:
    """Fine-tune ``model`` in place for ``cfg.steps`` optimizer steps; returns what it did.

    Args:
        model: a converted (adaptive) model, or a vanilla one for the dense stage.
        train_set / collate: indexable examples and the function that pads a list of them.
        num_examples: N, the training-set size dividing the prior.
        prior: the AWN prior terms; None trains without them (dense stage).
        teacher: a frozen model to distil from (mixing weight ``cfg.kd_weight``), or its logits over
            ``train_set`` computed once (``CachedTeacher``); None: task loss only.
        checkpoint_dir: where ``step-N/`` checkpoints go every ``cfg.checkpoint_every`` steps.
        resume: continue from the latest checkpoint in ``checkpoint_dir``.
        alone: train on this process only, even under a launcher with several (the evaluation's
            per-width fine-tunes, which only the main process runs).
    """
    checkpoint = latest_checkpoint(checkpoint_dir) if resume else None
    with activation_checkpointing(model, cfg.activation_checkpointing):
        run, start, done_seconds, losses = _start(
            model, train_set, collate, cfg, teacher, prior, num_examples, seed, checkpoint, alone
        )
        bar = tqdm(
            total=cfg.steps,
            initial=start,
            desc=desc,
            disable=quiet or run.rank != 0,
            dynamic_ncols=True,
        )
        began = time.perf_counter()
        stopped_early = False
        step_seconds: list[float] = []
        run.model.train()
        for step in range(start, cfg.steps):
            if cfg.max_seconds is not None and done_seconds + time.perf_counter() - began > cfg.max_seconds:
                stopped_early = True
                break
            step_began = time.perf_counter()
            step_loss, step_prior = _train_step(run, step)
            step_seconds.append(time.perf_counter() - step_began)
            if not math.isfinite(step_loss):
                raise TrainingError(
                    f"{desc}: the loss is {step_loss} at step {step + 1}: training diverged "
                    f"(the learning rate {cfg.lr:g} may be too high)"
                )
            losses.append(round(step_loss, 6))
            bar.update(1)
            bar.set_postfix_str(
                f"loss={step_loss:.4f}"
                + (f" prior/N={step_prior:.3g} width%={_width_postfix(run.inner)}" if run.wrappers else "")
            )
            finished = step + 1
            if (
                checkpoint_dir is not None
                and cfg.checkpoint_every
                and (finished % cfg.checkpoint_every == 0 or finished == cfg.steps)
            ):
                _checkpoint(run, checkpoint_dir, finished, done_seconds + time.perf_counter() - began, losses, desc)
        bar.close()
        run.model.eval()
        if run.sharded:
            gather_into(run.model, model)
        seconds = done_seconds + time.perf_counter() - began
    del run  # its optimizer state, gradients and any sharded copy, before their pages are handed back
    release_free_memory()
    return TrainResult(
        steps=len(losses),
        seconds=round(seconds, 3),
        losses=losses,
        stopped_early=stopped_early,
        step_seconds=step_seconds,
    )
