"""Report files from an evaluation record: JSON keys, CSV rows, markdown headline, PNG, headline rules."""

from __future__ import annotations

import copy
import csv
import json

import pytest
from conftest import collate, make_batches, make_dataset, synthetic_record
from zoo import make_model

from awncompress import AWNConfig, convert_, export_nested, export_uniform, fold_, profile_summary
from awncompress.checkpoint.layout import find_exports
from awncompress.errors import NotAnExportError
from awncompress.evaluate.latency import LatencyConfig
from awncompress.evaluate.matrix import evaluate_methods
from awncompress.report.files import REPORT_FILES, headline, load_report, render_report, write_report

ROW_KEYS = {
    "method",
    "width_fraction",
    "intermediate_size",
    "metric",
    "value",
    "flops",
    "flops_ratio",
    "ffn_flops",
    "ffn_share",
    "params",
    "params_ratio",
    "weight_bytes",
    "checkpoint_bytes",
    "latency_ms",
    "latency_p10_ms",
    "latency_p90_ms",
    "latency_ratio",
    "export",
    "theoretical",
}
TOP_KEYS = {
    "schema_version",
    "created",
    "model",
    "architecture",
    "task",
    "data",
    "num_eval_examples",
    "seed",
    "metric",
    "versions",
    "device",
    "latency_config",
    "d_ff",
    "num_layers",
    "dense",
    "rows",
    "profile",
    "costs",
    "headline",
}


def test_write_report_files(tmp_path):
    record = synthetic_record()
    paths = write_report(record, tmp_path)
    assert [p.name for p in paths] == list(REPORT_FILES)
    data = json.loads((tmp_path / "report.json").read_text())
    assert TOP_KEYS <= set(data) and "rows" in data
    assert all(ROW_KEYS <= set(row) for row in data["rows"])
    assert {"metric", "value", "flops", "params", "latency_ms"} <= set(data["dense"])
    with open(tmp_path / "report.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 9 == len(record["rows"]) and {r["method"] for r in lines} == {"awn", "wina", "wina-dynamic"}
    png = (tmp_path / "curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = (tmp_path / "report.md").read_text()
    assert "**Headline.**" in md and "awn: 50% FFN width" in md
    assert "λ·d_ff" in md and "| 5 | 300 |" in md  # learned per-layer widths and rates
    assert "finetune_s" in md
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files
    assert load_report(tmp_path)["rows"] == data["rows"]


def test_headline_rules():
    acc = headline(synthetic_record())
    # 1 point below dense 0.82 is 0.81: awn reaches it at 50 % (0.814), not at 25 % (0.796); wina never does
    assert acc["per_method"]["awn"]["width_fraction"] == 0.5
    assert acc["per_method"]["wina"] is None
    assert acc["per_method"]["wina-dynamic"]["theoretical"]
    ppl = synthetic_record("perplexity", higher=False)
    # within 1 % relative of dense perplexity 20.0 means <= 20.2
    hits = headline(ppl)["per_method"]
    for method, hit in hits.items():
        rows = [r for r in ppl["rows"] if r["method"] == method and r["value"] <= 20.2]
        assert (hit is None) == (not rows)
        if hit:
            assert hit["width_fraction"] == min(r["width_fraction"] for r in rows)


def test_headline_when_nothing_is_close():
    record = synthetic_record()
    for row in record["rows"]:
        row["value"] = 0.5
    head = headline(record)
    assert all(v is None for v in head["per_method"].values())
    assert "none of the evaluated widths" in head["text"]


def test_render_and_load_errors(tmp_path):
    with pytest.raises(NotAnExportError, match="report.json"):
        load_report(tmp_path)
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(NotAnExportError, match="not an awncompress report"):
        load_report(tmp_path)
    write_report(synthetic_record("perplexity", higher=False), tmp_path)
    (tmp_path / "report.md").unlink()
    render_report(tmp_path)
    assert "perplexity" in (tmp_path / "report.md").read_text()


def test_end_to_end_from_an_output_dir(tmp_path):
    model = make_model("bert")
    original = copy.deepcopy(model)
    convert_(model, AWNConfig(), calibration=make_batches())
    profile = profile_summary(model)
    fold_(model)
    out = tmp_path / "out"
    export_nested(model, out / "nested", widths=[0.25, 0.5], profile=profile, source=str(tmp_path / "orig"))
    for w in (0.25, 0.5):
        export_uniform(model, out / f"width-{w:g}", w)
    _, width_dirs = find_exports(out)
    record = evaluate_methods(
        original,
        width_dirs,
        make_dataset(8),
        collate,
        methods=["awn", "wina", "random", "wina-dynamic"],
        calibration=make_batches(),
        latency=LatencyConfig(batch_size=1, seq_len=8, warmup=1, repeats=2),
        profile=profile,
    )
    write_report(record, out)
    data = load_report(out)
    assert len(data["rows"]) == 8 and data["profile"]["active_widths"] == profile["active_widths"]
    assert sum(1 for _ in open(out / "report.csv")) == 1 + 8
    assert (out / "curve.png").stat().st_size > 0 and "Headline" in (out / "report.md").read_text()
