"""A fine-tune's setup: the accelerator, optimizer, data stream and teacher every step reads
(``Run``), resumed from a checkpoint when there is one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..data.tokenized import example_lengths
from ..errors import TrainingError
from ..model.adaptive import awn_units
from ..model.narrow import Narrowing, narrowing_agrees, plan_narrowing
from .batching import IndexStream
from .checkpoints import load_checkpoint, read_trainer_state
from .growing import GrowthConfig, check_one_process, regrow_
from .optimizer import freeze_vocabulary_, optimizer_for
from .settings import TrainConfig, check_batch, examples_drawn
from .sharded_checkpoints import load_sharded
from .sharding import shard_copy, sharding_requested
from .teacher import CachedTeacher, Teacher


@dataclass
class PriorConfig:
    """The AWN prior terms, named as in AWNConfig and the recipe's ``awn`` section."""

    rate_prior_mean: float
    rate_prior_std: float
    weight_prior_std: float
    size_weight: float = 0.0


@dataclass
class Run:
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
    growth: Optional[GrowthConfig] = None  # layers grow past their width (growing.py)


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


def start_run(
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
    growth: Optional[GrowthConfig] = None,
) -> tuple[Run, int, float, list[float]]:
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
    if growth is not None:
        check_one_process(world)
    if growth is not None and checkpoint is not None:  # the checkpoint's layers may have grown
        regrow_(model, read_trainer_state(checkpoint).get("widths") or [])
    if cfg.freeze_embeddings:
        freeze_vocabulary_(model)
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
    run = Run(
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
        growth=growth,
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


def _narrowing(run: Run) -> Narrowing:
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
