"""Shared test helpers: batches with padding, tiny model folders with a word-level tokenizer, data
files, training items and a report record. The models themselves come from zoo.py."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch
from ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401  (CI: a skip fails)
from zoo import FAMILIES, build, make_model


@pytest.fixture(autouse=True, scope="session")
def _tokenized_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tokenized stores go to a folder of this session's, not the user's cache."""
    os.environ["AWNCOMPRESS_TOKENIZED_CACHE"] = str(tmp_path_factory.mktemp("tokenized"))


def make_batches(n_batches: int = 2, batch: int = 3, seq: int = 10, vocab: int = 97, seed: int = 0) -> list[dict]:
    """Random token batches whose last rows are right-padded (attention_mask 0)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(2, vocab, (batch, seq), generator=g)
        mask = torch.ones(batch, seq, dtype=torch.long)
        mask[-1, seq // 2 :] = 0
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture
def keep_torch_threads():
    """Give later tests torch's thread count back (bench's parse() pins 2; a test may pin 1)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


# --- a tiny local model folder and data files, for the pipeline and CLI -------------------------

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dull", "weak"]
FILLER = ["the", "film", "was", "plot", "actors", "and", "very", "quite", "story", "a"]


def word_tokenizer(specials: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")):
    """A BERT-style word-level fast tokenizer over the synthetic review vocabulary, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(list(specials) + POSITIVE + NEGATIVE + FILLER)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )


def write_reviews(path, n: int = 96, seed: int = 0):
    """A CSV of synthetic reviews whose label (fresh/rotten) is carried by sentiment words."""
    import random

    import pandas as pd

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append({"text": " ".join(words), "label": "fresh" if label else "rotten"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def save_tiny_bert(folder, with_head: bool = True):
    """A tiny BERT folder (safetensors + tokenizer); without head = a base model, like MiniLM."""
    tok = word_tokenizer()
    model = build("bert", head="auto" if with_head else "base", num_labels=2, widen=False, vocab_size=len(tok))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write_nested(folder, family: str = "bert"):
    """A nested export of a tiny converted and folded model, with a learned profile (no fine-tune)."""
    from awncompress import AWNConfig, convert_, export_nested, fold_, profile_summary

    model = make_model(family)
    convert_(model, AWNConfig(), calibration=make_batches())
    profile = profile_summary(model)
    fold_(model)
    return export_nested(model, folder, widths=[0.25, 0.5], profile=profile)


def save_tiny_llama(folder):
    """A tiny Llama causal LM folder with a word-level tokenizer (eos, no pad: like SmolLM2)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<unk>", "<eos>"] + POSITIVE + NEGATIVE + FILLER)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<eos>")
    overrides = dict(vocab_size=len(vocab), num_key_value_heads=1, pad_token_id=None, eos_token_id=1)
    build("llama", head="lm", widen=False, **overrides).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# --- evaluation and training items and their collate function ----------------------------------


def make_dataset(n: int = 12, task: str = "cls", vocab: int = 97, seed: int = 0, labels: bool = True) -> list[dict]:
    """Items of varied length (4..12 tokens), like awncompress.data.tokenized produces them (lists, not tensors)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        length = 4 + i % 9
        ids = torch.randint(2, vocab, (length,), generator=g).tolist()
        item = {"input_ids": ids, "attention_mask": [1] * length}
        if labels:
            item["labels"] = list(ids) if task == "lm" else int(torch.randint(0, 3, (1,), generator=g))
        items.append(item)
    return items


def collate(items: list[dict]) -> dict:
    width = max(len(it["input_ids"]) for it in items)
    out = {
        "input_ids": torch.tensor([it["input_ids"] + [0] * (width - len(it["input_ids"])) for it in items]),
        "attention_mask": torch.tensor(
            [it["attention_mask"] + [0] * (width - len(it["attention_mask"])) for it in items]
        ),
    }
    if "labels" in items[0]:
        if isinstance(items[0]["labels"], list):
            out["labels"] = torch.tensor([it["labels"] + [-100] * (width - len(it["labels"])) for it in items])
        else:
            out["labels"] = torch.tensor([it["labels"] for it in items])
    return out


def toy_data(n: int = 48, seed: int = 0) -> list[dict]:
    """A learnable 3-class task: the label is the first token modulo 3."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(4, 10, (1,), generator=g))
        ids = torch.randint(2, 97, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "attention_mask": [1] * length, "labels": ids[0] % 3})
    return out


def free_port() -> int:
    """A TCP port nothing listens on now (for torchrun's rendezvous, so parallel runs do not collide)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a report record with MiniLM-like numbers ----------------------------------------------------


def synthetic_record(metric: str = "accuracy", higher: bool = True) -> dict:
    """A realistic record: MiniLM-like numbers for three methods at three widths."""
    dense_value = 0.82 if higher else 20.0
    values = {  # width -> method -> value
        0.125: {"awn": 0.778, "wina": 0.751, "wina-dynamic": 0.79},
        0.25: {"awn": 0.796, "wina": 0.767, "wina-dynamic": 0.805},
        0.5: {"awn": 0.814, "wina": 0.798, "wina-dynamic": 0.815},
    }
    rows = []
    for method in ("awn", "wina", "wina-dynamic"):
        for w, by in values.items():
            v = by[method] if higher else dense_value * (1 + (0.82 - by[method]))
            ratio = 0.38 + 0.62 * w
            rows.append(
                {
                    "method": method,
                    "width_fraction": w,
                    "intermediate_size": int(1536 * w),
                    "metric": metric,
                    "value": v,
                    "flops": int(1e9 * ratio),
                    "ffn_flops": int(0.62e9 * w),
                    "ffn_share": 0.62 * w / ratio,
                    "flops_ratio": ratio,
                    "params": int(22e6 * (0.6 + 0.4 * w)),
                    "params_ratio": 0.6 + 0.4 * w,
                    "weight_bytes": int(88e6 * (0.6 + 0.4 * w)),
                    "checkpoint_bytes": int(88e6 * (0.6 + 0.4 * w)) if method == "awn" else None,
                    "latency_ms": 10 * (0.5 + 0.5 * w) * (1.2 if method == "wina-dynamic" else 1.0),
                    "latency_p10_ms": 9.0,
                    "latency_p90_ms": 12.0,
                    "latency_ratio": 0.5 + 0.5 * w,
                    "export": f"out/width-{w:g}" if method == "awn" else None,
                    "theoretical": method == "wina-dynamic",
                }
            )
    return {
        "schema_version": 1,
        "created": "2026-01-01T00:00:00+00:00",
        "model": "all-MiniLM-L6-v2 (fine-tuned)",
        "architecture": "BertForSequenceClassification",
        "task": "text-classification",
        "data": "builtin:rotten-tomatoes",
        "num_eval_examples": 2000,
        "seed": 0,
        "metric": {"name": metric, "higher_is_better": higher},
        "versions": {"awncompress": "0.1.0", "torch": "2.x", "transformers": "5.x", "python": "3.11"},
        "device": {"type": "cpu", "name": "Some CPU @ 2.0GHz", "threads": 2},
        "latency_config": {"batch_size": 8, "seq_len": 64, "warmup": 3, "repeats": 20, "seed": 0},
        "d_ff": 1536,
        "num_layers": 6,
        "dense": {
            "metric": metric,
            "value": dense_value,
            "flops": int(1e9),
            "ffn_flops": int(0.62e9),
            "ffn_share": 0.62,
            "params": 22_000_000,
            "weight_bytes": 88_000_000,
            "latency_ms": 10.0,
            "latency_p10_ms": 9.5,
            "latency_p90_ms": 11.0,
            "intermediate_size": 1536,
        },
        "rows": rows,
        "profile": {
            "k": 0.9,
            "d_ff": 1536,
            "active_widths": [900, 700, 500, 420, 380, 300],
            "active_fractions": [round(w / 1536, 6) for w in (900, 700, 500, 420, 380, 300)],
            "normalised_rates": [3.9, 5.0, 7.1, 8.4, 9.3, 11.8],
        },
        "costs": {
            "awn": {"finetune_s": 115.0, "prepare_s": 0.4, "evaluate_s": 30.2},
            "wina": {"prepare_s": 2.0, "evaluate_s": 29.0},
        },
    }
