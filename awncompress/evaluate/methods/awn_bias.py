"""``awn-bc``: awn's cuts with FLAP's bias compensation (issue 28: a peer's idea tried in awn's fold).

At every width, the neurons a cut removes are replaced by their mean contribution over the calibration
tokens, ``W_down[:, w:] · E h[w:]``, added to the down projection's bias (created where the family
has none), as FLAP does for its own cut (``flap.py``). The model is awn's nested checkpoint, folded,
cut to the awn export's own per-layer widths, so ``awn-bc`` − ``awn`` is the compensation alone.
Not a default method: ask for it with ``--methods``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn

from ...checkpoint.load import load_pretrained
from ...model.families import find_ffns
from ...model.scoring import activation_stats
from .base import Candidate, EvalContext, Method, nested_checkpoint, register_method
from .flap import cut_compensated


class AwnBiasMethod(Method):
    """The nested awn model cut at each width, the removed neurons' mean output put into the bias."""

    name = "awn-bc"
    needs_calibration = True

    def __init__(self) -> None:
        self.full: Optional[nn.Module] = None
        self.means: list[torch.Tensor] = []

    def check(self, ctx: EvalContext) -> None:
        nested_checkpoint(ctx, self.name)

    def prepare(self, ctx: EvalContext) -> None:
        self.full = load_pretrained(nested_checkpoint(ctx, self.name))
        blocks = find_ffns(self.full)
        self.means = [s.mean for s in activation_stats(self.full, blocks, ctx.calibration)]

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        widths = ctx.layer_plan[fraction]
        yield Candidate(cut_compensated(self.full, widths, self.means), widths)


register_method("awn-bc", AwnBiasMethod, style=dict(color="C3", marker="o", linestyle=":", zorder=5))
