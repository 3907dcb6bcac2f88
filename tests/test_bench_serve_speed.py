"""bench/serve_speed.py end to end on a tiny BERT: the CLI exports every width as ONNX, the full-width
file is the reference, and the table and rows land in OUT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import zoo

from awncompress.checkpoint.export import export_nested

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_serve_speed_bench_times_every_width_against_full_width(tmp_path):
    nested = export_nested(zoo.make_model("bert"), tmp_path / "nested", widths=[0.5])
    out = tmp_path / "result"
    cmd = [sys.executable, str(BENCH / "serve_speed.py"), str(nested), "--format", "onnx", "--widths", "1.0,0.25,0.5"]
    cmd += ["--repeats", "2", "--threads", "1", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads((out / "served.json").read_text())
    exports = {r["export"] for r in served["rows"]}
    assert exports == {"dense", "width-0.25-onnx", "width-0.5-onnx"}
    assert all(r["speedup"] > 0 for r in served["rows"]) and served["config"]["format"] == "onnx"
    ratios = sorted({r["flops_ratio"] for r in served["rows"]})
    assert len(ratios) == 3 and ratios[-1] == 1.0  # three widths, three FLOP ratios
    assert "width-0.25-onnx" in (out / "served.md").read_text()
