"""Text classification data: source rows -> a tokenized store -> checked, split, subsampled examples.

Rows are tokenized batch by batch into the tokenized cache (:mod:`awncompress.data.store`) with their
raw labels; the labels are checked and given ids afterwards, from their distinct values alone, so no
step holds the whole data set in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from torch.utils.data import Dataset

from ..errors import DataError
from .checks import require_columns, text_rows
from .labels import LabelColumn, encode_labels, label_json
from .sources import Rows, seeded_split, subsample
from .store import Store, TokenReader, build_store, store_path, token_lists, tokenizer_key

_LABEL = "label"  # the store's column of raw labels (JSON text)


class TokenExamples(Dataset):
    """Tokenized classification examples: rows of a store, read one at a time.

    Items are ``{"input_ids", ["attention_mask"], ["token_type_ids"], "labels": int}``, as a tokenizer
    without padding returns them (its attention mask is all ones, so the store does not hold it).
    """

    def __init__(self, store: Store, rows: np.ndarray, label_ids: dict[str, int]) -> None:
        table = store.table
        self._store = store
        self._rows = rows
        self._label_ids = label_ids
        self._mask = (table.schema.metadata or {}).get(b"attention_mask") == b"1"
        self._ids = TokenReader(store, "input_ids")
        self._types = TokenReader(store, "token_type_ids") if "token_type_ids" in table.column_names else None
        raw = table.column(_LABEL).take(pa.array(rows))
        ids = pc.index_in(raw, pa.array(list(label_ids))).to_numpy(zero_copy_only=False)
        self._labels = np.asarray(list(label_ids.values()), dtype=np.int64)[ids.astype(np.int64)]

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self._rows) <= index < len(self._rows):
            raise IndexError(f"example {index} of {len(self._rows)}")
        row = int(self._rows[index])
        ids = self._ids.row(row)
        item: dict[str, Any] = {"input_ids": ids}
        if self._mask:
            item["attention_mask"] = [1] * len(ids)
        if self._types is not None:
            item["token_type_ids"] = self._types.row(row)
        item["labels"] = int(self._labels[index])
        return item

    def lengths(self) -> list[int]:
        """Every example's token count, in order, without reading its tokens."""
        return self._ids.lengths()[self._rows].tolist()

    def fingerprint(self) -> str:
        """A hash of these examples: the store's name, the rows chosen and the label ids."""
        return self._store.fingerprint(self._rows, sorted(self._label_ids.items()))


def _store(
    rows: Rows, tokenizer: Any, key: str, text_columns: list[str], label_column: str, max_length: int, role: str
) -> Store:
    """The tokenized store of ``rows``: every row with text, its tokens (truncated) and raw label
    (``key``: the tokenizer's :func:`~awncompress.data.store.tokenizer_key`)."""
    what = {"task": "text-classification", "source": rows.identity, "tokenizer": key}
    path = store_path({**what, "text": text_columns, "label": label_column, "max_length": max_length})

    def write() -> Iterator[pa.RecordBatch]:
        seen = kept = 0
        for batch in rows.batches():
            if not seen:
                require_columns(batch, text_columns, role, rows.origin)
                columns = json.dumps(list(batch))
            seen += len(batch[text_columns[0]])
            keep = text_rows(batch, text_columns, role, rows.origin)
            if not keep:
                continue
            kept += len(keep)
            pairs = [batch[text_columns[1]][i] for i in keep] if len(text_columns) > 1 else None
            enc = tokenizer([batch[text_columns[0]][i] for i in keep], pairs, truncation=True, max_length=max_length)
            arrays = {"input_ids": token_lists(enc["input_ids"])}
            if "token_type_ids" in enc:
                arrays["token_type_ids"] = token_lists(enc["token_type_ids"], np.int8)
            if label_column in batch:
                arrays[_LABEL] = pa.array([label_json(batch[label_column][i]) for i in keep], pa.string())
            meta = {"attention_mask": "1" if "attention_mask" in enc else "0", "columns": columns}
            yield pa.RecordBatch.from_pydict(arrays, metadata=meta)
        if not seen:
            raise DataError(f"{role} data {rows.origin} has no rows")
        if not kept:
            raise DataError(f"{role} data {rows.origin} has no rows with text in {', '.join(text_columns)}")

    return build_store(path, write)


def _labels(table: pa.Table, rows: np.ndarray, origin: str) -> LabelColumn:
    """The distinct raw labels of ``rows`` of a store and how many are missing."""
    column = table.column(_LABEL)
    if len(rows) != table.num_rows:
        column = column.take(pa.array(rows))
    missing = int(pc.sum(pc.equal(column, "null")).as_py() or 0)
    return LabelColumn(tuple(raw for raw in pc.unique(column).to_pylist() if raw != "null"), missing, origin)


def _source_columns(table: pa.Table) -> dict[str, None]:
    return dict.fromkeys(json.loads((table.schema.metadata or {})[b"columns"]))


def classification_sets(
    cfg: Any, tokenizer: Any, train: Rows, evals: Optional[Rows]
) -> tuple[TokenExamples, TokenExamples, int, Optional[list[str]]]:
    """Train and eval examples, the number of classes and their names; ``cfg`` is a DataConfig."""
    if cfg.label_column in (cfg.text_column, cfg.text_pair_column):
        raise DataError(f"column '{cfg.label_column}' is both the text and the label: the model would read the answer")
    text_cols = [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
    key = tokenizer_key(tokenizer)  # once: hashing a large vocabulary's definition takes a second
    store = lambda rows, role: _store(rows, tokenizer, key, text_cols, cfg.label_column, cfg.max_length, role)  # noqa: E731
    train_store = store(train, "train")
    require_columns(_source_columns(train_store.table), [cfg.label_column], "train", train.origin)
    if evals is None:
        train_idx, eval_idx = seeded_split(train_store.table.num_rows, cfg.eval_fraction, cfg.seed)
        eval_store, eval_origin = train_store, f"{train.origin} (eval split)"
    else:
        eval_store = store(evals, "eval")
        train_idx, eval_idx = range(train_store.table.num_rows), range(eval_store.table.num_rows)
        eval_origin = f"eval data {evals.origin}"
        labelled = cfg.label_column in _source_columns(eval_store.table)
        if not labelled or pc.all(pc.equal(eval_store.table.column(_LABEL), "null")).as_py():
            raise DataError(
                f"eval data {evals.origin} has no labels in column '{cfg.label_column}'; "
                "text classification needs labelled eval data"
            )
    train_rows, eval_rows = np.asarray(train_idx, dtype=np.int64), np.asarray(eval_idx, dtype=np.int64)
    label_ids, num_labels, names = encode_labels(
        [
            _labels(train_store.table, train_rows, f"train data {train.origin}"),
            _labels(eval_store.table, eval_rows, eval_origin),
        ],
        train.label_names or (evals.label_names if evals else None),
        cfg.label_column,
    )
    sets = []
    for part, rows, limit in (
        (train_store, train_rows, cfg.max_train_examples),
        (eval_store, eval_rows, cfg.max_eval_examples),
    ):
        keep = np.asarray(subsample(range(len(rows)), limit, cfg.seed), dtype=np.int64)
        sets.append(TokenExamples(part, rows[keep], label_ids))
    return sets[0], sets[1], num_labels, names


__all__ = ["TokenExamples", "classification_sets"]
