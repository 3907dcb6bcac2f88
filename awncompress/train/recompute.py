"""Activation checkpointing for the fine-tunes: keep each decoder layer's input, recompute the rest."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from ..errors import TrainingError


@contextmanager
def activation_checkpointing(model: nn.Module, on: bool) -> Iterator[None]:
    """Within the block, ``model``'s decoder layers keep only their inputs for the backward and
    recompute the rest (transformers' gradient checkpointing, non-reentrant). A width pass's backward
    runs inside its ``width_pass``, so the recompute sees the widths the forward saw. Off again after
    the block: evaluation and export never see it."""
    if not on:
        yield
        return
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise TrainingError(
            f"{type(model).__name__} does not support activation checkpointing; set train.activation_checkpointing "
            "to false"
        )
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield
    finally:
        model.gradient_checkpointing_disable()


__all__ = ["activation_checkpointing"]
