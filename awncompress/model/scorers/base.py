"""The scorer protocol and registry: one object per importance score, for FFN neurons and attention units.

A scorer turns one block into importance scores (higher = keep first). It says whether it needs
activation statistics from calibration batches; the statistics are gathered once for every
scorer (``awncompress.model.scoring``), so a scorer is only its formula. Registering a scorer makes
it a recipe's ``awn.scorer``, an ``awncompress score --scorer`` choice and a static baseline method
of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from ...errors import UnknownScorerError
from ..ffn import FFNBlock
from ..heads import HeadBlock


@dataclass(frozen=True)
class ActivationStats:
    """Statistics of one FFN's hidden activations ``h`` (the input of the down projection) over the
    non-padding calibration tokens: ``mean_abs`` = E|h_j|, ``rms`` = sqrt(E h_j²), ``mean`` = E h_j;
    [width], or [experts, width] for a mixture-of-experts block (over the tokens routed to each expert)."""

    mean_abs: torch.Tensor
    rms: torch.Tensor
    mean: torch.Tensor

    @property
    def variance(self) -> torch.Tensor:
        """Var h_j = E h_j² − (E h_j)² (over the same tokens; never below 0)."""
        return (self.rms.double().pow(2) - self.mean.double().pow(2)).clamp_min(0).float()


@dataclass(frozen=True)
class UnitStats:
    """Statistics of one attention layer's context ``c`` (the output projection's input) over the
    non-padding calibration tokens: ``mean_norm`` = E‖c_u‖ per unit [units], ``channel_variance`` =
    Var c_ch per input channel of the output projection [units, unit_size]."""

    mean_norm: torch.Tensor
    channel_variance: torch.Tensor


class Scorer:
    """One importance score (see the module docstring).

    Class attributes: ``name`` (what recipes and the CLI call it), ``needs_calibration`` (scores read
    statistics of calibration batches, so those are required), ``needs_gradients`` (scores read the
    gradients of the task loss on the calibration batches, which the FFN weights hold while
    :meth:`neurons` runs; ``stats`` is then None), ``default`` (its static baseline is evaluated when a
    recipe names no methods), ``style`` (matplotlib style of that baseline's curve).
    """

    name: ClassVar[str] = ""
    needs_calibration: ClassVar[bool] = False
    needs_gradients: ClassVar[bool] = False
    default: ClassVar[bool] = False
    style: ClassVar[dict] = {}

    def neurons(self, block: FFNBlock, stats: Optional[ActivationStats], generator: torch.Generator) -> torch.Tensor:
        """Scores of every neuron of ``block``: [width] or [experts, width]."""
        raise NotImplementedError

    def heads(self, block: HeadBlock, stats: Optional[UnitStats], generator: torch.Generator) -> torch.Tensor:
        """Scores of every attention unit of ``block`` ([units]); ``stats`` when the scorer needs
        calibration (None for one that reads gradients, which the attention weights then hold). A scorer
        without a head rule leaves this unimplemented."""
        raise self.no_head_rule()

    def no_head_rule(self) -> UnknownScorerError:
        """The error for asking this scorer, which has no head rule, to score attention units."""
        return UnknownScorerError(f"scorer {self.name!r} scores FFN neurons only, not attention heads")

    @property
    def scores_heads(self) -> bool:
        """Whether this scorer has a rule for attention units."""
        return type(self).heads is not Scorer.heads


SCORERS: dict[str, Scorer] = {}


def register_scorer(scorer: Scorer) -> Scorer:
    """Make ``scorer`` available by its name (a second scorer of the same name is an error)."""
    if not scorer.name or scorer.name in SCORERS:
        raise UnknownScorerError(f"scorer {scorer.name!r} has no name or is registered twice")
    SCORERS[scorer.name] = scorer
    return scorer


def get_scorer(name: str) -> Scorer:
    """The scorer registered as ``name``; UnknownScorerError naming the choices otherwise."""
    if name not in SCORERS:
        raise UnknownScorerError(f"unknown scorer {name!r}; choose one of: {', '.join(SCORERS)}")
    return SCORERS[name]
