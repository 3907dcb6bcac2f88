"""``flap``: FLAP (An et al., "Fluctuation-based Adaptive Structured Pruning for Large Language
Models", AAAI'24) on the FFN, no training:

1. each channel's fluctuation, Var(h_j) · ‖W_down[:, j]‖₂² over the calibration tokens (the
   ``fluctuation`` scorer), orders the channels of its layer;
2. the scores are standardised per layer, (F − mean F) / std F, so one global threshold
   compares layers, and the channels above it are kept: adaptive per-layer widths at the same total
   neuron count as the other methods' cut at that width (every layer keeps at least one);
3. bias compensation: the removed channels' mean contribution, W_down[:, removed] · E h_removed,
   is added to the down projection's bias (a bias is added where the family has none), so the
   layer's mean output over the calibration tokens is unchanged.

Attention heads, which FLAP also prunes, are not cut here. Mixture-of-experts blocks are refused.
Not a default method: ask for it with ``--methods``.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn

from ...errors import UnsupportedModelError
from ...model.families import find_ffns
from ...model.ffn import FFNBlock, neuron_axis
from ...model.scorers import get_scorer
from ...model.scoring import activation_stats, order_from_scores
from ...model.surgery import truncate_
from .base import Candidate, EvalContext, Method, register_method


def standardise(scores: torch.Tensor) -> torch.Tensor:
    """(F − mean F) / std F over one layer's channels (zeros when every channel scores the same)."""
    std = scores.std()
    return (scores - scores.mean()) / std if std > 0 else torch.zeros_like(scores)


def adaptive_widths(standardised: list[torch.Tensor], total: int) -> list[int]:
    """Per-layer widths that keep the ``total`` highest standardised scores over all layers (each
    layer's scores sorted high to low), at least one channel a layer."""
    floor = [1] * len(standardised)
    rest = torch.cat([z[1:] for z in standardised])
    owner = torch.cat([torch.full((len(z) - 1,), i) for i, z in enumerate(standardised)])
    chosen = owner[torch.argsort(rest, descending=True, stable=True)[: max(0, total - len(floor))]]
    return [f + int((chosen == i).sum()) for i, f in enumerate(floor)]


def compensation(block: FFNBlock, keep: int, mean: torch.Tensor) -> torch.Tensor:
    """The bias change that replaces channels ``keep:`` by their mean input: W_down[:, keep:] · E h[keep:]."""
    down = block.down.weight.detach().float()
    axis = neuron_axis(block.down, "out")
    removed = down.narrow(axis, keep, down.shape[axis] - keep)
    return (removed @ mean[keep:]) if axis == 1 else (mean[keep:] @ removed)


def add_bias_(module: nn.Module, delta: torch.Tensor) -> None:
    """Add ``delta`` to a projection's output bias, creating the bias where there is none."""
    with torch.no_grad():
        if module.bias is None:
            module.bias = nn.Parameter(torch.zeros_like(delta, dtype=module.weight.dtype))
        module.bias.add_(delta.to(module.bias.dtype))


def cut_compensated(model: nn.Module, widths: list[int], means: list[torch.Tensor]) -> nn.Module:
    """A copy of ``model`` cut to ``widths``, each layer's removed channels replaced by their mean
    contribution (``means``: E h per layer, in the model's neuron order) in the down projection's bias."""
    model = copy.deepcopy(model)
    deltas = [compensation(b, w, m) for b, w, m in zip(find_ffns(model), widths, means)]
    truncate_(model, widths)
    for block, delta in zip(find_ffns(model), deltas):
        add_bias_(block.down, delta)
    return model


class FlapMethod(Method):
    """Fluctuation order, standardised global threshold, bias compensation (see the module docstring)."""

    name = "flap"
    needs_calibration = True

    def __init__(self) -> None:
        self.ordered: Optional[nn.Module] = None
        self.standardised: list[torch.Tensor] = []
        self.means: list[torch.Tensor] = []

    def check(self, ctx: EvalContext) -> None:
        if any(b.kind == "experts" for b in find_ffns(ctx.original)):
            raise UnsupportedModelError("flap does not cut mixture-of-experts blocks")

    def prepare(self, ctx: EvalContext) -> None:
        self.ordered = copy.deepcopy(ctx.original)
        blocks = find_ffns(self.ordered)
        rule = get_scorer("fluctuation")
        for block, stats in zip(blocks, activation_stats(self.ordered, blocks, ctx.calibration)):
            fluctuation = rule.neurons(block, stats, torch.Generator())
            order = order_from_scores(fluctuation)
            block.select_(order)
            self.standardised.append(standardise(fluctuation[order]))
            self.means.append(stats.mean[order])

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        widths = adaptive_widths(self.standardised, sum(ctx.layer_plan[fraction]))
        yield Candidate(cut_compensated(self.ordered, widths, self.means), widths)


register_method("flap", FlapMethod, style=dict(color="C5", marker="p"))
