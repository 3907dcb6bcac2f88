"""``wanda-sp``: structured Wanda (as defined as a baseline in the FLAP paper, An et al., AAAI'24), the score of
FFN channel j is Σ_i |W_down[i, j]| · ‖X_j‖₂, where X_j is channel j's activation over the N calibration
tokens: the L1 norm of its down-projection column times the L2 norm of its input.

Here ‖X_j‖₂ is taken as the root mean square sqrt(E h_j²) = ‖X_j‖₂ / √N: the same N for every channel
of a layer, so each layer's order is the paper's. Neurons only (no head rule); not a default baseline.
"""

from __future__ import annotations

import torch

from .base import Scorer, register_scorer


class WandaSP(Scorer):
    name = "wanda-sp"
    needs_calibration = True
    style = dict(color="C5", marker="D")

    def neurons(self, block, stats, generator) -> torch.Tensor:
        return block.out_norms(p=1).to(stats.rms.device) * stats.rms


register_scorer(WandaSP())
