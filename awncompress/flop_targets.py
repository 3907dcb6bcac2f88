"""Pick an (FFN width, attention heads) pair for a target fraction of the dense model's FLOPs.

Each profile says how much of a layer's importance its first units hold: with normalised rate r
over n units, the first m hold ``F(m) = (1 - exp(-r m / n)) / (1 - exp(-r))`` of the mass. The
pick keeps the most importance the budget allows, ``max F_ffn(w) · F_heads(g)`` over every head
count g (whole KV groups) and the widest FFN that then fits, with FLOPs counted by formula. A fast
decaying profile (a layer type the fine-tune learned it can do without) gives up units first; two
untrained profiles (equal rates) share the cut.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from torch import nn

from .adaptive import rate_for_quantile
from .convert import layer_widths
from .errors import WidthError
from .flops import count_flops
from .heads import find_heads

DEFAULT_RATE = rate_for_quantile(1.0, 0.9)  # an untrained profile: its 0.9-quantile is the full width


@dataclass(frozen=True)
class FlopPick:
    """One point of the (width, heads) plane: neurons and query heads per layer (uniform)."""

    width: int
    heads: int
    flops_ratio: float


def _mass(rate: float, kept: int, full: int) -> float:
    return -math.expm1(-rate * kept / full) / -math.expm1(-rate)


def pick_for_flops(model: nn.Module, target: float, seq_len: int, ffn_rate: Optional[float] = None,
                   head_rate: Optional[float] = None) -> FlopPick:
    """The uniform (FFN width, query heads) of a full-size model whose FLOPs are at most ``target`` of
    its own, keeping the most profile mass. Rates: the mean learned normalised rates (None: untrained).
    WidthError when even one KV group and one neuron per layer cost more than ``target``."""
    if not 0.0 < target <= 1.0:
        raise WidthError(f"FLOP target must be a fraction in (0, 1], got {target}")
    d_ff = max(layer_widths(model))
    blocks = find_heads(model)
    units, group = max(b.units for b in blocks), blocks[0].group
    n = len(blocks)
    dense = count_flops(model, seq_len).total
    ffn_rate = DEFAULT_RATE if ffn_rate is None else ffn_rate
    head_rate = DEFAULT_RATE if head_rate is None else head_rate
    best: Optional[FlopPick] = None
    best_mass = -1.0
    for g in range(1, units + 1):
        heads = g * group
        cost = lambda w: count_flops(model, seq_len, ffn_widths=[w] * n, head_counts=[heads] * n).total  # noqa: E731
        if cost(1) > target * dense:
            continue
        lo, hi = 1, d_ff  # the widest FFN that fits: cost grows with w
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if cost(mid) <= target * dense else (lo, mid - 1)
        mass = _mass(ffn_rate, lo, d_ff) * _mass(head_rate, g, units)
        if mass > best_mass:
            best, best_mass = FlopPick(lo, heads, cost(lo) / dense), mass
    if best is None:
        raise WidthError(f"FLOP target {target} is below what one neuron and one head group per layer cost")
    return best
