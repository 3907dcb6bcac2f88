"""``fluctuation``: FLAP's fluctuation metric (An et al., AAAI'24, eq. 6) for FFN channel j,
Var(h_j) · ‖W_down[:, j]‖₂², the sample variance of the channel's input over the calibration tokens
times the squared norm of its down-projection column: how much the output moves when the channel
is replaced by its mean (which FLAP's bias compensation adds back).

The ranking alone, as a scorer; the ``flap`` method adds FLAP's per-layer standardisation, global
threshold (adaptive widths) and bias compensation. Neurons only; not a default baseline.
"""

from __future__ import annotations

import torch

from .base import Scorer, register_scorer


class Fluctuation(Scorer):
    name = "fluctuation"
    needs_calibration = True
    style = dict(color="C9", marker="<")

    def neurons(self, block, stats, generator) -> torch.Tensor:
        return stats.variance * block.out_norms().to(stats.variance.device).pow(2)


register_scorer(Fluctuation())
