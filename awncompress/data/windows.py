"""Causal-LM data: source rows -> one token stream in the tokenized cache -> fixed-length windows.

The documents are tokenized batch by batch, each followed by eos, into a store
(:mod:`awncompress.data.store`): the concatenation of its rows is the token stream. A window is a
slice of that stream read from the file when it is asked for, so a corpus larger than memory costs
the windows a run reads, not the corpus.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

import numpy as np
import pyarrow as pa
from torch.utils.data import Dataset

from ..errors import DataError
from .checks import require_columns, text_rows
from .sources import Rows, seeded_split, subsample
from .store import Store, TokenReader, build_store, store_path, token_lists, tokenizer_key


class TokenStream:
    """The concatenated tokens of a store's ``input_ids`` rows, read a slice at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._reader = TokenReader(store, "input_ids")
        self.size = self._reader.size

    def tokens(self, start: int, stop: int) -> list[int]:
        """Tokens ``start:stop`` of the stream."""
        return self._reader.span(start, stop)


class TokenWindows(Dataset):
    """Windows of a token stream: window ``i`` is the optional BOS, then ``span`` stream tokens from
    ``i * span``. Items are ``{"input_ids", "attention_mask", "labels"}`` with labels equal to the
    input ids, except the first ``scored_from`` positions (BOS), which are never targets (-100)."""

    def __init__(self, stream: TokenStream, windows: np.ndarray, span: int, prefix: list[int]) -> None:
        self._stream = stream
        self._windows = windows
        self._span = span
        self._prefix = prefix

    def __len__(self) -> int:
        return len(self._windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self._windows) <= index < len(self._windows):
            raise IndexError(f"window {index} of {len(self._windows)}")
        start = int(self._windows[index]) * self._span
        ids = self._prefix + self._stream.tokens(start, start + self._span)
        scored = len(self._prefix)
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * scored + ids[scored:]}

    def lengths(self) -> list[int]:
        """Every window's token count, in order, without reading its tokens."""
        ends = np.minimum((self._windows + 1) * self._span, self._stream.size)
        return (ends - self._windows * self._span + len(self._prefix)).tolist()

    def fingerprint(self) -> str:
        """A hash of these windows: the store's name, the windows chosen, their span and prefix."""
        return self._stream.store.fingerprint(self._windows, self._span, self._prefix)


def _store(rows: Rows, tokenizer: Any, tokenizer_id: str, column: str, role: str) -> Store:
    """The tokenized store of ``rows``: one row of tokens per document (ending in eos), or for a
    source that is one document in pieces (a .txt file's lines), one row per batch of pieces and
    eos once at the end (``tokenizer_id``: the tokenizer's :func:`~awncompress.data.store.tokenizer_key`)."""
    key = {"task": "causal-lm", "source": rows.identity, "tokenizer": tokenizer_id, "text": column}
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []

    def write() -> Iterator[pa.RecordBatch]:
        seen = kept = 0
        for batch in rows.batches():
            if not seen:
                require_columns(batch, [column], role, rows.origin)
            seen += len(batch[column])
            if rows.one_document:
                texts = ["".join(batch[column])]
                texts = texts if texts[0].strip() else []
            else:
                texts = [batch[column][i] for i in text_rows(batch, [column], role, rows.origin)]
            if not texts:
                continue
            kept += len(texts)
            # verbose=False: whole documents are far longer than model_max_length, on purpose.
            ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
            ids = ids if rows.one_document else [doc + eos for doc in ids]
            yield pa.RecordBatch.from_pydict({"input_ids": token_lists(ids)})
        if not seen:
            raise DataError(f"{role} data {rows.origin} has no rows")
        if not kept:
            raise DataError(f"{role} data {rows.origin} has no rows with text in {column}")
        if rows.one_document and eos:
            yield pa.RecordBatch.from_pydict({"input_ids": token_lists([eos])})

    return build_store(store_path({**key, "one_document": rows.one_document}), write)


def _window_count(stream: TokenStream, span: int, prefix: list[int], origin: str) -> int:
    """How many windows the stream holds: the short tail is dropped so every window has the same
    length, unless it is the only window there is."""
    count = -(-stream.size // span)
    if count > 1 and stream.size % span:
        count -= 1
    if not count or len(prefix) + min(span, stream.size) < 2:
        raise DataError(f"{origin} has only {stream.size} token(s); a causal-lm window needs at least 2")
    return count


def lm_sets(cfg: Any, tokenizer: Any, train: Rows, evals: Optional[Rows]) -> tuple[TokenWindows, TokenWindows]:
    """Train and eval windows of ``cfg.max_length`` tokens (``cfg`` is a DataConfig).

    Each window starts with the tokenizer's BOS token where it defines one (as lm-eval-harness's
    rolling windows and the transformers perplexity guide do): a model is trained on text that
    starts so, and scores far worse on windows cut out of the middle of a stream without it. BOS
    is a context token only, never a target. Windows cross document boundaries (the usual "group
    texts" recipe). With no eval source, the windows (not the documents) are split, so a single
    long document still yields an eval part.
    """
    prefix = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    span = cfg.max_length - len(prefix)
    streams, counts = [], []
    tokenizer_id = tokenizer_key(tokenizer)  # once: hashing a large vocabulary's definition takes a second
    for rows, role in ((train, "train"), (evals, "eval")):
        if rows is not None:
            streams.append(TokenStream(_store(rows, tokenizer, tokenizer_id, cfg.text_column, role)))
            counts.append(_window_count(streams[-1], span, prefix, f"{role} data {rows.origin}"))
    if evals is None:
        what = f"windows of {cfg.max_length} tokens"
        train_ids, eval_ids = seeded_split(counts[0], cfg.eval_fraction, cfg.seed, what)
        parts = [(streams[0], train_ids, cfg.max_train_examples), (streams[0], eval_ids, cfg.max_eval_examples)]
    else:
        parts = [
            (streams[0], range(counts[0]), cfg.max_train_examples),
            (streams[1], range(counts[1]), cfg.max_eval_examples),
        ]
    return tuple(  # type: ignore[return-value]
        TokenWindows(stream, np.asarray(subsample(ids, limit, cfg.seed), dtype=np.int64), span, prefix)
        for stream, ids, limit in parts
    )


__all__ = ["TokenStream", "TokenWindows", "lm_sets"]
