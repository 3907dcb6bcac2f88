"""Score, order and cut attention units (KV groups; heads for multi-head attention) in place.

The scores mirror the neuron scorers one level up (higher = keep first); each scorer's head rule
is in its module under ``scorers/`` (e.g. ``wina``: E‖c_u‖ · ‖W_o[:, u]‖_F, the unit's mean context
norm over calibration tokens times the norm of its block of the output projection).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import ConversionError, DataError, WidthError
from .heads import HeadBlock, find_heads, set_config_heads
from .scorers import UnitStats, get_scorer
from .scoring import loss_gradients, order_from_scores, run_calibration

Heads = Union[int, float, Sequence[int]]


class _ContextStats:
    """Running sums of each unit's context norm, and of each context channel and its square, per
    block, over non-padding tokens."""

    def __init__(self, blocks: list[HeadBlock]) -> None:
        self.blocks = blocks
        self.sums = [torch.zeros(b.units, dtype=torch.float64) for b in blocks]
        self.channels = [torch.zeros(b.units, b.unit_size, dtype=torch.float64) for b in blocks]
        self.squares = [torch.zeros(b.units, b.unit_size, dtype=torch.float64) for b in blocks]
        self.counts = [0] * len(blocks)
        self.mask: Optional[torch.Tensor] = None

    def add(self, i: int, ctx: torch.Tensor) -> None:
        block = self.blocks[i]
        flat = ctx.detach().reshape(-1, block.units, block.unit_size).double().cpu()
        if self.mask is not None and len(self.mask) == len(flat):
            flat = flat[self.mask]
        self.sums[i] += flat.norm(dim=-1).sum(0)
        self.channels[i] += flat.sum(0)
        self.squares[i] += flat.pow(2).sum(0)
        self.counts[i] += flat.shape[0]

    def stats(self) -> list[UnitStats]:
        out = []
        for s, m, q, c in zip(self.sums, self.channels, self.squares, self.counts):
            n = max(c, 1)
            variance = (q / n - (m / n).pow(2)).clamp_min(0)
            out.append(UnitStats((s / n).float(), variance.float()))
        return out


def context_stats(
    model: nn.Module, blocks: list[HeadBlock], batches: Iterable[Mapping[str, torch.Tensor]]
) -> list[UnitStats]:
    """``E‖c_u‖`` per unit and the variance of every context channel, for every block, over the
    non-padding tokens of ``batches``."""
    stats = _ContextStats(blocks)
    handles = [b.hook_context(lambda c, i=i: stats.add(i, c)) for i, b in enumerate(blocks)]
    run_calibration(model, batches, stats, handles)
    return stats.stats()


def score_heads(
    model: nn.Module,
    scorer: str,
    batches: Optional[Iterable[Mapping[str, torch.Tensor]]] = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Importance of every attention unit of every layer, by the registered ``scorer``'s head rule."""
    rule = get_scorer(scorer)
    blocks = find_heads(model)
    if not rule.scores_heads:  # before any calibration pass
        raise rule.no_head_rule()
    if rule.needs_calibration and batches is None:
        raise DataError(f"scorer {scorer!r} needs calibration batches")
    generator = torch.Generator().manual_seed(seed + 7919)  # not the neurons' stream
    if rule.needs_gradients:
        weights = [m.weight for b in blocks for m in b.projections()]
        with loss_gradients(model, weights, batches, scorer):
            return [rule.heads(b, None, generator).detach().cpu() for b in blocks]
    stats = context_stats(model, blocks, batches) if rule.needs_calibration else [None] * len(blocks)
    return [rule.heads(b, s, generator) for b, s in zip(blocks, stats)]


def order_heads_(
    model: nn.Module,
    scorer: str = "wina",
    batches: Optional[Iterable[Mapping[str, torch.Tensor]]] = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Permute every layer's attention units by decreasing importance (outputs unchanged).

    Returns each layer's permutation (new position i holds old unit perm[i]).
    """
    if any(b.adaptive is not None for b in find_heads(model)):
        raise ConversionError("fold_ the model before reordering its heads")
    perms = [order_from_scores(s) for s in score_heads(model, scorer, batches, seed)]
    for block, perm in zip(find_heads(model), perms):
        block.select_(perm)
    return perms


def full_units(model: nn.Module) -> list[int]:
    """The unit count a head fraction refers to, per layer: the widest layer's (a fraction of a
    per-layer cut model refers to its widest layer, as FFN widths do)."""
    units = [b.units for b in find_heads(model)]
    return [max(units)] * len(units)


def resolve_heads(heads: Heads, group: int, full: Sequence[int]) -> list[int]:
    """Units to keep per layer from query heads (an int, every layer), a fraction of each layer's
    heads, or one query-head count per layer. Query-head counts must be multiples of ``group``
    (the query heads of one KV group), since whole groups are kept."""
    n = len(full)
    if isinstance(heads, bool):
        raise WidthError(f"heads must be a number, got {heads!r}")
    if isinstance(heads, float):
        if not (math.isfinite(heads) and 0.0 < heads <= 1.0):
            raise WidthError(f"head fraction {heads} must be in (0, 1]")
        return [max(1, round(heads * f)) for f in full]
    counts = [heads] * n if isinstance(heads, int) else list(heads)
    if len(counts) != n:
        raise WidthError(f"got {len(counts)} per-layer head counts for a model with {n} attention layers")
    units = []
    for i, (c, f) in enumerate(zip(counts, full)):
        if isinstance(c, bool) or not isinstance(c, int) or not 0 < c <= f * group:
            raise WidthError(f"head count {c!r} (layer {i}) is outside 1..{f * group}")
        if c % group:
            raise WidthError(
                f"head count {c} (layer {i}) is not a multiple of {group}, the query heads sharing one "
                "key/value head; whole groups are kept"
            )
        units.append(c // group)
    return units


def truncate_heads_(model: nn.Module, heads: Heads) -> list[int]:
    """Keep the first attention units of every layer, in place; returns the query heads per layer.

    ``heads``: query heads (int, every layer), a fraction of each layer's units, or one query-head
    count per layer. A family whose config can say the head count (Llama, Mistral, Qwen, Gemma) gets
    it written when every layer keeps the same count (vanilla-loadable); otherwise the config keeps
    the full count and ``awncompress.load_pretrained`` cuts to the recorded heads. Fold first.
    """
    blocks = find_heads(model)
    if any(b.adaptive is not None for b in blocks):
        raise ConversionError("fold_ the model before cutting its heads")
    group = blocks[0].group
    units = resolve_heads(heads, group, full_units(model))
    for block, u in zip(blocks, units):
        if u > block.units:
            raise WidthError(f"layer {block.layer} has {block.n_heads} heads; cannot keep {u * block.group}")
        block.select_(torch.arange(u))
    set_config_heads(model.config, blocks)
    return [b.n_heads for b in blocks]
