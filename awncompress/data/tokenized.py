"""Tasks and data sources -> tokenized torch datasets for fine-tuning and evaluation.

Where the rows come from (builtin, local file, Hub dataset) is :mod:`awncompress.data.sources`; how
they become examples, :mod:`~awncompress.data.classification` and :mod:`~awncompress.data.windows`
(tokenized once into an on-disk cache, :mod:`~awncompress.data.store`); this module names the
data settings, picks the task's path, and pads batches.
Every problem with the data is raised as one :class:`~awncompress.errors.DataError` line that says
what to fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..files.schema import ExampleCount, NonBlank, OpenFraction, Section, Tokens
from .classification import classification_sets
from .sources import builtin_base, read_source
from .tasks import check_task
from .windows import lm_sets


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
    """The token count (``len(input_ids)``) of every example, in dataset order; a tokenized store's
    data sets know them without reading their tokens."""
    if hasattr(dataset, "lengths"):
        return dataset.lengths()
    return [len(dataset[i]["input_ids"]) for i in range(len(dataset))]


def dataset_fingerprint(dataset: Any) -> str:
    """A hash of a data set's examples as tokenized: a tokenized store's data sets hash the store's name
    and their selection (reading no tokens); any other data set, its examples' ids and labels."""
    if hasattr(dataset, "fingerprint"):
        return dataset.fingerprint()
    digest = hashlib.sha256()
    for i in range(len(dataset)):
        digest.update(repr((dataset[i].get("input_ids"), dataset[i].get("labels"))).encode())
    return digest.hexdigest()


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
        train_set, eval_set, num_labels, names = classification_sets(cfg, tokenizer, train, evals)
    else:
        train_set, eval_set = lm_sets(cfg, tokenizer, train, evals)
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
