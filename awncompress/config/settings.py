"""The recipe read once: one frozen settings object per stage, built in one place.

Every stage call takes its own settings from :class:`StageSettings` instead of the whole recipe,
and nothing else translates recipe sections into stage configs. ``derived`` is what the run
derived from the model, the data and the machine, key → "value: reason" (``recipe.yaml`` and the
report record it; ``awncompress.run.derive`` makes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Optional

from ..data.tokenized import DataConfig
from ..evaluate.latency import LatencyConfig
from ..model.surgery import AWNConfig
from ..train.finetune import PriorConfig
from ..train.growing import GrowthConfig, check_every
from ..train.settings import TrainConfig
from .recipe import Recipe


@dataclass(frozen=True)
class StageSettings:
    """What each stage of a run takes, from one recipe (see :func:`read_settings`).

    ``data``: the data layer's config (the recipe's data section with its task and seed);
    ``awn`` / ``prior``: the conversion and the AWN prior terms; ``calibration_batches``: how many
    training batches feed the scorers; ``dense``: the dense head-training stage (task loss only,
    the recipe's ``dense`` budget); ``train``: the AWN fine-tune; ``per_width``: each per-width
    fine-tune of the ``+finetune`` baselines (the AWN fine-tune's budget and loss, one width,
    no checkpoints); ``latency``: timing (None when ``evaluate.latency_repeats`` is 0);
    ``growth``: how the AWN fine-tune grows layers (None: ``awn.grow`` is off).
    """

    recipe: Recipe
    data: DataConfig
    awn: AWNConfig
    prior: PriorConfig
    calibration_batches: int
    dense: TrainConfig
    train: TrainConfig
    per_width: TrainConfig
    latency: Optional[LatencyConfig]
    derived: Mapping[str, str]
    growth: Optional[GrowthConfig] = None

    @property
    def seed(self) -> int:
        return self.recipe.seed

    @property
    def task(self) -> str:
        return self.recipe.task


def read_settings(recipe: Recipe) -> StageSettings:
    """Every stage's settings from ``recipe`` (the one place a recipe section becomes a stage config)."""
    a, e = recipe.awn, recipe.evaluate
    dense = recipe.train.model_copy(
        update={
            "steps": recipe.dense.steps,
            "lr": recipe.dense.lr,
            "kd_weight": 0.0,
            "batch_size": recipe.dense.batch_size,
            "mode": "deterministic",
            "freeze_embeddings": False,  # the dense stage makes the model (and teacher) the user asked for
        }
    )
    latency = (
        LatencyConfig(
            batch_size=e.latency_batch_size, seq_len=e.latency_seq_len, repeats=e.latency_repeats, seed=recipe.seed
        )
        if e.latency_repeats
        else None
    )
    return StageSettings(
        recipe=recipe,
        data=DataConfig(**recipe.data.model_dump(), task=recipe.task, seed=recipe.seed),
        awn=AWNConfig(
            scorer=a.scorer,
            k=a.k,
            init_rate=a.init_rate,
            rate_prior_mean=a.rate_prior_mean,
            rate_prior_std=a.rate_prior_std,
            weight_prior_std=a.weight_prior_std,
            seed=recipe.seed,
            heads=a.heads,
        ),
        prior=PriorConfig(a.rate_prior_mean, a.rate_prior_std, a.weight_prior_std, a.size_weight),
        calibration_batches=a.calibration_batches,
        dense=dense,
        train=recipe.train,
        per_width=recipe.train.model_copy(update={"mode": "deterministic", "checkpoint_every": 0}),
        latency=latency,
        derived=MappingProxyType(dict(recipe.derived)),
        growth=GrowthConfig(a.grow_cap, a.grow_init, check_every(recipe.train.steps)) if a.grow else None,
    )
