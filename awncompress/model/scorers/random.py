"""``random``: uniform random scores from the seeded generator (the floor every score must beat)."""

from __future__ import annotations

import torch

from .base import Scorer, register_scorer


class Random(Scorer):
    name = "random"
    default = True
    style = dict(color="C7", marker="x")

    def neurons(self, block, stats, generator) -> torch.Tensor:
        shape = (block.experts, block.width) if block.kind == "experts" else (block.width,)
        return torch.rand(shape, generator=generator)

    def heads(self, block, stats, generator) -> torch.Tensor:
        return torch.rand(block.units, generator=generator)


register_scorer(Random())
