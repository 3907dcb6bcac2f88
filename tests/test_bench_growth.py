"""bench/growth.py: per seed, a capped and a grown run of one recipe, joined into one report summarise pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import save_tiny_bert, write_reviews

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import growth  # noqa: E402
import summarise  # noqa: E402

pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # parse() pins torch to 2 threads


def test_capped_and_grown_runs_join_into_one_report(tmp_path, monkeypatch):
    model, data, out = save_tiny_bert(tmp_path / "model"), write_reviews(tmp_path / "reviews.csv"), tmp_path / "out"
    sets = {"model": model, "data.train": data, "train.steps": 4, "dense.steps": 4, "train.batch_size": 8}
    sets |= {"dense.batch_size": 8, "evaluate.latency_repeats": 2, "awn.init_rate": 1.0, "data.max_eval_examples": 40}
    argv = ["growth.py", "--out", str(out), "--seeds", "0", "--recipe", "demo"]
    for key, value in sets.items():
        argv += ["--set", f"{key}={value}"]
    monkeypatch.setattr(sys, "argv", argv)
    growth.main()
    report = json.loads((out / "seed-0" / "report.json").read_text())
    methods = {(r["method"], r["width_fraction"]) for r in report["rows"]}
    assert methods == {
        (m, w) for m in ("awn", "awn-per-layer", "awn+grow", "awn-per-layer+grow") for w in (0.25, 0.5, 0.75)
    }
    assert set(report["per_example_correct"]) == {"dense", *(f"{m}@{w}" for m, w in methods)}
    assert report["growth"]["grown_widths"] and max(report["growth"]["grown_widths"]) > report["d_ff"]
    capped = json.loads((out / "capped" / "seed-0" / "report.json").read_text())
    assert not (capped.get("profile") or {}).get("grown_widths")  # the capped arm did not grow
    table = summarise.summarise(out)
    assert "awn-per-layer+grow" in table
