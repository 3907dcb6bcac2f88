"""Importance scorers, one module each, behind one registry (see base.py).

Importing this package registers the built-in scorers in the order reports list their static
baselines: ``wina``, ``activation``, ``magnitude``, ``random``, then ``wanda-sp``, ``taylor`` and
``fluctuation`` (not default baselines). Adding a scorer is one module here, imported below, plus its test.
"""

# isort: off
from . import wina, activation, magnitude, random, wanda_sp, taylor, fluctuation  # noqa: F401  (registers them, in this order)

# isort: on
from .base import SCORERS, ActivationStats, Scorer, UnitStats, get_scorer, register_scorer

__all__ = ["SCORERS", "ActivationStats", "Scorer", "UnitStats", "get_scorer", "register_scorer"]
