"""bench/harness.py and the drivers on it: argument parsing, the seed and sweep loops, and the tuning
scripts' runs through the package's stage chain, on tiny local models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import save_tiny_bert, save_tiny_llama, write_reviews

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402

TINY = ["--set", "train.steps=2", "--set", "train.batch_size=8", "--set", "evaluate.batch_size=16"]


pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # parse() pins torch to 2 threads


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("", {}),
        ("train.lr=1e-4,train.kd_weight=1", {"train.lr": "1e-4", "train.kd_weight": "1"}),
        ("train.sample_from=0.125,0.5", {"train.sample_from": "0.125,0.5"}),
        (
            "train.sample_from=0.125,0.5,train.steps=40",
            {"train.sample_from": "0.125,0.5", "train.steps": "40"},
        ),
        (
            "train.extra_widths=0.25,0.5;train.steps=40",
            {"train.extra_widths": "0.25,0.5", "train.steps": "40"},
        ),
        ("train.full_width_pass=false;", {"train.full_width_pass": "false"}),
    ],
)
def test_parse_config(spec, expected):
    assert harness.parse_config(spec) == expected


def _sweep_parser():
    return harness.add_sweep_args(harness.make_parser("doc"), [0])


def test_parse_sweep_arguments():
    args = harness.parse(
        _sweep_parser(),
        ["--out", "x.jsonl", "--seed", "3", "--set", "train.steps=5", "--config", "a=1,b=2", "--config", "c=3"],
    )
    assert args.seeds == [3] and args.out == Path("x.jsonl") and args.runs is None
    assert args.overrides == {"train.steps": "5"}
    assert args.configs == [{"a": "1", "b": "2"}, {"c": "3"}]
    assert torch.get_num_threads() == harness.THREADS
    assert harness.parse(_sweep_parser(), ["--out", "x.jsonl"]).configs == [{}]  # one config: the recipe


@pytest.mark.parametrize("bad", [["--set", "train.steps"], ["--config", "train.steps"], ["--set", "=3"]])
def test_parse_refuses_a_pair_without_key_and_value(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        harness.parse(_sweep_parser(), ["--out", "x.jsonl", *bad])
    assert exc.value.code == 2 and "is not KEY=VALUE" in capsys.readouterr().err


def test_sweep_appends_one_line_per_config_and_seed(tmp_path):
    out = tmp_path / "deep" / "sweep.jsonl"
    out.parent.mkdir()
    out.write_text('{"earlier": true}\n')
    calls = []

    def run_one(overrides, seed, name):
        calls.append(name)
        overrides["mutated"] = True  # a run may not change the next seed's config
        return {"overrides": overrides, "seed": seed}

    harness.sweep(out, [{"a": "1"}, {}], [0, 1], run_one)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"earlier": True}
    assert [(r["overrides"].get("a"), r["seed"]) for r in lines[1:]] == [("1", 0), ("1", 1), (None, 0), (None, 1)]
    assert calls == ["config-0-seed-0", "config-0-seed-1", "config-1-seed-0", "config-1-seed-1"]


def _fake_convert(ran):
    def run_convert(recipe, out, overwrite=False, budget=None):
        ran.append((recipe, Path(out), budget))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "report.json").write_text("{}")

    return run_convert


def test_run_seeds_keeps_a_finished_seed(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(harness, "run_convert", _fake_convert(ran))
    (tmp_path / "seed-0").mkdir()
    (tmp_path / "seed-0" / "report.json").write_text("{}")
    (tmp_path / "timings.json").write_text(json.dumps({"wall_s_per_seed": {"0": 12.5}}))
    firsts = []

    def recipe_for(seed, first):
        firsts.append((seed, first))
        return f"recipe-{seed}", 3.0

    timings = harness.run_seeds(tmp_path, [0, 1], recipe_for, note="x")
    assert [(r, out.name, b) for r, out, b in ran] == [("recipe-1", "seed-1", 3.0)]
    assert firsts == [(1, False)]
    assert set(timings) == {0, 1} and timings[0] == 12.5
    record = json.loads((tmp_path / "timings.json").read_text())
    assert record["note"] == "x" and set(record["wall_s_per_seed"]) == {"0", "1"}


@pytest.mark.parametrize(
    "driver, first_methods",
    [
        ("minilm_rotten_tomatoes", ["awn", "wina", "activation", "magnitude", "random", "wina-dynamic", "finetune"]),
        ("smollm2_jane_austen", ["awn", "wina", "activation", "magnitude", "random", "wina-dynamic", "finetune"]),
        ("minilm_heads", ["awn", "wina", "finetune-heads"]),
    ],
)
def test_seed_drivers_pass_set_to_every_seed(driver, first_methods, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(harness, "run_convert", _fake_convert(ran))
    monkeypatch.setattr(sys, "argv", [driver, "--out", str(tmp_path), "--seeds", "0", "1", "--set", "train.lr=1e-4"])
    __import__(driver).main()
    assert [out.name for _, out, _ in ran] == ["seed-0", "seed-1"]
    assert all(recipe.train.lr == 1e-4 and recipe.seed == i for i, (recipe, _, _) in enumerate(ran))
    assert list(ran[0][0].evaluate.methods) == first_methods
    if driver != "smollm2_jane_austen":  # later seeds start from seed 0's trained dense model
        assert ran[1][0].model == str(tmp_path / "seed-0" / "dense")


def test_tune_minilm_records_what_the_convert_run_reports(tmp_path, monkeypatch):
    dense = save_tiny_bert(tmp_path / "bert")
    data = write_reviews(tmp_path / "r.csv", n=120)
    out, runs = tmp_path / "tune.jsonl", tmp_path / "runs"
    argv = ["tune_minilm", "--dense", str(dense), "--out", str(out), "--runs", str(runs), "--set", f"data.train={data}"]
    monkeypatch.setattr(sys, "argv", [*argv, *TINY, "--config", "train.lr=1e-4,train.sample_from=0.125,0.5"])
    __import__("tune_minilm").main()
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["overrides"] == {"train.lr": "1e-4", "train.sample_from": "0.125,0.5"} and record["seed"] == 0
    report = json.loads((runs / "config-0-seed-0" / "report.json").read_text())
    # train_s is the run's own fine-tune plus teacher-table seconds (two tiny steps may round to 0.0)
    costs = report["costs"]
    recorded = costs["awn"]["finetune_s"] + costs.get("teacher-logits", {}).get("prepare_s", 0.0)
    assert record["steps"] == 2 and record["train_s"] == round(recorded, 1)
    assert list(record["accuracy"]) == ["1.0", "0.125", "0.25", "0.375", "0.5", "0.75"]
    assert record["accuracy"] == {
        ("1.0" if r["width_fraction"] == 1 else f"{r['width_fraction']:g}"): r["value"] for r in report["rows"]
    }
    assert {r["method"] for r in report["rows"]} == {"awn"}
    assert record["active_widths"] == report["profile"]["active_widths"]
    assert record["rates"] == report["profile"]["normalised_rates"]
    recipe = (runs / "config-0-seed-0" / "recipe.yaml").read_text()
    assert "sample_from: [0.125, 0.5]" in recipe and "lr: 0.0001" in recipe and "checkpoint_every: 0" in recipe


def test_tune_smollm2_awn_and_per_width_runs(tmp_path, monkeypatch):
    model = save_tiny_llama(tmp_path / "llama")
    write_reviews(tmp_path / "r.csv", n=200)
    import pandas as pd

    text = tmp_path / "book.txt"
    text.write_text("\n".join(pd.read_csv(tmp_path / "r.csv")["text"]))
    sets = ["--set", f"model={model}", "--set", f"data.train={text}", "--set", "data.max_length=16", *TINY]
    out = tmp_path / "tune.jsonl"
    monkeypatch.setattr(sys, "argv", ["tune_smollm2", "--out", str(out), *sets, "--finetune", "0.5"])
    tune = __import__("tune_smollm2")
    tune.main()
    monkeypatch.setattr(sys, "argv", ["tune_smollm2", "--out", str(out), *sets, "--finetune", "0.5", "--no-awn"])
    tune.main()
    both, alone = [json.loads(line) for line in out.read_text().splitlines()]
    assert list(both) == ["overrides", "seed", "dense", "awn_s", "active_widths"] + [
        f"awn@{w:g}" for w in tune.WIDTHS
    ] + ["ft_s@0.5", "ft@0.5"]
    assert list(alone) == ["overrides", "seed", "dense", "ft_s@0.5", "ft@0.5"]
    assert all(both[f"awn@{w:g}"] > 1 for w in tune.WIDTHS) and both["ft@0.5"] > 1
    # The per-width fine-tune with the AWN run's recorded recipe is the one derived afresh without it.
    assert alone["dense"] == both["dense"] and alone["ft@0.5"] == both["ft@0.5"]
