"""The method protocol and registry: what evaluation, recipes, the CLI and the report know of a method.

A method is a way to get a model at an FFN width fraction: the AWN exports, a static baseline cut
from the trained dense model, WINA's dynamic top-k, a per-width fine-tune. Each lives in one small
module that subclasses :class:`Method` and calls :func:`register_method` (as peft registers its
tuners). Adding a baseline is one new module plus its test; recipes accept its name and the
report draws it without further edits.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Optional

from torch import nn

from ...checkpoint.layout import NESTED_DIR
from ...errors import NotAnExportError, UnknownMethodError
from ...model.surgery import AWNConfig


@dataclass
class TrainingKit:
    """What a method that fine-tunes needs: training data, its budget and loss, and the teacher."""

    train_set: Any
    collate: Callable
    num_examples: int
    config: Any  # a TrainConfig: the per-width fine-tune's (StageSettings.per_width), used as it is
    teacher: Any = None  # a frozen teacher model or its cached logits (None: no distillation)


@dataclass
class EvalContext:
    """Everything a method may use, shared by all methods of one evaluation.

    ``original``: the trained dense model (never modified); ``layer_plan``: per width fraction, the
    per-layer neuron counts every static method cuts to (the awn export's own widths where there is
    one); ``export_dirs``: the awn export folder of each width; ``out``: the convert output folder
    (for per-layer exports); ``scorer``/``multiple``: the recipe's initial order and width rounding;
    ``training``: for fine-tuning baselines; ``flop_dirs``: the FFN+heads export of each FLOP target
    (the points of the methods whose ``axis`` is "flops").
    """

    original: nn.Module
    widths: list[float]
    layer_plan: dict[float, list[int]]
    calibration: Optional[list] = None
    seed: int = 0
    export_dirs: dict[float, Path] = field(default_factory=dict)
    out: Optional[Path] = None
    scorer: str = AWNConfig.scorer
    multiple: Optional[int] = None
    training: Optional[TrainingKit] = None
    quiet: bool = False
    flop_dirs: dict[float, Path] = field(default_factory=dict)


@dataclass
class Candidate:
    """A model at one width, as a method hands it to evaluation.

    ``widths``: the per-layer neuron counts that set its FLOPs (the active counts for a dynamic
    method) and, unless the method is theoretical, its shape for latency. ``export``: the folder it
    was loaded from, if any.
    """

    model: nn.Module
    widths: list[int]
    export: Optional[Path] = None
    heads: Optional[list[int]] = None  # query heads per layer, when the method cuts heads


class Method:
    """One way to get a model at a width fraction (see the module docstring).

    Class attributes: ``name`` (what recipes and the CLI call it), ``needs_calibration`` (the
    evaluation must pass calibration batches), ``theoretical`` (FLOPs count active neurons of a
    masked dense model; the row is not timed), ``default`` (evaluated when a recipe names no
    methods), ``style`` (matplotlib line style in the report's curve), ``axis`` ("width": its points
    are FFN width fractions; "flops": FLOP targets, handed to ``at_width`` as the fraction).

    What the rest of the package asks a method instead of checking its name: ``trains`` (it
    fine-tunes, so the evaluation builds a :class:`TrainingKit`; its cost is :meth:`fine_tunes`
    runs of the AWN fine-tune's steps), ``needs_scorer`` (it cuts in the recipe's ``awn.scorer``
    order, so that scorer may not be "none"), ``requires`` (a recipe switch, as a dotted key, that
    must be on for it to have anything to evaluate) and ``auto`` (added to the evaluation when that
    switch is on and the user named no methods).
    """

    name: str = ""
    needs_calibration: bool = False
    theoretical: ClassVar[bool] = False
    axis: ClassVar[str] = "width"
    default: ClassVar[bool] = False
    style: ClassVar[dict] = {}
    trains: ClassVar[bool] = False
    needs_scorer: ClassVar[bool] = False
    requires: ClassVar[Optional[str]] = None
    auto: ClassVar[bool] = False

    def fine_tunes(self, widths: int, flop_targets: int) -> int:
        """How many fine-tunes of the AWN fine-tune's length evaluating it runs (the plan's cost)."""
        return 0

    def label(self, ctx: EvalContext) -> str:
        """The method's name in the report's rows (e.g. "wina+finetune" for "finetune")."""
        return self.name

    def check(self, ctx: EvalContext) -> None:
        """Raise an AwnError now if the method cannot run in ``ctx`` (before anything is evaluated)."""

    def prepare(self, ctx: EvalContext) -> None:
        """Work done once for all widths (e.g. ordering neurons)."""

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        """The model at ``fraction``, valid while the context is open."""
        raise NotImplementedError
        yield  # pragma: no cover


_REGISTRY: dict[str, Callable[[], Method]] = {}
_DEFAULTS: list[str] = []
_STYLES: dict[str, dict] = {}


def nested_checkpoint(ctx: EvalContext, method: str) -> Path:
    """The nested checkpoint of the convert output being evaluated, for a ``method`` that cuts it
    itself; NotAnExportError naming the method when there is none."""
    if ctx.out is None or not (ctx.out / NESTED_DIR).is_dir():
        raise NotAnExportError(f"{method} cuts the nested checkpoint of a convert output; none was found")
    return ctx.out / NESTED_DIR


def register_method(
    name: str, factory: Callable[[], Method], *, default: bool = False, style: Optional[dict] = None
) -> None:
    """Make ``name`` a method recipes, the CLI and evaluation accept; ``factory()`` builds a fresh one."""
    if name in _REGISTRY:
        raise UnknownMethodError(f"method {name!r} is registered twice")
    _REGISTRY[name] = factory
    if default:
        _DEFAULTS.append(name)
    _STYLES[name] = dict(style or {})


def method_names() -> list[str]:
    """Every registered method name, in registration order."""
    return list(_REGISTRY)


def default_method_names() -> list[str]:
    """The methods evaluated when a recipe names none."""
    return list(_DEFAULTS)


def make_method(name: str) -> Method:
    """A fresh instance of the method registered as ``name``."""
    if name not in _REGISTRY:
        raise UnknownMethodError(
            f"unknown evaluation method {name!r}; registered methods: {', '.join(_REGISTRY)} "
            "(or pass a (name, fn) pair with fn(width_fraction) -> model)"
        )
    return _REGISTRY[name]()


def auto_methods(chosen: list[str], switched_on: Callable[[str], bool]) -> list[str]:
    """``chosen`` plus every ``auto`` method whose ``requires`` switch is on, each placed after the
    chosen methods registered before it (awn-per-layer right after awn; the head methods last)."""
    out = list(chosen)
    for position, name in enumerate(_REGISTRY):
        method = _REGISTRY[name]()
        if not method.auto or name in out or not (method.requires and switched_on(method.requires)):
            continue
        before = set(list(_REGISTRY)[:position])
        after = max((i + 1 for i, m in enumerate(out) if m in before), default=0)
        out.insert(after, name)
    return out


def fine_tune_runs(names: list[str], widths: int, flop_targets: int) -> int:
    """How many fine-tunes of the AWN fine-tune's length evaluating the methods ``names`` runs."""
    return sum(make_method(n).fine_tunes(widths, flop_targets) for n in names if n in _REGISTRY)


def widest_fine_tune(names: list[str], widths: list[float], flop_targets: list[float]) -> float:
    """The widest fraction the per-width fine-tunes of the methods ``names`` train (0.0: none does):
    the widest export width for a method that fine-tunes each width, the largest FLOP target for one
    that fine-tunes each target."""
    methods = [make_method(n) for n in names if n in _REGISTRY]
    widest = max(widths, default=0.0) if any(m.fine_tunes(1, 0) for m in methods) else 0.0
    if any(m.fine_tunes(0, 1) for m in methods):
        widest = max([widest, *flop_targets])
    return float(widest)


def method_style(label: str) -> Optional[dict]:
    """The curve style of a row label: the method's own, or its base method's for "<base>+suffix"."""
    if label in _STYLES and _STYLES[label]:
        return dict(_STYLES[label])
    return None
