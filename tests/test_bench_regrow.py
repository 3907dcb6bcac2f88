"""bench/regrow.py: a small export's encoder converted on a new task, without and with growth, against a wider one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import transformers as tf
from conftest import save_tiny_bert, write_reviews

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import regrow  # noqa: E402

from awncompress.config import apply_overrides, load_recipe  # noqa: E402
from awncompress.run.convert import run_convert  # noqa: E402

pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # parse() pins torch to 2 threads

FAST = {"train.steps": 4, "dense.steps": 4, "train.batch_size": 8, "dense.batch_size": 8}
FAST |= {"evaluate.latency_repeats": 1, "data.max_eval_examples": 30, "train.extra_widths": "[]"}


def test_a_small_export_is_regrown_on_new_labels_and_paired_with_the_others(tmp_path, monkeypatch):
    source = tmp_path / "source"  # a finished run on two labels
    sets = {"model": save_tiny_bert(tmp_path / "model"), "data.train": write_reviews(tmp_path / "r.csv"), **FAST}
    run_convert(apply_overrides(load_recipe("demo"), {**sets, "export.widths": "0.25"}), source)
    topics = tmp_path / "topics.csv"  # the new task: three labels, so the old head cannot serve
    rows = pd.read_csv(tmp_path / "r.csv")
    rows["label"] = [("a", "b", "c")[i % 3] for i in range(len(rows))]
    rows.to_csv(topics, index=False)
    out = tmp_path / "out"
    argv = ["regrow.py", "--source", str(source), "--out", str(out), "--width", "0.25", "--data", str(topics)]
    # A low initial rate puts each layer's 0.9-quantile past its width, so the regrown arm grows.
    for key, value in {**FAST, "awn.init_rate": 1.0}.items():
        argv += ["--set", f"{key}={value}"]
    monkeypatch.setattr(sys, "argv", argv)
    regrow.main()

    small = tf.AutoConfig.from_pretrained(out / "models" / "encoder-0.25")
    d_ff = tf.AutoConfig.from_pretrained(tmp_path / "model").intermediate_size
    assert small.intermediate_size == d_ff // 4 and not small.architectures[0].endswith("Classification")
    summary = json.loads((out / "summary.json").read_text())["seeds"]["0"]
    grown = summary["grown_widths"]
    assert grown and all(g > d_ff // 4 for g in grown)  # every layer grew past the small width
    fraction = summary["ffn_fraction_of_pretrained"]["regrown"]
    assert fraction == sum(summary["learned_widths"]) / (len(grown) * d_ff) and 0.25 < fraction < 1
    wider = tf.AutoConfig.from_pretrained(out / "models" / "encoder-seed-0")
    assert abs(wider.intermediate_size - fraction * d_ff) <= 1  # the source cut at the regrown FFN FLOPs
    per_example = json.loads((out / "seed-0" / "report.json").read_text())["per_example_correct"]
    assert set(per_example) == {"small", "regrown", "wider"} and len({len(v) for v in per_example.values()}) == 1
    assert tf.AutoConfig.from_pretrained(out / "wider" / "seed-0" / "width-1").num_labels == 3
