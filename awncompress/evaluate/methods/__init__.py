"""Compression methods and baselines, one module each, behind one registry (see base.py).

Importing this package registers the built-in methods in the order reports list them:
``awn``, ``awn-per-layer``, the static scorers (``wina``, ``activation``, ``magnitude``,
``random``), ``wina-dynamic``, ``finetune`` (rows ``<scorer>+finetune``) and, over FLOP targets
with ``awn.heads``, ``awn-heads``, ``wina-heads`` and ``finetune-heads``.
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

from torch import nn

from ...errors import UnknownMethodError

# isort: off
from . import awn, awn_per_layer, static, wina_dynamic, flap, awn_bias, awn_flap, finetune, minitron, heads  # noqa: F401  (registers them, in this order)

# isort: on
from .base import (
    Candidate,
    EvalContext,
    Method,
    TrainingKit,
    auto_methods,
    default_method_names,
    fine_tune_runs,
    make_method,
    method_names,
    method_style,
    register_method,
    widest_fine_tune,
)
from .custom import CallableMethod
from .wina_dynamic import dynamic_wina

MethodSpec = Union[str, Method, tuple[str, Callable[[float], nn.Module]]]


def resolve_methods(specs: Sequence[MethodSpec]) -> list[Method]:
    """Method instances from registered names, Method objects and (name, fn) pairs; no name twice."""
    if not specs:
        raise UnknownMethodError(
            f"no evaluation method given; choose from {', '.join(method_names())} or pass (name, fn)"
        )
    methods: list[Method] = []
    for spec in specs:
        if isinstance(spec, str):
            methods.append(make_method(spec))
        elif isinstance(spec, Method):
            methods.append(spec)
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and callable(spec[1]):
            if spec[0] in method_names():
                raise UnknownMethodError(
                    f"method name {spec[0]!r} is registered; give the callable another name (e.g. '{spec[0]}+finetune')"
                )
            methods.append(CallableMethod(*spec))
        else:
            raise UnknownMethodError(f"a method must be a name or a (name, fn) pair, got {spec!r}")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise UnknownMethodError(f"methods repeat a name: {names}")
    return methods


__all__ = [
    "Candidate",
    "CallableMethod",
    "EvalContext",
    "Method",
    "MethodSpec",
    "TrainingKit",
    "auto_methods",
    "default_method_names",
    "fine_tune_runs",
    "dynamic_wina",
    "make_method",
    "method_names",
    "method_style",
    "register_method",
    "resolve_methods",
    "widest_fine_tune",
]
