"""The fine-tune's optimizer and learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

from ..model.adaptive import awn_units
from .settings import TrainConfig


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then linear decay to 10 % of the peak."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    return 1.0 - 0.9 * (step - cfg.warmup_steps) / span


def vocabulary_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The vocabulary-sized matrices ``train.freeze_embeddings`` leaves untrained: the input embedding
    and a language model's output head (one parameter when tied).

    They hold most of a small model's parameters (MiniLM's word embedding is 52 % of it, SmolLM2's tied
    one 21 %, Gemma 3 270M's 63 %) but none of the FFN neurons AWN orders; frozen, they need no
    gradient or Adam state, and a tied head's weight gradient (a vocabulary × hidden matmul) is skipped.
    """
    found: dict[int, nn.Parameter] = {}
    for get in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, get, lambda: None)()
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter):
            found[id(weight)] = weight
    return list(found.values())


def freeze_vocabulary_(model: nn.Module) -> None:
    """Stop training :func:`vocabulary_matrices` (no gradient, so no optimizer state either)."""
    for weight in vocabulary_matrices(model):
        weight.requires_grad_(False)


def optimizer_for(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with the per-layer rates in their own group (learning rate ``rate_lr``, no decay)."""
    rate_params = [w.raw_rate for w in awn_units(model)]
    rate_ids = {id(p) for p in rate_params}
    weights = [p for p in model.parameters() if p.requires_grad and id(p) not in rate_ids]
    groups = [{"params": weights, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "base_lr": cfg.lr}]
    if rate_params:
        groups.append({"params": rate_params, "lr": cfg.rate_lr, "weight_decay": 0.0, "base_lr": cfg.rate_lr})
    return torch.optim.AdamW(groups)
