"""``minitron``: Minitron's width pruning of the FFN (Muralidharan et al. 2024, "Compact Language Models
via Pruning and Knowledge Distillation"): rank neurons by activation importance on calibration
data, cut every layer to the same width, then recover with logit distillation from the unpruned
model.

Here the ranking is the ``activation`` scorer, E|h_j| over the non-padding calibration tokens of the
down projection's input. Minitron's own statistic aggregates the first projection's
output per neuron, L2 over the batch and mean over the sequence; for a ranking of one layer's
neurons both measure how much a neuron fires on the calibration data, and the package has one
scorer for that rather than two. The recovery is the per-width fine-tune every ``+finetune`` row
gets: the AWN fine-tune's steps, batch, learning rate and KD loss from the same teacher. Not a
default method: ask for it with ``--methods``.
"""

from __future__ import annotations

from .base import EvalContext, register_method
from .finetune import FinetuneMethod


class MinitronMethod(FinetuneMethod):
    """Activation order, uniform cut, one KD fine-tune per width."""

    name = "minitron"
    needs_scorer = False
    needs_calibration = True

    def scorer(self, ctx: EvalContext) -> str:
        return "activation"

    def label(self, ctx: EvalContext) -> str:
        return "minitron"


register_method("minitron", MinitronMethod, style=dict(color="C8", marker="*"))
