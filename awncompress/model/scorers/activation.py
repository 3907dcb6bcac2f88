"""``activation``: mean activation magnitude alone, E|h_j| (Minitron's activation importance for FFN
neurons); for attention units, the mean context norm E‖c_u‖."""

from __future__ import annotations

import torch

from .base import Scorer, register_scorer


class Activation(Scorer):
    name = "activation"
    needs_calibration = True
    default = True
    style = dict(color="C2", marker="^")

    def neurons(self, block, stats, generator) -> torch.Tensor:
        return stats.mean_abs.clone()

    def heads(self, block, stats, generator) -> torch.Tensor:
        return stats.mean_norm


register_scorer(Activation())
