"""bench/awn_per_layer_after.py: a finished run's learned per-layer widths, written from its nested
checkpoint at each width's FFN budget and evaluated as awn-per-layer rows, leaving the run untouched."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import save_tiny_bert, write_reviews
from typer.testing import CliRunner

from awncompress.cli import app

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import awn_per_layer_after  # noqa: E402
import methods_after  # noqa: E402

pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # parse() pins torch to 2 threads


def test_the_learned_per_layer_widths_of_a_finished_run(tmp_path, monkeypatch):
    model, data, run = save_tiny_bert(tmp_path / "model"), write_reviews(tmp_path / "reviews.csv"), tmp_path / "run"
    args = ["convert", str(model), "--data", str(data), "--widths", "0.25,0.5", "--out", str(run), "--steps", "4"]
    args += ["--dense-steps", "4", "--set", "train.batch_size=8", "--set", "dense.batch_size=8", "--quiet"]
    args += ["--set", "evaluate.methods=awn,wina", "--set", "evaluate.latency_repeats=2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    before = sorted(p.name for p in run.iterdir())
    out = tmp_path / "per-layer"
    argv = ["awn_per_layer_after.py", "--run", str(run), "--out", str(out), "--train-data", str(data)]
    argv += ["--model", str(model)]
    monkeypatch.setattr(sys, "argv", argv)
    awn_per_layer_after.main()
    assert sorted(p.name for p in run.iterdir()) == before  # the run itself is not touched
    report = json.loads((out / "report.json").read_text())
    rows = {r["width_fraction"]: r for r in report["rows"] if r["method"] == "awn-per-layer"}
    assert sorted(rows) == [0.25, 0.5]
    full = json.loads((run / "nested" / "awncompress.json").read_text())["d_ff"]
    for fraction, row in rows.items():
        size = row["intermediate_size"]
        sizes = size if isinstance(size, list) else [size] * 2
        assert abs(sum(sizes) - fraction * full * len(sizes)) <= len(sizes)  # the width's FFN budget, per layer
    assert set(report["per_example_correct"]) >= {"awn-per-layer@0.25", "awn-per-layer@0.5"}
    # bench/methods_after.py evaluates more methods on the same run: awn-bc at the awn exports' widths.
    bc = tmp_path / "bc"
    argv = ["methods_after.py", "--run", str(run), "--out", str(bc), "--methods", "awn-bc"]
    monkeypatch.setattr(sys, "argv", [*argv, "--train-data", str(data), "--model", str(model)])
    methods_after.main()
    assert sorted(p.name for p in run.iterdir()) == before
    report = json.loads((bc / "report.json").read_text())
    assert sorted(r["width_fraction"] for r in report["rows"] if r["method"] == "awn-bc") == [0.25, 0.5]
