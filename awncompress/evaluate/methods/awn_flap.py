"""``awn-flap``: awn's nested model cut at FLAP's adaptive per-layer widths (issue 28: a peer's idea
tried in awn's fold).

FLAP (``flap.py``) gives each layer the channels whose standardised fluctuation,
(F − mean F) / std F with F_j = Var(h_j) · ‖W_down[:, j]‖₂², clears one global threshold. Here F is
measured on awn's folded nested model over the calibration tokens, the threshold keeps the width's
total neuron count, and each layer keeps that many of *its own leading neurons*: awn's order decides
which neurons, FLAP's rule decides how many per layer. No bias compensation (``awn-bc`` measured it
hurting awn's cuts). awn's fine-tune samples each layer's width on its own, so such per-layer cuts are
ones it trained. Not a default method: ask for it with ``--methods``.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn

from ...checkpoint.load import load_pretrained
from ...errors import UnsupportedModelError
from ...model.families import find_ffns
from ...model.scorers import get_scorer
from ...model.scoring import activation_stats
from ...model.surgery import truncate_
from .base import Candidate, EvalContext, Method, nested_checkpoint, register_method
from .flap import adaptive_widths, standardise


def flap_layer_widths(fluctuation: list[torch.Tensor], total: int) -> list[int]:
    """How many neurons each layer keeps under FLAP's global threshold on standardised ``fluctuation``
    (one score vector per layer, in any order), ``total`` in all, at least one a layer."""
    return adaptive_widths([standardise(torch.sort(f, descending=True).values) for f in fluctuation], total)


class AwnFlapMethod(Method):
    """The nested awn model, each layer cut to its leading neurons, as many as FLAP's threshold gives it."""

    name = "awn-flap"
    needs_calibration = True

    def __init__(self) -> None:
        self.full: Optional[nn.Module] = None
        self.fluctuation: list[torch.Tensor] = []

    def check(self, ctx: EvalContext) -> None:
        nested_checkpoint(ctx, self.name)
        if any(b.kind == "experts" for b in find_ffns(ctx.original)):
            raise UnsupportedModelError("awn-flap does not cut mixture-of-experts blocks")

    def prepare(self, ctx: EvalContext) -> None:
        self.full = load_pretrained(nested_checkpoint(ctx, self.name))
        blocks = find_ffns(self.full)
        rule = get_scorer("fluctuation")
        stats = activation_stats(self.full, blocks, ctx.calibration)
        self.fluctuation = [rule.neurons(b, s, torch.Generator()) for b, s in zip(blocks, stats)]

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        widths = flap_layer_widths(self.fluctuation, sum(ctx.layer_plan[fraction]))
        model = copy.deepcopy(self.full)  # the nested model stays whole for the next width
        truncate_(model, widths)
        yield Candidate(model, widths)


register_method("awn-flap", AwnFlapMethod, style=dict(color="C4", marker="o", linestyle="-.", zorder=5))
