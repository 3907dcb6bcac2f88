"""The tokenized cache: a source's tokens written once to an Arrow file, then read a piece at a time.

A data set larger than memory is read in batches (:mod:`awncompress.data.sources`), tokenized batch by
batch and written here; training and evaluation then read only the examples they use from the file
(its layout memory-mapped, its tokens read with ``pread``: :class:`TokenReader`), so resident memory
stays far below the corpus's size. A second run with the same
source and tokenizer finds the file and tokenizes nothing.

The file is keyed by what its tokens depend on (the source's identity, the tokenizer, the columns
and the truncation length), written to a scratch name and renamed into place, so a broken pass
leaves nothing behind and concurrent processes (ranks of one run) each find a whole file. The folder
is ``$AWNCOMPRESS_TOKENIZED_CACHE``, else ``tokenized/`` in awncompress's cache
(:func:`awncompress.data.assets.cache_dir`); deleting it only costs the tokenizing again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from . import assets

STORE_VERSION = 1  # bump when what a store holds changes: old files are then never read
_EXTENSION = ".arrow"


def cache_root() -> Path:
    """The folder tokenized stores live in (not created here)."""
    override = os.environ.get("AWNCOMPRESS_TOKENIZED_CACHE")
    return Path(override).expanduser() if override else assets.cache_dir() / "tokenized"


def tokenizer_key(tokenizer: Any) -> str:
    """What a tokenizer's output depends on, hashed: its full definition (a fast tokenizer's JSON, else
    its vocabulary) and the special token ids appended around documents."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # A call with truncation=True leaves truncation (and padding) set on the backend: call state,
        # not what the tokens of a source depend on (the store's key names the truncation length).
        definition = json.dumps({**json.loads(backend.to_str()), "truncation": None, "padding": None}, sort_keys=True)
    else:
        definition = json.dumps(sorted(tokenizer.get_vocab().items()))
    extras = [type(tokenizer).__name__, tokenizer.bos_token_id, tokenizer.eos_token_id]
    return hashlib.sha256((definition + json.dumps(extras)).encode()).hexdigest()


def token_lists(rows: list[list[int]], dtype: Any = np.int32) -> pa.ListArray:
    """Token id lists as an Arrow list array, built through numpy (``pa.array`` on nested Python lists
    is ten times slower, and a corpus is hundreds of millions of tokens)."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)), out=offsets[1:])
    values = np.fromiter(itertools.chain.from_iterable(rows), dtype=dtype, count=int(offsets[-1]))
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))


def store_path(what: dict[str, Any]) -> Path:
    """The cache file of the store that ``what`` (JSON-serialisable) describes."""
    digest = hashlib.sha256(json.dumps({"version": STORE_VERSION, **what}, sort_keys=True).encode()).hexdigest()
    return cache_root() / f"{digest[:32]}{_EXTENSION}"


class Store(NamedTuple):
    """A written store: its memory-mapped table, its name (the hash of what its tokens depend on), its
    file, and the address its mapping starts at (what turns a column's buffer into a file offset)."""

    table: pa.Table
    name: str
    path: Path
    base: int

    def fingerprint(self, *selection: Any) -> str:
        """A hash of this store and what a data set selects from it (index arrays, settings)."""
        digest = hashlib.sha256(self.name.encode())
        for part in selection:
            digest.update(part.tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
        return digest.hexdigest()


def open_store(path: Path) -> Store:
    """A written store, memory-mapped: only the pages of what is read are loaded."""
    with pa.memory_map(str(path)) as source:
        base = source.read_buffer(8).address
        source.seek(0)
        return Store(pa.ipc.open_stream(source).read_all(), path.stem, path, base)


class TokenReader:
    """The values of a list column of a store, read with ``pread`` rather than through the mapping.

    A training run reads windows and examples at random: through the mapping, each read would fault
    in the file around it (read-ahead), and those pages would count as the process's resident memory
    until the whole store did. ``pread`` reads the few bytes asked for and leaves them in the page
    cache, not in the process.
    """

    def __init__(self, store: Store, column: str) -> None:
        self._file = open(store.path, "rb", buffering=0)  # noqa: SIM115 - open while the reader is, closed with it
        self._chunks: list[tuple[np.ndarray, int, np.dtype]] = []  # (row offsets, file offset of values, dtype)
        rows = [0]
        for chunk in store.table.column(column).chunks:
            values = chunk.values
            dtype = np.dtype(values.type.to_pandas_dtype())
            start = values.buffers()[1].address - store.base + values.offset * dtype.itemsize
            self._chunks.append((chunk.offsets.to_numpy(), start, dtype))
            rows.append(rows[-1] + len(chunk))
        self._rows = np.asarray(rows, dtype=np.int64)
        # The concatenated values of all rows: where each chunk's values start in that stream.
        self._values = np.cumsum([0] + [int(o[-1] - o[0]) for o, _, _ in self._chunks])
        self.size = int(self._values[-1])

    def _read(self, chunk: int, first: int, last: int) -> list[int]:
        """Values ``first:last`` of ``chunk``'s values buffer."""
        _, start, dtype = self._chunks[chunk]
        raw = os.pread(self._file.fileno(), (last - first) * dtype.itemsize, start + first * dtype.itemsize)
        return np.frombuffer(raw, dtype=dtype).tolist()

    def row(self, index: int) -> list[int]:
        """Row ``index``'s list."""
        chunk = int(np.searchsorted(self._rows, index, side="right")) - 1
        offsets = self._chunks[chunk][0]
        local = index - int(self._rows[chunk])
        return self._read(chunk, int(offsets[local]), int(offsets[local + 1]))

    def span(self, start: int, stop: int) -> list[int]:
        """Values ``start:stop`` of the rows' concatenation (the token stream of a causal-LM store)."""
        out: list[int] = []
        chunk = int(np.searchsorted(self._values, start, side="right")) - 1
        while start < stop and chunk < len(self._chunks):
            first = int(self._chunks[chunk][0][0])
            offset = start - int(self._values[chunk])
            take = min(stop, int(self._values[chunk + 1])) - start
            out.extend(self._read(chunk, first + offset, first + offset + take))
            start += take
            chunk += 1
        return out

    def lengths(self) -> np.ndarray:
        """Every row's length."""
        return np.concatenate([np.diff(offsets) for offsets, _, _ in self._chunks] or [np.zeros(0, np.int64)])


def build_store(path: Path, write: Callable[[], Iterable[pa.RecordBatch]]) -> Store:
    """The store at ``path``: opened if it exists, else written from ``write()``'s record batches to a
    scratch file renamed into place when the last batch is written (a failed pass leaves nothing)."""
    if not path.is_file():
        with assets.staged(path) as scratch:
            writer = None
            try:
                for batch in write():
                    if writer is None:
                        writer = pa.ipc.new_stream(str(scratch), batch.schema)
                    writer.write_batch(batch)
            finally:
                if writer is not None:
                    writer.close()
    return open_store(path)


__all__ = [
    "STORE_VERSION",
    "Store",
    "build_store",
    "cache_root",
    "open_store",
    "store_path",
    "token_lists",
    "tokenizer_key",
]
