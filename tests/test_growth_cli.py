"""`convert --grow` end to end on a tiny Llama: layers grow, and every export of the grown model loads."""

from __future__ import annotations

import json

import pandas as pd
import torch
import transformers as tf
from conftest import save_tiny_llama, write_reviews
from typer.testing import CliRunner

from awncompress import load_pretrained
from awncompress.cli import app

runner = CliRunner()


def test_convert_grow_exports_grown_layers_that_load(tmp_path):
    model = save_tiny_llama(tmp_path / "llama")
    d_ff = tf.AutoConfig.from_pretrained(model).intermediate_size
    write_reviews(tmp_path / "r.csv", n=120)
    text = tmp_path / "book.txt"
    text.write_text("\n".join(pd.read_csv(tmp_path / "r.csv")["text"]))
    out = tmp_path / "out"
    args = ["convert", str(model), "--task", "causal-lm", "--data", str(text), "--widths", "0.5", "--grow"]
    args += ["--per-layer", "--steps", "3", "--set", "train.batch_size=4", "--set", "data.max_length=16"]
    # A low initial rate puts every layer's 0.9-quantile at 2.3 × its width: both layers grow to the cap.
    args += ["--set", "awn.init_rate=1.0", "--set", "evaluate.methods=awn,awn-per-layer", "--quiet", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output

    nested = json.loads((out / "nested" / "awncompress.json").read_text())
    assert nested["grown_widths"] == [2 * d_ff, 2 * d_ff] and nested["d_ff"] == d_ff
    assert nested["loads_with"] == "awncompress"
    full = load_pretrained(out / "nested")
    assert [m.mlp.down_proj.in_features for m in full.model.layers] == [2 * d_ff, 2 * d_ff]
    # A width fraction stays a fraction of the pretrained width; a per-layer list may reach the grown one.
    half = load_pretrained(out / "nested", width=0.5)
    assert [m.mlp.down_proj.in_features for m in half.model.layers] == [d_ff // 2] * 2
    mixed = load_pretrained(out / "nested", width=[d_ff + 8, 3])
    assert [m.mlp.down_proj.in_features for m in mixed.model.layers] == [d_ff + 8, 3]
    ids = torch.tensor([[5, 6, 7, 8]])
    # The uniform export is vanilla transformers at half the pretrained width, and equals the nested one cut there.
    vanilla = tf.AutoModelForCausalLM.from_pretrained(out / "width-0.5")
    assert vanilla.config.intermediate_size == d_ff // 2
    with torch.no_grad():
        assert torch.allclose(vanilla(ids).logits, half(ids).logits, atol=1e-5)
    # `awncompress export` re-cuts the grown nested checkpoint at fractions of the pretrained width too.
    again = tmp_path / "again"
    assert runner.invoke(app, ["export", str(out / "nested"), "--widths", "0.5", "--out", str(again)]).exit_code == 0
    assert tf.AutoConfig.from_pretrained(again / "width-0.5").intermediate_size == d_ff // 2
    per_layer = json.loads((out / "per-layer-0.5" / "awncompress.json").read_text())
    assert sum(per_layer["layer_widths"]) <= d_ff  # half the pretrained FFN FLOPs of two layers
    assert load_pretrained(out / "per-layer-0.5") is not None
    report = (out / "report.md").read_text()
    assert f"grew past d_ff (awn.grow), with their neurons: 0 ({2 * d_ff}), 1 ({2 * d_ff})" in report


def test_convert_grow_under_a_launcher_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    model = save_tiny_llama(tmp_path / "llama")
    text = tmp_path / "book.txt"
    text.write_text("a few words of text to train on\n" * 50)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    out = tmp_path / "out"
    args = ["convert", str(model), "--task", "causal-lm", "--data", str(text), "--grow", "--out", str(out)]
    result = runner.invoke(app, [*args, "--steps", "2", "--set", "data.max_length=16", "--quiet"])
    assert result.exit_code == 1 and "awn.grow trains on one process" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
