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

from ..errors import TrainingError
from ..files.manifest import remove_written
from ..model.adaptive import adaptive_modules, awn_prior
from ..model.families import find_ffns
from ..model.narrow import width_pass
from .checkpoints import latest_checkpoint, save_checkpoint
from .growing import GrowthConfig, grow_layers_
from .heap import release_free_memory
from .losses import distillation_loss, hidden_loss, lm_loss
from .optimizer import lr_factor
from .recompute import activation_checkpointing
from .run_state import PriorConfig, Run, examples_seen, start_run
from .settings import TrainConfig, batches_per_step
from .sharded_checkpoints import save_sharded
from .sharding import clip_grad_norm_, gather_into, sync_ignored_grads
from .teacher import CachedTeacher, Teacher

__all__ = ["PriorConfig", "TrainResult", "examples_seen", "finetune"]


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
    pct = [round(100 * w.active_width() / w.initial_width) for w in wrappers]  # past 100: the layer grew
    if len(pct) <= 8:
        return "/".join(map(str, pct))
    return f"{min(pct)}–{max(pct)} (mean {sum(pct) / len(pct):.0f})"


def _width_plans(run: Run, step: int) -> list[Optional[list[int]]]:
    """The widths this step trains: None = full width, else one truncation width per layer."""
    cfg, wrappers = run.cfg, run.wrappers
    width_rng = torch.Generator().manual_seed(run.seed * 1_000_033 + step)
    plans: list[Optional[list[int]]] = []
    if not wrappers or cfg.mode == "deterministic" or cfg.full_width_pass:
        plans.append(None)
    if wrappers and cfg.mode == "stochastic":
        if cfg.sample_from:
            pick = cfg.sample_from[int(torch.randint(len(cfg.sample_from), (), generator=width_rng))]
            plans.append([w.width_at(pick) for w in wrappers])
        else:
            plans.append([w.sample_width(width_rng) for w in wrappers])
        plans += [[w.width_at(f) for w in wrappers] for f in cfg.extra_widths]
    return plans


def _teacher_outputs(run: Run, indices: list[int], inputs: dict) -> tuple[Optional[torch.Tensor], Optional[tuple]]:
    """The teacher's logits and, for layer-wise distillation, its hidden states (None: no teacher)."""
    if isinstance(run.teacher, CachedTeacher):
        return run.teacher(indices).to(run.accelerator.device), None
    if run.teacher is not None:
        hidden = run.cfg.kd_hidden_weight > 0
        with torch.no_grad(), run.accelerator.autocast():
            out = run.teacher(**inputs, output_hidden_states=hidden)
        return out.logits, out.hidden_states if hidden else None
    return None, None


def _micro_batch(run: Run, first: int, size: int) -> tuple:
    """The micro-batch at stream positions ``first``.. (this process's share): the batch, the model's
    inputs, whether labels are per token, and the teacher's outputs for it."""
    accelerator, world = run.accelerator, run.world
    indices = [run.stream[p] for p in range(first + run.rank, first + size, world)]
    batch = {k: v.to(accelerator.device) for k, v in run.collate([run.train_set[i] for i in indices]).items()}
    model_inputs = {k: v for k, v in batch.items() if k != "labels"}
    # Token labels: the LM loss is computed here, in chunks (the model's own loss copies the logits twice).
    lm = batch["labels"].dim() == 2
    return (batch, model_inputs, lm, *_teacher_outputs(run, indices, model_inputs))


def _loss(
    run: Run, batch: dict, model_inputs: dict, lm: bool, teacher_logits: Any, teacher_hidden: Any
) -> torch.Tensor:
    """One pass's task loss mixed with distillation from the teacher's logits (and hidden states)."""
    cfg = run.cfg
    with run.accelerator.autocast():
        out = run.model(**(model_inputs if lm else batch), output_hidden_states=teacher_hidden is not None)
    loss = lm_loss(out.logits, batch["labels"]) if lm else out.loss
    if teacher_logits is not None:
        mask = batch.get("attention_mask") if out.logits.dim() == 3 else None
        kd = distillation_loss(out.logits, teacher_logits, cfg.kd_temperature, mask)
        loss = (1 - cfg.kd_weight) * loss + cfg.kd_weight * kd
    if teacher_hidden is not None:
        loss = loss + cfg.kd_hidden_weight * hidden_loss(out.hidden_states, teacher_hidden, batch.get("attention_mask"))
    return loss


def _grow(run: Run, step: int) -> None:
    """After step ``step``: grow the layers whose quantile passed their width (``growing.py``), TINY's
    statistics from the step's first micro-batch at full width."""
    cfg = run.cfg

    def loss_pass() -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        first = step * (batches_per_step(cfg) if run.wrappers else 1) * cfg.batch_size
        batch, inputs, lm, logits, hidden = _micro_batch(run, first, cfg.batch_size // cfg.grad_accum)
        with width_pass(run.wrappers, None, run.narrowing):
            return _loss(run, batch, inputs, lm, logits, hidden), batch.get("attention_mask")

    generator = torch.Generator().manual_seed(run.seed * 1_000_037 + step)
    grow_layers_(run.inner, run.growth, run.optimizer, loss_pass, generator)


def _train_step(run: Run, step: int) -> tuple[float, float]:
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
                loss = _loss(run, batch, model_inputs, lm, teacher_logits, teacher_hidden) / (
                    cfg.grad_accum * len(plans)
                )
                step_loss += float(loss.detach())
                if last and run.prior is not None and cfg.prior_weight:
                    p = run.prior
                    penalty = (
                        cfg.prior_weight
                        * awn_prior(run.inner, p.rate_prior_mean, p.rate_prior_std, p.weight_prior_std, p.size_weight)
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


def _checkpoint(run: Run, folder: Path, finished: int, seconds: float, losses: list[float], desc: str) -> None:
    """Save step-``finished``/ and drop older checkpoints (main process only)."""
    accelerator = run.accelerator
    if run.world > 1:
        accelerator.wait_for_everyone()
    state = {"step": finished, "seconds": seconds, "losses": losses, "stage": desc}
    if run.growth is not None:
        state["widths"] = [b.width for b in find_ffns(run.inner)]
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
    growth: Optional[GrowthConfig] = None,
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
        growth: let layers grow past their width where their learned quantile passes it (``growing.py``).
    """
    checkpoint = latest_checkpoint(checkpoint_dir) if resume else None
    with activation_checkpointing(model, cfg.activation_checkpointing):
        run, start, done_seconds, losses = start_run(
            model, train_set, collate, cfg, teacher, prior, num_examples, seed, checkpoint, alone, growth
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
            if run.growth is not None and finished % run.growth.every == 0 and finished < cfg.steps:
                _grow(run, step)
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
