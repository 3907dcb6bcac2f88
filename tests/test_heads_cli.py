"""`convert --heads` end to end: the head profiles train, flops-<t>/ exports land at their FLOP targets
and reload, the report holds the FFN+heads rows beside the static baseline at the same shape, and bad
requests are refused before anything is written."""

from __future__ import annotations

import json

import pytest
import transformers as tf
from conftest import save_tiny_bert, save_tiny_llama, write_reviews
from typer.testing import CliRunner

from awncompress import load_pretrained
from awncompress.cli import app
from awncompress.model.heads import layer_heads

runner = CliRunner()
FAST = [
    "--steps",
    "4",
    "--dense-steps",
    "4",
    "--set",
    "train.batch_size=8",
    "--set",
    "dense.batch_size=8",
    "--set",
    "evaluate.latency_repeats=2",
    "--quiet",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    bert = tf.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    folder = save_tiny_bert(root / "model", with_head=False)
    tf.BertModel(bert).save_pretrained(folder)  # 4 heads of 8: a cut has room to choose
    return {"model": folder, "data": write_reviews(root / "reviews.csv"), "root": root}


def test_convert_with_heads_end_to_end(tiny, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "convert",
            str(tiny["model"]),
            "--data",
            str(tiny["data"]),
            "--widths",
            "0.5",
            "--heads",
            "--flops",
            "0.4,0.6",
            "--out",
            str(out),
            "--set",
            "evaluate.methods=awn,wina",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    assert {"flops-0.4", "flops-0.6", "nested", "width-0.5"} <= {p.name for p in out.iterdir()}
    report = json.loads((out / "report.json").read_text())
    rows = {(r["method"], r.get("flops_target")): r for r in report["rows"]}
    for target in (0.4, 0.6):
        awn, static = rows[("awn-heads", target)], rows[("wina-heads", target)]
        assert awn["flops_ratio"] <= target + 0.02, (
            "the pick is made at the mean length; the report measures all lengths"
        )
        assert awn["heads"] == static["heads"] and awn["intermediate_size"] == static["intermediate_size"]
        model = load_pretrained(out / f"flops-{target:g}")
        assert layer_heads(model) == ([awn["heads"]] * 2 if isinstance(awn["heads"], int) else awn["heads"])
    record = json.loads((out / "nested" / "awncompress.json").read_text())
    assert record["full_heads"] == 4 and len(record["profile"]["head_rates"]) == 2
    assert "by FLOP target" in (out / "report.md").read_text()
    sliced = load_pretrained(out / "nested", flops=0.4)  # picked at the run's recorded length: the flops-0.4 shape
    assert layer_heads(sliced) == layer_heads(load_pretrained(out / "flops-0.4"))


def test_a_head_peer_and_its_fine_tuned_twin_at_the_awn_shapes(tiny, tmp_path):
    out = tmp_path / "out"
    args = ["convert", str(tiny["model"]), "--data", str(tiny["data"]), "--widths", "0.5", "--heads"]
    args += ["--flops", "0.5", "--out", str(out), "--set", "awn.scorer=none", *FAST]
    args += ["--set", "evaluate.methods=awn,fluctuation-heads,fluctuation-heads+finetune"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output  # the peer brings its own order: awn.scorer=none is fine
    report = json.loads((out / "report.json").read_text())
    rows = {r["method"]: r for r in report["rows"] if r.get("flops_target") == 0.5}
    static, tuned, awn = rows["fluctuation-heads"], rows["fluctuation-heads+finetune"], rows["awn-heads"]
    for key in ("heads", "intermediate_size", "flops_ratio"):
        assert static[key] == tuned[key] == awn[key]
    correct = report["per_example_correct"]
    # the same cut, then trained: its predictions moved
    assert correct["fluctuation-heads+finetune@0.5"] != correct["fluctuation-heads@0.5"]


def test_flops_with_no_heads_is_refused_before_writing(tiny, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "convert",
            str(tiny["model"]),
            "--data",
            str(tiny["data"]),
            "--no-heads",
            "--flops",
            "0.3",
            "--out",
            str(out),
            *FAST,
        ],
    )
    assert result.exit_code != 0 and "awn.heads" in result.output and not out.exists()


def test_flops_alone_turns_heads_on(tiny, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "convert",
            str(tiny["model"]),
            "--data",
            str(tiny["data"]),
            "--widths",
            "0.5",
            "--flops",
            "0.5",
            "--out",
            str(out),
            "--no-eval",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "flops-0.5").is_dir() and "heads: true" in (out / "recipe.yaml").read_text()


@pytest.mark.parametrize(
    "flops, message", [("0.001", "below what one neuron"), ("1.5", "FLOP target must be a fraction of the dense FLOPs")]
)
def test_an_unreachable_flop_target_is_refused_before_writing(tiny, tmp_path, flops, message):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "convert",
            str(tiny["model"]),
            "--data",
            str(tiny["data"]),
            "--heads",
            "--flops",
            flops,
            "--out",
            str(out),
            *FAST,
        ],
    )
    assert result.exit_code != 0 and message in " ".join(result.output.split()) and not out.exists()


def test_heads_on_a_family_that_cannot_cut_them_is_refused_before_writing(tmp_path):
    folder = tmp_path / "mpnet"
    tok = tf.AutoTokenizer.from_pretrained(save_tiny_bert(tmp_path / "bert"))
    tf.MPNetModel(
        tf.MPNetConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=70,
        )
    ).save_pretrained(folder)
    tok.save_pretrained(folder)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["convert", str(folder), "--data", str(write_reviews(tmp_path / "r.csv")), "--heads", "--out", str(out), *FAST],
    )
    assert result.exit_code != 0 and "attention-head cuts are not supported for model_type 'mpnet'" in result.output
    assert not out.exists()


def test_llama_heads_exports_load_in_vanilla_transformers(tmp_path):
    model = save_tiny_llama(tmp_path / "llama")
    config = tf.LlamaConfig.from_pretrained(model)
    config.num_attention_heads, config.num_key_value_heads, config.head_dim = 4, 2, 8
    tf.LlamaForCausalLM(config).save_pretrained(model)
    text = tmp_path / "text.txt"
    text.write_text(" ".join(["great film"] * 400))
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "convert",
            str(model),
            "--task",
            "causal-lm",
            "--data",
            str(text),
            "--heads",
            "--flops",
            "0.5",
            "--widths",
            "0.5",
            "--out",
            str(out),
            "--set",
            "evaluate.methods=awn",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "flops-0.5" / "awncompress.json").read_text())
    assert record["loads_with"] == "transformers"
    plain = tf.AutoModelForCausalLM.from_pretrained(out / "flops-0.5")
    assert plain.config.num_attention_heads == record["layer_heads"][0] < 4
