"""The command line: convert end to end on a tiny local model, other subcommands, bad input."""

from __future__ import annotations

import json

import pytest
import transformers as tf
from conftest import save_tiny_bert, save_tiny_llama, write_nested, write_reviews
from typer.testing import CliRunner

from awncompress import load_pretrained
from awncompress.cli import app
from awncompress.files.manifest import MANIFEST

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
    "train.checkpoint_every=2",
    "--set",
    "evaluate.latency_repeats=2",
    "--quiet",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "model": save_tiny_bert(root / "model", with_head=False),
        "data": write_reviews(root / "reviews.csv"),
        "root": root,
    }


def test_no_args_prints_help():
    result = runner.invoke(app, [])
    assert "convert" in result.output and "Examples" in result.output


COMMANDS = ["convert", "evaluate", "report", "inspect", "export", "score", "recipes"]


def test_every_command_is_checked_for_examples():
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert names == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_has_examples(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    before_options = result.output.split("Options")[0]
    _, marker, examples = before_options.partition("Example")
    assert marker, f"`{command} --help` has no Examples section"
    assert any(line.strip().startswith(f"awncompress {command}") for line in examples.splitlines()), examples


def test_convert_end_to_end_without_eval(tiny, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "convert",
            str(tiny["model"]),
            "--data",
            str(tiny["data"]),
            "--widths",
            "0.25,0.5",
            "--per-layer",
            "--out",
            str(out),
            "--no-eval",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.name != MANIFEST) == [
        "dense",
        "nested",
        "per-layer-0.25",
        "per-layer-0.5",
        "recipe.yaml",
        "width-0.25",
        "width-0.5",
    ]
    plain = tf.AutoModelForSequenceClassification.from_pretrained(out / "width-0.25")
    assert plain.config.intermediate_size == 16 and plain.config.id2label == {0: "fresh", 1: "rotten"}
    nested = json.loads((out / "nested" / "awncompress.json").read_text())
    assert nested["train"]["dense_seconds"] > 0 and nested["width_table"] == {"0.25": 16, "0.5": 32}
    per_layer = load_pretrained(out / "per-layer-0.25")
    sizes = [layer.intermediate.dense.out_features for layer in per_layer.bert.encoder.layer]
    assert (
        sum(sizes) <= 0.25 * 64 * 2
        and json.loads((out / "per-layer-0.25" / "awncompress.json").read_text())["flop_budget"] == 0.25
    )
    shown = runner.invoke(app, ["inspect", str(out / "nested")])
    assert shown.exit_code == 0 and "active width" in shown.output


def test_convert_evaluates_and_reports_then_evaluate_and_report_rerun(tiny, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "convert",
            str(tiny["model"]),
            "--data",
            str(tiny["data"]),
            "--widths",
            "0.25,0.5",
            "--out",
            str(out),
            "--set",
            "evaluate.methods=awn,wina,random,wina-dynamic,finetune",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("report.json", "report.csv", "report.md", "curve.png", "dense"):
        assert (out / name).exists(), name
    record = json.loads((out / "report.json").read_text())
    methods = {r["method"] for r in record["rows"]}
    assert methods == {"awn", "wina", "random", "wina-dynamic", "fluctuation+finetune"}
    awn = {r["width_fraction"]: r for r in record["rows"] if r["method"] == "awn"}
    assert set(awn) == {0.25, 0.5} and awn[0.25]["export"].endswith("width-0.25")
    assert awn[0.25]["flops_ratio"] < awn[0.5]["flops_ratio"] < 1
    assert record["costs"]["fluctuation+finetune"]["prepare_s"] > 0 and record["costs"]["awn"]["finetune_s"] > 0
    assert record["costs"]["teacher-logits"]["prepare_s"] > 0  # computed once, shared by awn and fluctuation+finetune
    card = json.loads((out / "width-0.25" / "awncompress.json").read_text())
    assert card["metric"]["value"] == awn[0.25]["value"]
    assert not (out / "checkpoints").exists()

    (out / "report.md").unlink()
    result = runner.invoke(app, ["evaluate", str(out), "--methods", "awn,magnitude", "--quiet"])
    assert result.exit_code == 1 and "--train-data" in result.output  # the CSV lies outside OUT: name it
    result = runner.invoke(
        app, ["evaluate", str(out), "--methods", "awn,magnitude", "--quiet", "--train-data", str(tiny["data"])]
    )
    assert result.exit_code == 0, result.output
    again = json.loads((out / "report.json").read_text())
    assert {r["method"] for r in again["rows"]} == {"awn", "magnitude"}
    assert {r["value"] for r in again["rows"] if r["method"] == "awn"} == {r["value"] for r in awn.values()}
    (out / "curve.png").unlink()
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    assert (out / "curve.png").stat().st_size > 1000


def test_evaluate_and_report_refuse_other_folders(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 1 and "not an awncompress output" in result.output
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "report.json" in result.output


def test_export_subcommand_materialises_widths(tmp_path):
    nested = write_nested(tmp_path / "nested")
    result = runner.invoke(
        app, ["export", str(nested), "--widths", "0.375", "--learned", "--out", str(tmp_path / "more")]
    )
    assert result.exit_code == 0, result.output
    assert tf.AutoConfig.from_pretrained(tmp_path / "more" / "width-0.375").intermediate_size == 24
    assert (tmp_path / "more" / "per-layer" / "awncompress.json").exists()


def test_existing_out_needs_overwrite_and_resume_needs_checkpoints(tiny, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(
        app, ["convert", str(tiny["model"]), "--data", str(tiny["data"]), "--out", str(out), "--no-eval", *FAST]
    )
    assert result.exit_code == 1 and "already exists" in result.output and "--overwrite" in result.output
    result = runner.invoke(
        app,
        ["convert", str(tiny["model"]), "--data", str(tiny["data"]), "--out", str(out), "--resume", "--no-eval", *FAST],
    )
    assert result.exit_code == 1 and "nothing to resume" in result.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["convert", "./no/such/model", "--data", "x.csv"], 1, "does not exist"),
        (["convert", "demo", "--widths", "0,0.5"], 2, "(0, 1]"),
        (["convert", "demo", "--widths", "1.5"], 2, "(0, 1]"),
        (["convert", "demo", "--widths", "half"], 2, "comma-separated"),
        (["convert", "demo", "--set", "train.nope=1"], 1, "nope"),
        (["convert", "demo", "--set", "train.steps"], 2, "KEY=VALUE"),
        (["inspect", "."], 1, "not an awncompress export"),
        (["recipes", "no-such-recipe"], 1, "demo"),
    ],
)
def test_bad_input_gets_one_line_and_exit_code(args, code, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not any(tmp_path.iterdir())  # nothing written


def test_missing_data_file_and_missing_columns(tiny, tmp_path):
    result = runner.invoke(
        app, ["convert", str(tiny["model"]), "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"), *FAST]
    )
    assert result.exit_code == 1 and "none.csv" in result.output
    result = runner.invoke(
        app,
        [
            "convert",
            str(tiny["model"]),
            "--data",
            str(tiny["data"]),
            "--text-column",
            "review",
            "--out",
            str(tmp_path / "o2"),
            *FAST,
        ],
    )
    assert result.exit_code == 1 and "review" in result.output


def test_hub_id_without_network_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = write_reviews(tmp_path / "r.csv")
    result = runner.invoke(
        app, ["convert", "someone/some-model", "--data", str(data), "--out", str(tmp_path / "o"), *FAST]
    )
    assert result.exit_code == 1 and "Hugging Face Hub" in result.output and "network" in result.output


def test_causal_lm_end_to_end(tmp_path):
    model = save_tiny_llama(tmp_path / "llama")
    text = tmp_path / "book.txt"
    write_reviews(tmp_path / "r.csv", n=200)
    import pandas as pd

    text.write_text("\n".join(pd.read_csv(tmp_path / "r.csv")["text"]))
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
            "--widths",
            "0.5",
            "--set",
            "data.max_length=16",
            "--set",
            "evaluate.methods=awn,wina,wina-dynamic",
            "--out",
            str(out),
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "report.json").read_text())
    assert record["metric"]["name"] == "perplexity" and record["metric"]["higher_is_better"] is False
    assert not (out / "dense").exists()  # an LM head comes trained: the model is its own teacher
    assert all(r["value"] > 1 for r in record["rows"])
    assert tf.AutoConfig.from_pretrained(out / "width-0.5").intermediate_size == 32
    # The report says what the perplexity was over: the text, the window length and how many windows.
    assert record["perplexity"]["text"] == str(text) and record["perplexity"]["window_tokens"] == 16
    assert record["perplexity"]["windows"] >= 1
    assert f"windows of 16 tokens of {text}" in (out / "report.md").read_text()


def test_kill_during_export_leaves_no_half_folder_and_resume_finishes_identically(tiny, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    import awncompress.checkpoint.export as export

    args = ["convert", str(tiny["model"]), "--data", str(tiny["data"]), "--widths", "0.5", "--no-eval", *FAST]
    straight = tmp_path / "straight"
    assert runner.invoke(app, [*args, "--out", str(straight)]).exit_code == 0

    real_save = export._save

    def die_mid_write(model, folder, record, tokenizer):
        if str(killed) not in str(folder):  # the dry pass exports into a temp folder first
            return real_save(model, folder, record, tokenizer)
        (folder / "partial").write_text("half")
        raise KeyboardInterrupt

    killed = tmp_path / "killed"
    monkeypatch.setattr(export, "_save", die_mid_write)
    result = runner.invoke(app, [*args, "--out", str(killed)])
    assert result.exit_code == 130 and "--resume" in result.output
    assert sorted(p.name for p in killed.iterdir() if p.name != MANIFEST) == ["checkpoints", "dense", "recipe.yaml"]
    monkeypatch.setattr(export, "_save", real_save)
    result = runner.invoke(app, [*args, "--out", str(killed), "--resume"])
    assert result.exit_code == 0, result.output
    a = load_file(str(straight / "nested" / "model.safetensors"))
    b = load_file(str(killed / "nested" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] - b[k]).abs().max() < 1e-6 for k in a)


def test_labels_that_do_not_match_a_trained_head(tmp_path):
    model = save_tiny_bert(tmp_path / "three", with_head=True)  # a trained-looking head with 2 labels
    import pandas as pd

    pd.DataFrame({"text": ["good film", "bad film", "dull plot"] * 10, "label": ["a", "b", "c"] * 10}).to_csv(
        tmp_path / "d.csv", index=False
    )
    result = runner.invoke(
        app, ["convert", str(model), "--data", str(tmp_path / "d.csv"), "--out", str(tmp_path / "o"), *FAST]
    )
    assert result.exit_code == 1 and "2 labels" in result.output and "3" in result.output
    assert not (tmp_path / "o").exists()


def test_score_prints_concentration_and_writes_safetensors(tiny, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "scores.safetensors"
    result = runner.invoke(
        app,
        [
            "score",
            str(tiny["model"]),
            "--data",
            str(tiny["data"]),
            "--scorer",
            "wina",
            "--scorer",
            "magnitude",
            "--batches",
            "2",
            "--batch-size",
            "8",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "layer  1" in result.output and "magnitude" in result.output
    scores = load_file(str(out))
    assert sorted(scores) == ["layer.0.magnitude", "layer.0.wina", "layer.1.magnitude", "layer.1.wina"]
    assert scores["layer.0.wina"].shape == (64,) and bool((scores["layer.0.wina"] >= 0).all())
    result = runner.invoke(app, ["score", str(tiny["model"]), "--data", str(tiny["data"]), "--scorer", "entropy"])
    assert result.exit_code == 1 and "unknown scorer" in result.output
