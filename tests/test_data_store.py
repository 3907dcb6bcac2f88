"""awncompress.data.store and the sources behind it: tokenized once into a memory-mapped cache, read in
batches, never held whole (offline, tiny word-level tokenizers)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from test_data import WORDS, bert_like_tokenizer, gpt_tok
from transformers import PreTrainedTokenizerFast

from awncompress.data import sources, store
from awncompress.data.tokenized import DataConfig, example_lengths, load_task_data
from awncompress.errors import DataError


@pytest.fixture(scope="module")
def bert_tok() -> PreTrainedTokenizerFast:
    return bert_like_tokenizer()


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh tokenized cache folder for one test."""
    folder = tmp_path / "tokenized"
    monkeypatch.setenv("AWNCOMPRESS_TOKENIZED_CACHE", str(folder))
    return folder


def _docs(n: int) -> list[str]:
    return [" ".join(WORDS[i % len(WORDS) :] + WORDS[: i % 7]) for i in range(n)]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _counting(monkeypatch) -> list[int]:
    """How many texts the (fast) tokenizer is called on, from now on."""
    calls: list[int] = []
    original = PreTrainedTokenizerFast.__call__

    def counted(self, text, *args, **kwargs):
        calls.append(len(text) if isinstance(text, list) else 1)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerFast, "__call__", counted)
    return calls


def test_a_second_load_reads_the_cache_and_tokenizes_nothing(tmp_path, cache, monkeypatch, bert_tok):
    rows = [{"text": doc, "label": i % 2} for i, doc in enumerate(_docs(40))]
    path = _jsonl(tmp_path / "t.jsonl", rows)
    cfg = DataConfig(train=str(path), eval_fraction=0.25)
    calls = _counting(monkeypatch)
    first = load_task_data(cfg, bert_tok)
    assert sum(calls) == 40 and len(list(cache.glob("*.arrow"))) == 1
    calls.clear()
    second = load_task_data(cfg, bert_tok)
    assert calls == []
    assert [first.train[i] for i in range(len(first.train))] == [second.train[i] for i in range(len(second.train))]
    # A changed file is a new source: it is tokenized again, and its new rows are what a run reads.
    _jsonl(path, rows[:20])
    third = load_task_data(cfg, bert_tok)
    assert sum(calls) == 20 and len(third.train) + len(third.eval) == 20


def test_windows_cross_the_batches_a_large_source_is_read_in(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(sources, "ROW_BATCH", 7)  # many record batches from a small file
    tok = gpt_tok()
    docs = _docs(50)
    path = _jsonl(tmp_path / "lm.jsonl", [{"text": d} for d in docs])
    td = load_task_data(DataConfig(task="causal-lm", train=str(path), eval=str(path), max_length=9), tok)
    stream = []
    for d in docs:
        stream += tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert [td.eval[i]["input_ids"] for i in range(len(td.eval))] == [
        stream[i : i + 9] for i in range(0, len(stream) - 8, 9)
    ]
    assert example_lengths(td.eval) == [9] * len(td.eval)


def test_plain_text_lines_are_one_document(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(sources, "ROW_BATCH", 2)
    tok = gpt_tok()
    lines = [" ".join(WORDS[i:]) for i in range(5)]
    text = "\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n"
    path = tmp_path / "book.txt"
    path.write_text(text, encoding="utf-8")
    td = load_task_data(DataConfig(task="causal-lm", train=str(path), eval=str(path), max_length=4), tok)
    stream = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]  # one eos: one document
    got = [t for i in range(len(td.eval)) for t in td.eval[i]["input_ids"]]
    assert got == stream[: len(got)] and len(stream) - len(got) < 4


def test_the_tokens_stay_in_the_file_not_in_memory(tmp_path, cache):
    tok = gpt_tok()
    path = _jsonl(tmp_path / "lm.jsonl", [{"text": " ".join(WORDS * 50)} for _ in range(400)])
    before = pa.total_allocated_bytes()
    td = load_task_data(DataConfig(task="causal-lm", train=str(path), eval=str(path), max_length=64), tok)
    tokens = 400 * (50 * len(WORDS) + 1)
    assert len(td.eval) == tokens // 64
    # The stream is a view of the memory-mapped store: Arrow allocated far less than its 4-byte tokens.
    assert pa.total_allocated_bytes() - before < tokens * 4 // 10
    assert td.eval[len(td.eval) - 1]["input_ids"][-1] in range(len(WORDS) + 2)


def test_a_failed_pass_leaves_no_store_behind(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(sources, "ROW_BATCH", 5)
    path = tmp_path / "t.jsonl"
    good = "".join(json.dumps({"text": d, "label": i % 2}) + "\n" for i, d in enumerate(_docs(30)))
    path.write_text(good + '{"text": ["the", "film"], "label": 1}\n', encoding="utf-8")  # found in the last batch
    with pytest.raises(DataError, match="column 'text' holds list values, not text"):
        load_task_data(DataConfig(train=str(path)), gpt_tok())
    assert not cache.exists() or os.listdir(cache) == []


def test_mixed_label_types_are_class_names(tmp_path, cache, bert_tok):
    rows = [{"text": d, "label": [1, "x"][i % 2]} for i, d in enumerate(_docs(12))]
    td = load_task_data(DataConfig(train=str(_jsonl(tmp_path / "t.jsonl", rows)), eval_fraction=0.25), bert_tok)
    assert td.label_names == ["1", "x"] and td.num_labels == 2
    assert example_lengths(td.train) == [len(td.train[i]["input_ids"]) for i in range(len(td.train))]


def test_tokenizer_key_tells_tokenizers_apart():
    a, b = gpt_tok(), gpt_tok()
    assert store.tokenizer_key(a) == store.tokenizer_key(b)
    b.add_tokens(["zebra"])
    assert store.tokenizer_key(a) != store.tokenizer_key(b)


def _file_backed_kib() -> int:
    """Kilobytes of files mapped into this process and resident (Linux's RssFile)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("RssFile:")))


def test_random_windows_are_read_without_mapping_the_store_in(tmp_path, cache):
    tok = gpt_tok()
    text = " ".join(WORDS * 2000)  # 36,000 tokens a document
    path = _jsonl(tmp_path / "lm.jsonl", [{"text": text} for _ in range(150)])  # ~5.4 M tokens, 22 MB stored
    td = load_task_data(DataConfig(task="causal-lm", train=str(path), eval=str(path), max_length=32), tok)
    before = _file_backed_kib()
    order = torch.randperm(len(td.train), generator=torch.Generator().manual_seed(0))[:3000]
    assert all(len(td.train[int(i)]["input_ids"]) == 32 for i in order)
    # 3,000 windows of 128 bytes: read through the mapping, each would fault in its page and the read-ahead
    # around it (megabytes); read with pread, they add nothing to the process.
    assert _file_backed_kib() - before < 2048
