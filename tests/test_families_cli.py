"""`awncompress convert` end to end (fine-tune, exports, evaluation, report) for every decoder and
encoder family in the FFN table, on a tiny model with a word-level tokenizer: text classification
where the family has a classification head, causal LM otherwise. Slow: one full convert per family."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import word_tokenizer, write_reviews
from typer.testing import CliRunner
from zoo import SEQ2SEQ_TYPES, TINY, auto_class, build

from awncompress import load_pretrained
from awncompress.cli import app
from awncompress.model.families import UNSHRINKABLE, find_ffns

pytestmark = pytest.mark.slow

runner = CliRunner()
CLI_TYPES = sorted(t for t in TINY if t not in UNSHRINKABLE and t not in SEQ2SEQ_TYPES)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import pandas as pd

    root = tmp_path_factory.mktemp("family-data")
    reviews = write_reviews(root / "reviews.csv", n=48)
    text = root / "book.txt"
    text.write_text("\n".join(pd.read_csv(reviews)["text"]))
    return {"reviews": reviews, "text": text}


@pytest.mark.parametrize("model_type", CLI_TYPES)
def test_convert_end_to_end(model_type, data, tmp_path):
    model = build(model_type, num_labels=2)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    classify = type(model).__name__.endswith("ForSequenceClassification")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "convert",
            str(folder),
            "--task",
            "text-classification" if classify else "causal-lm",
            "--data",
            str(data["reviews"] if classify else data["text"]),
            "--widths",
            "0.5",
            "--steps",
            "1",
            "--out",
            str(out),
            "--set",
            "train.batch_size=4",
            "--set",
            "evaluate.methods=awn,wina",
            "--set",
            "evaluate.latency_repeats=1",
            "--set",
            "data.max_length=16",
            "--set",
            "data.max_eval_examples=8",
            "--set",
            "awn.calibration_batches=1",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "report.json").read_text())
    assert {r["method"] for r in record["rows"]} == {"awn", "wina"}
    assert all(r["flops_ratio"] < 1 for r in record["rows"])
    # The half-width export loads in plain transformers with every weight it needs, narrower than the
    # model, and computes what awncompress's own loader gives at half width from the nested export.
    vanilla, info = auto_class(model).from_pretrained(out / "width-0.5", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert all(cut.width < full.width for cut, full in zip(find_ffns(vanilla), find_ffns(model), strict=True))
    nested = load_pretrained(out / "nested", width=0.5)
    assert [b.width for b in find_ffns(vanilla)] == [b.width for b in find_ffns(nested)]
    tokens = word_tokenizer()(["the film was good", "a dull plot and weak actors"], padding=True, return_tensors="pt")
    batch = {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
    with torch.no_grad():
        expected = nested(**batch).logits
        assert torch.allclose(vanilla.eval()(**batch).logits, expected, atol=1e-5)
