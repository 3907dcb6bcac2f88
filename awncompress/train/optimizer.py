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


def optimizer_for(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with the per-layer rates in their own group (learning rate ``rate_lr``, no decay)."""
    rate_params = [w.raw_rate for w in awn_units(model)]
    rate_ids = {id(p) for p in rate_params}
    weights = [p for p in model.parameters() if p.requires_grad and id(p) not in rate_ids]
    groups = [{"params": weights, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "base_lr": cfg.lr}]
    if rate_params:
        groups.append({"params": rate_params, "lr": cfg.rate_lr, "weight_decay": 0.0, "base_lr": cfg.rate_lr})
    return torch.optim.AdamW(groups)
