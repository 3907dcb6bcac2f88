"""``magnitude``: weights only, ‖W_in[j]‖₂ · ‖W_down[:, j]‖₂ (a neuron's input weights are its up and
gate rows together, both halves of a fused projection); for attention units, ‖W_qkv[u]‖_F · ‖W_o[:, u]‖_F."""

from __future__ import annotations

import torch

from .base import Scorer, register_scorer


class Magnitude(Scorer):
    name = "magnitude"
    default = True
    style = dict(color="C4", marker="v")

    def neurons(self, block, stats, generator) -> torch.Tensor:
        return block.in_norms() * block.out_norms()

    def heads(self, block, stats, generator) -> torch.Tensor:
        return (block.unit_in_norms() * block.unit_out_norms()).cpu()


register_scorer(Magnitude())
