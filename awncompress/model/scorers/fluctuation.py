"""``fluctuation``: FLAP's fluctuation metric (An et al., AAAI'24) for FFN channel j,
Var(h_j) · ‖W_down[:, j]‖₂², the sample variance of the channel's input over the calibration tokens
times the squared norm of its down-projection column: how much the output moves when the channel
is replaced by its mean (which FLAP's bias compensation adds back).

One level up, a unit's score is the sum over its output-projection input channels of
Var(c_ch) · ‖W_o[:, ch]‖₂² (FLAP scores attention channels the same way and removes whole heads).
The ranking alone, as a scorer: awn's default initial order (AWNConfig.scorer; it beat WINA's on
SmolLM2 at every width and was level on MiniLM, BENCHMARKS.md §8e). The ``flap`` method adds FLAP's
per-layer standardisation, global threshold (adaptive widths) and bias compensation for the FFN.
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

    def heads(self, block, stats, generator) -> torch.Tensor:
        columns = block.channel_out_norms().cpu().pow(2).view(block.units, block.unit_size)
        return (stats.channel_variance * columns).sum(1)


register_scorer(Fluctuation())
