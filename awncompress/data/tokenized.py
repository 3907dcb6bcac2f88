"""Tasks and data sources -> tokenized torch datasets for fine-tuning and evaluation.

Where the rows come from (builtin, local file, Hub dataset) is :mod:`awncompress.data.sources`; this
module checks the columns and labels, splits and subsamples (seeded), tokenizes, and pads batches.
Every problem with the data is raised as one :class:`~awncompress.errors.DataError` line that says
what to fix.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..files.schema import ExampleCount, NonBlank, OpenFraction, Section, Tokens
from .sources import Table, builtin_base, read_source, seeded_split
from .tasks import check_task


class DataSection(Section):
    """Where the examples come from and how they are cut (a recipe's ``data`` section).

    ``train`` / ``eval`` are data sources (see :mod:`awncompress.data.sources`); ``eval: null`` holds
    out ``eval_fraction`` of the training source (a builtin's own eval part for builtins).
    ``text_pair_column`` names a second text column for sentence-pair tasks. ``max_length`` is the
    truncation length, for causal-lm the window size. ``max_*_examples`` cap the number of examples
    used (null: all).
    """

    section = "data"
    train: Optional[NonBlank] = None
    eval: Optional[NonBlank] = None
    text_column: NonBlank = "text"
    text_pair_column: Optional[NonBlank] = None
    label_column: NonBlank = "label"
    max_length: Tokens = 128
    max_train_examples: Optional[ExampleCount] = None
    max_eval_examples: Optional[ExampleCount] = None
    eval_fraction: OpenFraction = 0.2


class DataConfig(DataSection):
    """A data section plus the task it feeds and the seed of its splits (the data layer's input)."""

    error = DataError
    task: NonBlank = "text-classification"
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
            raise DataError("cannot collate an empty batch")
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
    check_task(cfg.task)
    if not cfg.train:
        raise DataError("no training data given: set train to a data file, a dataset id or a builtin")
    if cfg.max_length < 2:
        raise DataError(f"max_length must be at least 2, got {cfg.max_length}")
    pad_id = ensure_pad_token(tokenizer)
    # A builtin brings its own eval part; other sources fall back to a seeded split of train.
    eval_spec = cfg.eval or builtin_base(cfg.train)
    read = lambda spec, role: read_source(spec, role, cfg.task, cfg.text_column, cfg.label_column)  # noqa: E731
    train = read(cfg.train, "train")
    evals = read(eval_spec, "eval") if eval_spec else None
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


def ensure_pad_token(tokenizer: Any) -> int:
    """The pad id for collation, making eos the pad token when the tokenizer has none."""
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2/Llama ship without a pad token
    # With neither pad nor eos, any id works: attention_mask hides padding and labels use -100.
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


# ---------------------------------------------------------------------------------------------
# Subsampling (seeded, deterministic)
# ---------------------------------------------------------------------------------------------


def _subsample(items: Sequence[Any], limit: int | None, seed: int | str) -> list[Any]:
    """At most ``limit`` items, a seeded random choice kept in original order."""
    if limit is None or limit >= len(items):
        return list(items)
    keep = sorted(random.Random(f"subsample:{seed}").sample(range(len(items)), limit))
    return [items[i] for i in keep]


# ---------------------------------------------------------------------------------------------
# Text classification
# ---------------------------------------------------------------------------------------------


def _require_columns(table: Table, columns: list[str], role: str) -> None:
    missing = [c for c in columns if c not in table.frame.columns]
    if missing:
        present = ", ".join(repr(str(c)) for c in table.frame.columns)
        raise DataError(
            f"{role} data {table.origin} has no column {', '.join(repr(c) for c in missing)} "
            f"(columns present: {present}); set the column names in the data config"
        )


def _text_frame(table: Table, text_columns: list[str], role: str) -> pd.DataFrame:
    """Rows whose text columns all hold text (whitespace alone is no text), as str (a numeric-looking
    text stays text); a column of lists or mappings is refused rather than turned into its repr."""
    frame = table.frame.dropna(subset=text_columns).copy()
    for col in text_columns:
        odd = [v for v in frame[col] if not isinstance(v, (str, int, float))]
        if odd:
            raise DataError(
                f"{role} data {table.origin}: column '{col}' holds {type(odd[0]).__name__} values, not text"
            )
        frame[col] = frame[col].astype(str)
        frame = frame[frame[col].str.strip() != ""]
    if len(frame) == 0:
        raise DataError(f"{role} data {table.origin} has no rows with text in {', '.join(text_columns)}")
    return frame.reset_index(drop=True)


def _label_kind(series: pd.Series) -> str:
    """ "int" when the labels are class ids (ints, bools, integral floats), else "str"."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "int" if all(float(v).is_integer() for v in series) else "float"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in series):
        return "int"
    return "str"


def _encode_labels(
    parts: list[tuple[pd.Series, str]], known_names: list[str] | None, label_column: str
) -> tuple[list[list[int]], int, list[str] | None]:
    """Label ids for each part, the number of classes and the class names (None if unknown)."""
    for series, origin in parts:
        odd = [v for v in series if isinstance(v, (list, tuple, dict, set)) or hasattr(v, "tolist")]
        if odd:
            raise DataError(
                f"label column '{label_column}' of {origin} holds {type(odd[0]).__name__} values; a label is "
                "one class id or name"
            )
        if series.isna().any():
            missing = int(series.isna().sum())
            raise DataError(f"{origin} has {missing} rows without a value in label column '{label_column}'")
        if _label_kind(series) == "float":
            shown = ", ".join(f"{v:g}" for v in sorted(set(series))[:5])
            raise DataError(
                f"label column '{label_column}' of {origin} holds non-integer numbers ({shown}); classification "
                "needs class ids 0..n-1 or class names (regression is not supported)"
            )
    if all(_label_kind(series) == "int" for series, _ in parts):
        encoded = [[int(v) for v in series] for series, _ in parts]
        found = sorted({v for ids in encoded for v in ids})
        n = len(found)
        if found[0] != 0 or found[-1] != n - 1:  # sorted distinct ints are 0..n-1 exactly then (no range built)
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
    unseen = sorted(set().union(*encoded[1:]) - set(encoded[0])) if len(encoded) > 1 else []
    if unseen:
        shown = ", ".join(repr(names[i]) if names else str(i) for i in unseen[:5])
        raise DataError(
            f"{parts[1][1]} has label(s) {shown} that the training data does not have; the model could "
            "never predict them"
        )
    return encoded, n, names


def _tokenize_pairs(
    tokenizer: Any, texts: list[str], pairs: list[str] | None, labels: list[int], max_length: int
) -> ExampleDataset:
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    examples = [{**{k: list(enc[k][i]) for k in keys}, "labels": labels[i]} for i in range(len(texts))]
    return ExampleDataset(examples)


def _classification(
    cfg: DataConfig, tokenizer: Any, train: Table, evals: Table | None
) -> tuple[ExampleDataset, ExampleDataset, int, list[str] | None]:
    if cfg.label_column in (cfg.text_column, cfg.text_pair_column):
        raise DataError(f"column '{cfg.label_column}' is both the text and the label: the model would read the answer")
    text_cols = [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
    _require_columns(train, text_cols + [cfg.label_column], "train")
    train_frame = _text_frame(train, text_cols, "train")
    if evals is None:
        train_idx, eval_idx = seeded_split(len(train_frame), cfg.eval_fraction, cfg.seed)
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

    Each window starts with the tokenizer's BOS token where it defines one (as lm-eval-harness's
    rolling windows and the transformers perplexity guide do): a model is trained on text that
    starts so, and scores far worse on windows cut out of the middle of a stream without it. BOS
    is a context token only, never a target. Windows cross document boundaries (the usual "group
    texts" recipe). The short tail is dropped so every window has the same length, unless it is the
    only window there is.
    """
    # verbose=False: whole documents are far longer than model_max_length, on purpose.
    enc = tokenizer(texts, add_special_tokens=False, verbose=False)
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in enc["input_ids"]:
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
    bos = tokenizer.bos_token_id
    prefix = [bos] if bos is not None else []
    span = block - len(prefix)
    windows = [prefix + stream[i : i + span] for i in range(0, len(stream), span)]
    if len(windows) > 1 and len(windows[-1]) < block:
        windows.pop()
    if not windows or len(windows[0]) < 2:
        raise DataError(f"{origin} has only {len(stream)} token(s); a causal-lm window needs at least 2")
    return windows


def _lm_examples(windows: list[list[int]], scored_from: int) -> ExampleDataset:
    """Items whose labels are the window, with the first ``scored_from`` positions (BOS) never targets."""
    return ExampleDataset(
        [
            {"input_ids": w, "attention_mask": [1] * len(w), "labels": [-100] * scored_from + w[scored_from:]}
            for w in windows
        ]
    )


def _causal_lm(
    cfg: DataConfig, tokenizer: Any, train: Table, evals: Table | None
) -> tuple[ExampleDataset, ExampleDataset]:
    _require_columns(train, [cfg.text_column], "train")
    train_texts = list(_text_frame(train, [cfg.text_column], "train")[cfg.text_column])
    train_windows = _windows(tokenizer, train_texts, cfg.max_length, f"train data {train.origin}")
    if evals is None:
        # Split windows, not documents, so a single long document still yields an eval part.
        what = f"windows of {cfg.max_length} tokens"
        train_idx, eval_idx = seeded_split(len(train_windows), cfg.eval_fraction, cfg.seed, what)
        eval_windows = [train_windows[i] for i in eval_idx]
        train_windows = [train_windows[i] for i in train_idx]
    else:
        _require_columns(evals, [cfg.text_column], "eval")
        eval_texts = list(_text_frame(evals, [cfg.text_column], "eval")[cfg.text_column])
        eval_windows = _windows(tokenizer, eval_texts, cfg.max_length, f"eval data {evals.origin}")
    scored_from = 1 if tokenizer.bos_token_id is not None else 0
    return (
        _lm_examples(_subsample(train_windows, cfg.max_train_examples, cfg.seed), scored_from),
        _lm_examples(_subsample(eval_windows, cfg.max_eval_examples, cfg.seed), scored_from),
    )
