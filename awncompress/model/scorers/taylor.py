"""``taylor``: LLM-Pruner's first-order Taylor importance of a coupled group (Ma et al., NeurIPS'23,
its group importance with the element-wise first-order term and sum aggregation, its default for LLaMA): the
loss change from removing FFN neuron j is estimated as Σ_k |w_k · ∂L/∂w_k| over the weights of the
group that neuron couples (its up and gate rows and its down-projection column), with the gradient
of the task loss summed over the calibration batches. Biases are left out of the sum.

One level up, an attention unit (a KV group) couples its q, k and v rows and its block of
output-projection columns, and its score is the same sum over those weights (LLM-Pruner's head
groups). Not a default baseline.
"""

from __future__ import annotations

import torch

from .base import Scorer, register_scorer


class Taylor(Scorer):
    name = "taylor"
    needs_calibration = True
    needs_gradients = True
    style = dict(color="C6", marker="h")

    def neurons(self, block, stats, generator) -> torch.Tensor:
        return block.first_order_saliency()

    def heads(self, block, stats, generator) -> torch.Tensor:
        return block.unit_saliency()


register_scorer(Taylor())
