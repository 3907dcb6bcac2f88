"""`convert --formats` and recipe `export.formats`: served exports written by a run, refusals before it starts."""

from __future__ import annotations

import json
import os

import pytest
import zoo
from conftest import save_tiny_bert, write_reviews
from typer.testing import CliRunner

from awncompress.cli import app
from awncompress.config.recipe import Recipe
from awncompress.errors import RecipeError

runner = CliRunner()
FAST = ["--steps", "2", "--dense-steps", "2", "--set", "train.batch_size=8", "--set", "dense.batch_size=8"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {"model": save_tiny_bert(root / "model", with_head=False), "data": write_reviews(root / "reviews.csv", 48)}


def test_convert_writes_the_onnx_exports_it_is_asked_for(tiny, tmp_path):
    out = tmp_path / "out"
    args = ["convert", str(tiny["model"]), "--data", str(tiny["data"]), "--widths", "0.5", "--formats", "hf,onnx"]
    result = runner.invoke(app, [*args, "--out", str(out), "--no-eval", "--quiet", *FAST])
    assert result.exit_code == 0, result.output
    assert {"width-0.5", "width-0.5-onnx", "nested"} <= {p.name for p in out.iterdir()}
    record = json.loads((out / "width-0.5-onnx" / "awncompress.json").read_text())
    assert record["format"] == "onnx" and record["layer_widths"] == [32, 32]
    assert "hf" in (out / "recipe.yaml").read_text().split("formats:")[1].split("quant")[0]


def test_a_format_that_does_not_apply_is_refused_before_the_run_starts(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("AWNCOMPRESS_LLAMA_CPP", raising=False)
    out = tmp_path / "out"
    args = ["convert", str(tiny["model"]), "--data", str(tiny["data"]), "--formats", "hf,gguf", "--out", str(out)]
    result = runner.invoke(app, [*args, *FAST])
    assert result.exit_code == 1 and "GGUF is for causal language models" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    result = runner.invoke(app, [*args[:-4], "--formats", "hf,tflite", "--out", str(out), *FAST])
    assert result.exit_code == 1 and "unknown export format 'tflite'" in result.output and not out.exists()


def test_recipe_formats_default_to_hf_and_always_keep_it():
    assert Recipe(model="m", data={"train": "t.csv"}).export.formats == ["hf"]
    recipe = Recipe(model="m", data={"train": "t.csv"}, export={"formats": ["gguf"], "quant": "q4_k_m"})
    assert recipe.export.formats == ["hf", "gguf"] and recipe.export.quant == "q4_k_m"
    with pytest.raises(RecipeError, match="export.formats"):
        Recipe(model="m", data={"train": "t.csv"}, export={"formats": ["tflite"]})
    with pytest.raises(
        RecipeError, match="vllm is for the learned per-layer widths: after the run, awncompress export"
    ):
        Recipe(model="m", data={"train": "t.csv"}, export={"formats": ["hf", "vllm"]})
    with pytest.raises(RecipeError, match="export.quant"):
        Recipe(model="m", data={"train": "t.csv"}, export={"quant": "q3"})


def test_convert_writes_a_checked_gguf_for_a_causal_lm(tmp_path):
    tree = os.environ.get("AWNCOMPRESS_LLAMA_CPP")
    if not tree:
        pytest.skip("set AWNCOMPRESS_LLAMA_CPP to a llama.cpp source tree (.ci/run does)")
    model, tokenizer = zoo.llama_with_tokenizer(widen=False)
    model.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    text = tmp_path / "book.txt"
    text.write_text("\n".join(f"the cat sat on the mat in the {w} house" for w in ("red", "tan", "big") * 40))
    out = tmp_path / "out"
    args = ["convert", str(tmp_path / "llama"), "--task", "causal-lm", "--data", str(text), "--widths", "0.5"]
    args += ["--formats", "gguf", "--quant", "q8_0", "--llama-cpp", tree, "--set", "data.max_length=16"]
    result = runner.invoke(app, [*args, "--out", str(out), "--no-eval", "--quiet", *FAST])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "width-0.5-gguf-q8_0" / "awncompress.json").read_text())
    assert record["format"] == "gguf" and record["gguf"]["quant"] == "q8_0" and record["layer_widths"] == [32, 32]
    assert (out / "width-0.5").is_dir()  # hf is always written: the run evaluates it
