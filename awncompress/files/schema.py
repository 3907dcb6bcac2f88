"""Strict settings sections (pydantic v2) and their errors as one line naming the dotted key.

Every settings section a recipe is made of derives from :class:`Section`: unknown keys, values of
the wrong type and values out of range raise :class:`~awncompress.errors.RecipeError` with
messages like ``unknown key 'lr_rate' in train (known: steps, ...)``, ``train.steps: expected an
integer, got str 'ten'`` or ``train.steps must be >= 1 (got 0)``. pydantic does the checking;
this module only words its errors the way a recipe author reads them.
"""

from __future__ import annotations

import difflib
import os
from typing import Annotated, Any, Callable, ClassVar, Sequence, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from ..errors import AwnError, NotAnExportError, RecipeError

_RULE = "awn_rule"
_CROSS = "awn_cross"


def _rule(description: str, ok: Callable[[Any], bool]) -> AfterValidator:
    def check(value: Any) -> Any:
        if value is not None and not ok(value):
            raise PydanticCustomError(_RULE, "must be {rule}", {"rule": description})
        return value

    return AfterValidator(check)


def one_of(choices: Callable[[], Sequence[str]]) -> AfterValidator:
    """A rule whose allowed strings come from ``choices()`` when a value is checked (e.g. a registry)."""

    def check(value: Any) -> Any:
        allowed = tuple(choices())
        if value not in allowed:
            raise PydanticCustomError(_RULE, "must be {rule}", {"rule": "one of: " + ", ".join(allowed)})
        return value

    return AfterValidator(check)


def cross_error(message: str) -> PydanticCustomError:
    """An error between several keys (raise it from a model validator); shown as ``message``."""
    return PydanticCustomError(_CROSS, "{message}", {"message": message})


def _numeric_text(value: Any) -> Any:
    # YAML 1.1 reads `5e-5` (no dot) as a string; accept numeric text for number fields.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _path_text(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


Number = Annotated[float, BeforeValidator(_numeric_text)]
Text = Annotated[str, BeforeValidator(_path_text)]
PositiveInt = Annotated[int, _rule(">= 1", lambda v: v >= 1)]
NonNegativeInt = Annotated[int, _rule(">= 0", lambda v: v >= 0)]
Positive = Annotated[Number, _rule("> 0", lambda v: v > 0)]
NonNegative = Annotated[Number, _rule(">= 0", lambda v: v >= 0)]
OpenFraction = Annotated[Number, _rule("in (0, 1)", lambda v: 0 < v < 1)]
Width = Annotated[Number, _rule("in (0, 1]", lambda v: 0 < v <= 1)]
UnitInterval = Annotated[Number, _rule("in [0, 1]", lambda v: 0 <= v <= 1)]
NonBlank = Annotated[Text, _rule("a non-empty string", lambda v: bool(v.strip()))]
# Bounded counts and rates: a typo like 1e20 or lr=10 is refused here, not found mid-run.
StepCount = Annotated[int, _rule("in [1, 1000000]", lambda v: 1 <= v <= 1_000_000)]
StepCountOrNone = Annotated[int, _rule("in [0, 1000000]", lambda v: 0 <= v <= 1_000_000)]
BatchSize = Annotated[int, _rule("in [1, 65536]", lambda v: 1 <= v <= 65536)]
Tokens = Annotated[int, _rule("in [1, 1048576]", lambda v: 1 <= v <= 1 << 20)]
LearningRate = Annotated[Number, _rule("in (0, 1]", lambda v: 0 < v <= 1)]
RateScale = Annotated[Number, _rule("in (0, 1000]", lambda v: 0 < v <= 1000)]
Temperature = Annotated[Number, _rule("in [0.01, 100]", lambda v: 0.01 <= v <= 100)]
Seed = Annotated[int, _rule("in [0, 4294967295]", lambda v: 0 <= v < 1 << 32)]  # numpy's and torch's range
ExampleCount = Annotated[int, _rule("in [1, 1000000000000]", lambda v: 1 <= v <= 10**12)]
Multiple = Annotated[int, _rule("in [1, 1048576]", lambda v: 1 <= v <= 1 << 20)]
Minutes = Annotated[Number, _rule("in (0, 1000000]", lambda v: 0 < v <= 1e6)]
Seconds = Annotated[Number, _rule("in (0, 1000000000]", lambda v: 0 < v <= 1e9)]
Scale = Annotated[Number, _rule("in [1e-06, 1000000]", lambda v: 1e-6 <= v <= 1e6)]
Weight = Annotated[Number, _rule("in [0, 1000000]", lambda v: 0 <= v <= 1e6)]
GrowCap = Annotated[Number, _rule("in (1, 8]", lambda v: 1 < v <= 8)]
# A fraction of the pretrained width, past 1 where layers grew (up to the largest GrowCap)
GrownWidth = Annotated[Number, _rule("in (0, 8]", lambda v: 0 < v <= 8)]


class Section(BaseModel):
    """A strict settings section: no unknown keys, no silent type coercion, RecipeError on bad input.

    ``section`` names the section in messages when one is built on its own (``TrainConfig(steps=0)``
    says ``train.steps must be >= 1``); ``error`` is the exception class raised (RecipeError, or
    e.g. DataError for the data layer's own config).
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=False)
    section: ClassVar[str] = ""
    error: ClassVar[type[AwnError]] = RecipeError

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise recipe_error(exc, type(self), self.section, self.error) from None

    # Only direct construction goes through this __init__ (to word its errors); a section nested in
    # a recipe is validated by pydantic's core, which reports errors with their full dotted path.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class FileRecord(Section):
    """A record awncompress wrote into a folder and reads back (awncompress.json, report.json): the
    keys it relies on are checked, other keys are kept; a bad one is a NotAnExportError."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    error = NotAnExportError


# --------------------------------------------------------------------------------------------- wording


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _strip(tp: Any) -> Any:
    """``Annotated[X, ...]`` → X."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def type_name(tp: Any) -> str:
    """How a field's type reads in a message: "an integer or null", "a list of numbers"."""
    tp = _strip(tp)
    origin = get_origin(tp)
    if origin is Union:
        inner = [a for a in get_args(tp) if a is not type(None)]
        return " or ".join(type_name(a) for a in inner) + " or null"
    if origin is list:
        item = _strip(get_args(tp)[0])
        return {float: "a list of numbers", int: "a list of integers", str: "a list of strings"}.get(item, "a list")
    if _is_model(tp):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _walk(model: type, loc: Sequence[Union[str, int]]) -> tuple[Any, str]:
    """The annotation of the key ``loc`` points to in ``model`` and its dotted path."""
    tp: Any = model
    path = ""
    for part in loc:
        current = _strip(tp)
        if get_origin(current) is Union:
            current = [a for a in get_args(current) if a is not type(None)][0]
        if isinstance(part, int):
            args = get_args(_strip(current))
            tp = args[0] if args else Any
            path += f"[{part}]"
        else:
            field = current.model_fields.get(str(part)) if _is_model(current) else None
            tp = field.annotation if field is not None else Any
            path = f"{path}.{part}" if path else str(part)
    return tp, path


def _known_keys_message(owner: type, key: str, where: str) -> str:
    known = list(owner.model_fields)
    label = "the recipe" if not where else where
    hint = difflib.get_close_matches(str(key), known, n=1)
    return f"unknown key {key!r} in {label} (known: {', '.join(known)})" + (
        f"; did you mean {hint[0]!r}?" if hint else ""
    )


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else prefix or path


def _one(error: dict, model: type, prefix: str) -> str:
    loc = tuple(error["loc"])
    tp, path = _walk(model, loc)
    path = _join(prefix, path)
    kind, value = error["type"], error.get("input")
    if kind == _CROSS:
        return error["ctx"]["message"]
    if kind == _RULE:
        return f"{path} must be {error['ctx']['rule']} (got {value!r})"
    if kind == "extra_forbidden":
        parent, where = _walk(model, loc[:-1])
        parent = _strip(parent)
        return _known_keys_message(parent if _is_model(parent) else model, str(loc[-1]), _join(prefix, where))
    if kind == "too_short":
        return f"{path} must not be empty"
    if kind == "missing":
        return f"{path} is required"
    if kind == "finite_number":
        return f"{path}: expected a finite number, got {value!r}"
    expected = type_name(tp) if tp is not Any else "another type"
    message = f"{path}: expected {expected}, got {_describe(value)}"
    if isinstance(value, bool) and "a string" in expected:
        message += " (quote it: YAML reads bare yes/no/on/off as booleans)"
    return message


def recipe_error(exc: ValidationError, model: type, prefix: str = "", error: type[AwnError] = RecipeError) -> AwnError:
    """The first problem pydantic found, worded for a recipe author (unknown keys first)."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    return error(_one(errors[0], model, prefix))
