"""Static baselines, one per registered importance scorer (``wina``, ``activation``, ``magnitude``, ``random``,
``wanda-sp``, ...): a scorer module brings its baseline with it.

The trained dense model's neurons are ordered by the score once, on calibration batches, then cut
to each width (the awn export's own per-layer widths): no training.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, Optional

from torch import nn

from ...model.scorers import SCORERS, get_scorer
from ...model.surgery import order_, truncate_
from .base import Candidate, EvalContext, Method, register_method


class StaticMethod(Method):
    """Order by one scorer, cut, evaluate."""

    def __init__(self, scorer: str) -> None:
        self.name = scorer
        self.needs_calibration = get_scorer(scorer).needs_calibration
        self.ordered: Optional[nn.Module] = None

    def prepare(self, ctx: EvalContext) -> None:
        self.ordered = copy.deepcopy(ctx.original)
        order_(self.ordered, self.name, ctx.calibration, seed=ctx.seed)

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        model = copy.deepcopy(self.ordered)
        widths = truncate_(model, ctx.layer_plan[fraction])
        yield Candidate(model, widths)


def _factory(scorer: str):
    return lambda: StaticMethod(scorer)


for _scorer in SCORERS.values():
    register_method(_scorer.name, _factory(_scorer.name), default=_scorer.default, style=_scorer.style)
