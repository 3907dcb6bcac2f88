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

from ..errors import WidthError
from .adaptive import rate_for_quantile
from .flops import count_flops
from .heads import find_heads
from .surgery import layer_widths

DEFAULT_RATE = rate_for_quantile(1.0, 0.9)  # an untrained profile: its 0.9-quantile is the full width


@dataclass(frozen=True)
class FlopPick:
    """One point of the (width, heads) plane: neurons and query heads per layer (uniform)."""

    width: int
    heads: int
    flops_ratio: float


@dataclass(frozen=True)
class LayerPick:
    """Per-layer neurons and query heads within a FLOP target."""

    widths: list[int]
    heads: list[int]
    flops_ratio: float


def _mass(rate: float, kept: int, full: int) -> float:
    return -math.expm1(-rate * kept / full) / -math.expm1(-rate)


def pick_for_flops(
    model: nn.Module, target: float, seq_len: int, ffn_rate: Optional[float] = None, head_rate: Optional[float] = None
) -> FlopPick:
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


def _unit_costs(model: nn.Module, seq_len: int) -> tuple[float, float]:
    """FLOPs of one FFN neuron and of one attention unit in one layer (both linear in the count)."""
    n = len(layer_widths(model))
    blocks = find_heads(model)
    heads = [b.n_heads for b in blocks]
    base = count_flops(model, seq_len, ffn_widths=[1] * n, head_counts=heads).total
    neuron = count_flops(model, seq_len, ffn_widths=[2] + [1] * (n - 1), head_counts=heads).total - base
    fewer = [heads[0] - blocks[0].group] + heads[1:]
    unit = base - count_flops(model, seq_len, ffn_widths=[1] * n, head_counts=fewer).total
    return float(neuron), float(unit)


def pick_per_layer_for_flops(
    model: nn.Module, target: float, seq_len: int, ffn_rates: list[float], head_rates: list[float], chunks: int = 64
) -> LayerPick:
    """Per-layer (FFN width, query heads) within ``target`` of the full model's FLOPs, from each layer's
    learned rates: greedy removal, from the full model, of whichever piece (1/``chunks`` of a layer's
    FFN, or one of its KV groups) loses the least log profile mass per FLOP saved, until the target is
    met. The summed log mass is concave in every count, so the greedy order is the optimal one up to
    the last piece. WidthError when even one piece per layer costs more than ``target``."""
    if not 0.0 < target <= 1.0:
        raise WidthError(f"FLOP target must be a fraction in (0, 1], got {target}")
    d_ff = max(layer_widths(model))
    blocks = find_heads(model)
    units, group = max(b.units for b in blocks), blocks[0].group
    n = len(blocks)
    if len(ffn_rates) != n or len(head_rates) != n:
        raise WidthError(f"need {n} FFN and {n} head rates, got {len(ffn_rates)} and {len(head_rates)}")
    step = max(1, d_ff // chunks)
    neuron, unit = _unit_costs(model, seq_len)
    dense = count_flops(model, seq_len).total
    widths, kept = [d_ff] * n, [units] * n
    excess = dense - target * dense

    def loss(i: int, kind: str) -> float:
        if kind == "ffn":
            w = widths[i]
            return (math.log(_mass(ffn_rates[i], w, d_ff)) - math.log(_mass(ffn_rates[i], max(1, w - step), d_ff))) / (
                neuron * (w - max(1, w - step))
            )
        g = kept[i]
        return (math.log(_mass(head_rates[i], g, units)) - math.log(_mass(head_rates[i], g - 1, units))) / unit

    while excess > 0:
        moves = [(loss(i, "ffn"), i, "ffn") for i in range(n) if widths[i] > 1]
        moves += [(loss(i, "heads"), i, "heads") for i in range(n) if kept[i] > 1]
        if not moves:
            raise WidthError(f"FLOP target {target} is below what one neuron and one head group per layer cost")
        _, i, kind = min(moves)
        if kind == "ffn":
            new = max(1, widths[i] - step)
            excess -= neuron * (widths[i] - new)
            widths[i] = new
        else:
            kept[i] -= 1
            excess -= unit
    heads = [g * group for g in kept]
    flops = count_flops(model, seq_len, ffn_widths=widths, head_counts=heads).total
    return LayerPick(widths, heads, flops / dense)
