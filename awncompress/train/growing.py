"""Growth during the AWN fine-tune (issue 31): which layers grow and by how much, TINY's statistics
from one pass over a training batch, and the optimizer state of the grown parameters.

Every ``every`` steps, each FFN layer whose learned k-quantile ``-ln(1-k)/λ`` has passed its width
grows to that quantile (``growth.grown_width``). The new neurons' output weights are zero, so the
loss of the next step is the loss the step would have had; their Adam moments start at zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from ..errors import TrainingError
from ..model.adaptive import AdaptiveFFN
from ..model.families import find_ffns, set_config_widths
from ..model.ffn import FFNBlock
from ..model.growth import BottleneckStats, Growth, grow_, grow_to_, grown_width, insert_slices, new_input_rows

# A full-width forward of one training batch: its loss, and a mask of its real (not padding) tokens.
LossPass = Callable[[], tuple[torch.Tensor, Optional[torch.Tensor]]]


@dataclass(frozen=True)
class GrowthConfig:
    """``cap``: a layer grows to at most this multiple of its pretrained width; ``init``: "tiny" or
    "random" input weights for new neurons (``growth.py``); ``every``: steps between checks."""

    cap: float = 2.0
    init: str = "tiny"
    every: int = 1


def check_one_process(processes: int) -> None:
    """TrainingError when growth would train on several processes: each would grow its own replica
    (convert checks it before anything is written; the fine-tune again for callers of the API)."""
    if processes > 1:
        raise TrainingError("awn.grow trains on one process: run without a launcher, or without --grow")


def check_every(steps: int) -> int:
    """Steps between growth checks: ten checks in a fine-tune (every step in a short one)."""
    return max(1, steps // 10)


def due(model: nn.Module, cap: float) -> list[tuple[FFNBlock, int]]:
    """The FFN layers whose learned quantile has passed their width, each with the width it grows to."""
    out = []
    for block in find_ffns(model):
        unit = block.adaptive
        if not isinstance(unit, AdaptiveFFN) or block.kind == "experts":
            continue
        quantile = -math.log(1.0 - unit.k) / float(unit.rate().detach())
        target = grown_width(block.width, quantile, block.base_width, cap)
        if target > block.width:
            out.append((block, target))
    return out


def bottleneck_stats(blocks: list[FFNBlock], loss_pass: LossPass) -> list[BottleneckStats]:
    """TINY's sums for ``blocks`` from one full-width pass: each layer's input, hidden activations and
    the loss's gradient at its output, over the batch's real tokens. No parameter gradient is kept."""
    captured: dict[int, dict] = {i: {} for i in range(len(blocks))}
    handles = []
    for i, block in enumerate(blocks):
        handles.append(block.up.register_forward_pre_hook(lambda _m, args, i=i: captured[i].update(x=args[0])))
        handles.append(
            block.adaptive.register_forward_hook(lambda _m, args, out, i=i: captured[i].update(h=args[0], y=out))
        )
    try:
        with torch.enable_grad():
            loss, mask = loss_pass()
            grads = torch.autograd.grad(loss, [captured[i]["y"] for i in range(len(blocks))], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    stats = []
    for i, grad in enumerate(grads):
        c = captured[i]
        grad = torch.zeros_like(c["y"]) if grad is None else grad
        keep = mask.reshape(-1).bool() if mask is not None and mask.numel() == c["x"].shape[:-1].numel() else None
        rows = [t.reshape(-1, t.shape[-1]) for t in (c["x"], c["h"], grad)]
        s = BottleneckStats()
        s.add(*(r[keep] if keep is not None else r for r in rows))
        stats.append(s)
    return stats


def extend_optimizer_(optimizer: torch.optim.Optimizer, changes: Growth) -> None:
    """Point ``optimizer`` at the grown parameters; their moments get zeros where the new slices went."""
    opt = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the torch optimizer
    for old, new, axis, at, n in changes:
        for group in opt.param_groups:
            group["params"] = [new if p is old else p for p in group["params"]]
        state = opt.state.pop(old, None)
        if state is None:
            continue
        zeros_shape = list(old.shape)
        zeros_shape[axis] = n
        opt.state[new] = {
            k: insert_slices(v, axis, at, v.new_zeros(zeros_shape))
            if torch.is_tensor(v) and v.shape == old.shape
            else v
            for k, v in state.items()
        }


def grow_layers_(
    model: nn.Module,
    cfg: GrowthConfig,
    optimizer: Optional[torch.optim.Optimizer],
    loss_pass: Optional[LossPass],
    generator: torch.Generator,
) -> dict[str, int]:
    """Grow every layer that is due (see :func:`due`), in place; returns layer name → new width.

    ``loss_pass`` feeds TINY's statistics (``cfg.init`` "tiny"); ``optimizer`` follows the new parameters.
    """
    plan = due(model, cfg.cap)
    if not plan:
        return {}
    blocks = [b for b, _ in plan]
    stats = bottleneck_stats(blocks, loss_pass) if cfg.init == "tiny" and loss_pass is not None else None
    grown = {}
    for i, (block, target) in enumerate(plan):
        n = target - block.width
        directions = stats[i].directions(n) if stats is not None else None
        changes = grow_(block, *new_input_rows(block, n, cfg.init, generator, directions))
        if optimizer is not None:
            extend_optimizer_(optimizer, changes)
        grown[block.layer] = target
    _config_says_widest(model)
    return grown


def _config_says_widest(model: nn.Module) -> None:
    """The config's FFN size becomes the widest layer's (as in a per-layer export) so that exports build."""
    if hasattr(model, "config"):
        set_config_widths(model.config, find_ffns(model))


def regrow_(model: nn.Module, widths: list[int]) -> None:
    """Grow ``model``'s layers to ``widths`` (a grown run's checkpoint), with weights a load replaces."""
    grow_to_(model, widths)
    _config_says_widest(model)
