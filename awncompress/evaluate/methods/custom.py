"""A method from a plain function ``fn(width_fraction) -> model`` (for the Python API)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from torch import nn

from ...errors import UnknownMethodError
from ...model.surgery import layer_widths
from .base import Candidate, EvalContext, Method


class CallableMethod(Method):
    """Wraps ``fn``; its rows are named ``name`` (which must not be a registered method's name)."""

    def __init__(self, name: str, fn: Callable[[float], nn.Module]) -> None:
        self.name, self.fn = name, fn

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        model = self.fn(fraction)
        if not isinstance(model, nn.Module):
            raise UnknownMethodError(f"method {self.name!r} returned {type(model).__name__}, not a model")
        yield Candidate(model, layer_widths(model))
