"""``wina``: WINA's weight-informed rule on FFN hidden neurons, E|h_j| · ‖W_down[:, j]‖₂.

WINA proper is dynamic (top-k per token, see ``evaluate/methods/wina_dynamic.py``); this static
ranking is its aggregate over calibration tokens. One level up, a unit's score is its mean context
norm times the Frobenius norm of its block of output-projection columns, E‖c_u‖ · ‖W_o[:, u]‖_F:
what the unit can add to the residual stream.
"""

from __future__ import annotations

import torch

from .base import Scorer, register_scorer


class Wina(Scorer):
    name = "wina"
    needs_calibration = True
    default = True
    style = dict(color="C0", marker="s")

    def neurons(self, block, stats, generator) -> torch.Tensor:
        return stats.mean_abs * block.out_norms().to(stats.mean_abs.device)  # statistics live on the CPU

    def heads(self, block, stats, generator) -> torch.Tensor:
        return stats.mean_norm * block.unit_out_norms().cpu()


register_scorer(Wina())
