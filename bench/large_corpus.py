"""Issue 30: data larger than memory. A generated jsonl corpus of ``--gigabytes`` (Jane Austen's
paragraphs, shuffled into documents) is read twice as causal-LM windows of 128 SmolLM2 tokens, each
read in a fresh process under ``/usr/bin/time -v``: the first tokenizes into an empty tokenized cache,
the second must find the cache and tokenize nothing. Each read then does what a run does with its data:
200 shuffled batches of 32 training windows and the whole eval part (``max_eval_examples`` 2000).

    python bench/large_corpus.py [--gigabytes 2] [--workdir /tmp/awncompress-large-corpus]
                                 [--out bench/results/large-corpus.md]

The corpus and the cache stay in ``--workdir`` (about 2 × the corpus on disk); it is reused when big enough.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness import make_parser

from awncompress.data import assets, corpora

WINDOW = 128
BATCH = 32
TRAIN_BATCHES = 200
EVAL_WINDOWS = 2000


def write_corpus(path: Path, gigabytes: float) -> None:
    """Documents of 2–20 random Jane Austen paragraphs, one JSON object a line, until the file is big enough."""
    paragraphs = [p.strip() for text in corpora.jane_austen().values() for p in re.split(r"\n\s*\n", text)]
    paragraphs = [p for p in paragraphs if p]
    rng = random.Random(0)
    target = int(gigabytes * 10**9)
    scratch = path.with_suffix(".partial")
    with open(scratch, "w", encoding="utf-8") as fh:
        while fh.tell() < target:
            lines = [
                json.dumps({"text": "\n\n".join(rng.choices(paragraphs, k=rng.randint(2, 20)))}) for _ in range(1000)
            ]
            fh.write("\n".join(lines) + "\n")
    os.replace(scratch, path)


def read(corpus: Path) -> dict:
    """What one run does with the corpus (this process is the one ``/usr/bin/time`` measures)."""
    import torch
    from transformers import AutoTokenizer

    from awncompress.data.tokenized import DataConfig, load_task_data

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(assets.smollm2_path())
    cfg = DataConfig(task="causal-lm", train=str(corpus), max_length=WINDOW, max_eval_examples=EVAL_WINDOWS)
    data = load_task_data(cfg, tokenizer)
    loaded = time.perf_counter()
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[: TRAIN_BATCHES * BATCH]
    tokens = 0
    for i in range(TRAIN_BATCHES):
        batch = data.collate([data.train[int(j)] for j in order[i * BATCH : (i + 1) * BATCH]])
        tokens += int(batch["attention_mask"].sum())
    for i in range(0, len(data.eval), BATCH):
        batch = data.collate([data.eval[j] for j in range(i, min(i + BATCH, len(data.eval)))])
        tokens += int(batch["attention_mask"].sum())
    return {
        "train_windows": len(data.train),
        "eval_windows": len(data.eval),
        "tokens_read": tokens,
        "load_s": round(loaded - start, 1),
        "batches_s": round(time.perf_counter() - loaded, 1),
    }


def measured(corpus: Path, env: dict) -> dict:
    """One read in a fresh process: its own figures plus peak RSS and wall time from /usr/bin/time -v."""
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--read", str(corpus)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: the read failed: {done.stderr.strip().splitlines()[-1:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    figures["peak_rss_gib"] = round(int(rss.group(1)) * 1024 / 2**30, 2)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr).group(1)
    figures["wall_s"] = round(sum(float(x) * 60**i for i, x in enumerate(reversed(wall.split(":")))), 1)
    return figures


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/awncompress-large-corpus"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/large-corpus.md"))
    parser.add_argument("--read", type=Path, help=argparse.SUPPRESS)  # the measured child process
    args = parser.parse_args()
    if args.read:
        print(json.dumps(read(args.read)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpus = args.workdir / "corpus.jsonl"
    if not corpus.is_file() or corpus.stat().st_size < args.gigabytes * 10**9:
        write_corpus(corpus, args.gigabytes)
    cache = args.workdir / "tokenized"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "AWNCOMPRESS_TOKENIZED_CACHE": str(cache), "TOKENIZERS_PARALLELISM": "true"}
    runs = [measured(corpus, env) for _ in range(2)]
    store = sum(f.stat().st_size for f in cache.glob("*.arrow"))
    report(args.out, corpus.stat().st_size, store, runs)


def report(out: Path, corpus_bytes: int, store_bytes: int, runs: list[dict]) -> None:
    lines = [
        f"Corpus: {corpus_bytes / 10**9:.2f} GB of jsonl; tokenized store {store_bytes / 10**9:.2f} GB "
        f"(int32 tokens); windows of {WINDOW} SmolLM2 tokens; each read then takes {TRAIN_BATCHES} shuffled "
        f"batches of {BATCH} training windows and the {EVAL_WINDOWS} eval windows. Peak RSS and wall time "
        "from `/usr/bin/time -v`, 2 cores.",
        "",
        "| read | train windows | eval windows | load s | batches s | wall s | peak RSS GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in zip(("1: empty cache (tokenizes)", "2: cache from read 1"), runs):
        lines.append(
            f"| {name} | {run['train_windows']:,} | {run['eval_windows']:,} | {run['load_s']} | "
            f"{run['batches_s']} | {run['wall_s']} | {run['peak_rss_gib']} |"
        )
    text = "\n".join(lines)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    out.with_suffix(".json").write_text(
        json.dumps({"corpus_bytes": corpus_bytes, "store_bytes": store_bytes, "runs": runs}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
