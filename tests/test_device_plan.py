"""`convert --plan --devices N --device-memory M`: per-device memory under FSDP2 from a config alone,
its terms checked against direct counts, and a setup that cannot fit refused naming the smallest that can."""

from __future__ import annotations

import pytest
import transformers as tf
from typer.testing import CliRunner
from zoo import build

from awncompress.cli import app
from awncompress.config import apply_overrides, default_recipe
from awncompress.errors import AwnError
from awncompress.run.device_plan import (
    ConfigShape,
    Setup,
    device_memory,
    fit_micro,
    meta_model,
    parse_bytes,
    plan_devices,
    smallest_fit,
    with_checkpointing,
)

runner = CliRunner()


def _llama_config(folder):
    folder.mkdir()
    config = build("llama", head="lm").config
    (folder / "config.json").write_text(config.to_json_string())
    return folder, config


def _recipe(model: str, **sets: str):
    base = {"data.train": "x.txt", "data.max_length": "64", "train.batch_size": "8"}
    return apply_overrides(default_recipe(model, "causal-lm"), {**base, **sets})


@pytest.mark.parametrize(
    "text,expected", [("80GB", 80 * 10**9), ("80GiB", 80 * 2**30), ("141 gb", 141 * 10**9), ("0.5TiB", 2**39)]
)
def test_sizes_parse(text, expected):
    assert parse_bytes(text) == expected


def test_a_size_without_a_unit_is_refused():
    with pytest.raises(AwnError, match="--device-memory '80' is not a size"):
        parse_bytes("80")


def test_the_shape_counts_what_the_real_model_holds(tmp_path):
    _, config = _llama_config(tmp_path / "cfg")
    real = tf.LlamaForCausalLM(config)
    shape = ConfigShape.of(meta_model(config, "causal-lm"))
    assert shape.params == sum(p.numel() for p in real.parameters())
    layer = sum(p.numel() for p in real.model.layers[0].parameters())
    assert shape.layer_params == layer and shape.root_params == shape.params - config.num_hidden_layers * layer
    assert (shape.d_ff, shape.vocab, shape.layers) == (config.intermediate_size, config.vocab_size, 2)


def test_memory_terms(tmp_path):
    _, config = _llama_config(tmp_path / "cfg")
    shape = ConfigShape.of(meta_model(config, "causal-lm"))
    live, alone = _recipe("m"), _recipe("m", **{"train.kd_weight": "0"})
    one, four = device_memory(shape, 1, 2, 64, live), device_memory(shape, 4, 2, 64, live)
    assert one.sharded_state == 16 * shape.params and four.sharded_state == 16 * shape.params // 4
    assert one.teacher > four.teacher > 0 and device_memory(shape, 4, 2, 64, alone).teacher == 0
    table = _recipe("m", task="text-classification")  # a classifier distils from a logit table, not a live model
    assert device_memory(shape, 4, 2, 64, table).teacher == 0 and device_memory(shape, 4, 2, 64, table).logits == 0
    assert device_memory(shape, 4, 4, 64, live).activations == 2 * four.activations  # per sequence
    assert four.logits == 2 * 64 * shape.vocab * 4 * 4  # output, gradient, loss and the teacher's


def test_a_setup_that_cannot_fit_names_the_smallest_that_can(tmp_path):
    folder, config = _llama_config(tmp_path / "cfg")
    recipe = _recipe(str(folder))
    shape = ConfigShape.of(meta_model(config, "causal-lm"))
    need_one = device_memory(shape, 1, 1, 64, recipe).total
    size = int(need_one * 0.8)  # one device cannot hold one sequence; sharding the state makes room
    smallest = smallest_fit(shape, Setup(1, size), 64, recipe)
    assert smallest is not None and smallest > 1

    def fits(devices: int):
        return fit_micro(shape, Setup(devices, size), 64, with_checkpointing(shape, Setup(devices, size), 64, recipe))

    assert fits(smallest) is not None and fits(smallest // 2) is None
    with pytest.raises(AwnError, match=f"the smallest setup that fits is {smallest} ×") as info:
        plan_devices(recipe, Setup(1, size))
    assert "\n" not in str(info.value)
    text = plan_devices(recipe, Setup(smallest, size))
    assert f"on {smallest} ×" in text and "grad_accum" in text


def test_the_cli_plans_from_a_folder_holding_only_a_config(tmp_path):
    folder, _ = _llama_config(tmp_path / "cfg")
    args = ["convert", str(folder), "--task", "causal-lm", "--data", "x.txt", "--plan", "--devices", "2"]
    result = runner.invoke(app, [*args, "--device-memory", "1GB", "--set", "data.max_length=64"])
    assert result.exit_code == 0, result.output
    assert "per device" in result.output and "FSDP2" in result.output
    assert not (tmp_path / "out").exists()
    one = runner.invoke(app, [*args[:-1], "1", "--device-memory", "80GB", "--set", "data.max_length=64"])
    assert one.exit_code == 0 and "one device, unsharded" in one.output and "FSDP2" not in one.output
    result = runner.invoke(app, ["convert", str(folder), "--task", "causal-lm", "--data", "x.txt", "--devices", "2"])
    assert result.exit_code != 0 and "add --plan" in result.output
    result = runner.invoke(app, [*args, "--set", "train.batch_size=3"])
    assert result.exit_code != 0 and "does not split over 2 devices" in result.output
    (folder / "config.json").unlink()
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and "holds no config.json" in result.output


def test_the_benchmark_table_has_a_row_per_model_and_machine(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import device_plans

    out = tmp_path / "table.md"
    monkeypatch.setattr(sys, "argv", ["device_plans.py", "--out", str(out), "--steps", "10"])
    device_plans.main()
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "B) |" in line]
    assert len(rows) == len(device_plans.CONFIGS) * len(device_plans.DEVICES)
    assert "Llama-3.1-8B (8.0 B) | 8 |" in out.read_text()


def test_a_device_plan_warns_when_the_vocabulary_dominates(tmp_path):
    folder = tmp_path / "cfg"
    folder.mkdir()
    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
    (folder / "config.json").write_text(tf.LlamaConfig(**small, vocab_size=8192).to_json_string())
    text = plan_devices(_recipe(str(folder)), Setup(2, 10**9))
    assert "note         vocabulary logits dominate the training step" in text
    (folder / "config.json").write_text(tf.LlamaConfig(**small, vocab_size=64).to_json_string())
    assert "vocabulary logits" not in plan_devices(_recipe(str(folder)), Setup(2, 10**9))


def test_activation_checkpointing_is_planned_where_nothing_fits_without_it(tmp_path):
    folder, config = _llama_config(tmp_path / "cfg")
    shape = ConfigShape.of(meta_model(config, "causal-lm"))
    recipe = _recipe(str(folder))
    on = apply_overrides(recipe, {"train.activation_checkpointing": "true"})
    plain, recomputed = (device_memory(shape, 2, 1, 64, r) for r in (recipe, on))
    per_token = 64 * 4  # float32 values of one 64-token sequence
    assert plain.activations == 2 * per_token * (16 * 32 + 4 * 64)  # every layer keeps everything
    assert recomputed.activations == 2 * per_token * 32 + per_token * (16 * 32 + 4 * 64)  # inputs + one layer
    size = int((plain.total + recomputed.total) / 2 / 0.9)
    planned = with_checkpointing(shape, Setup(2, size), 64, recipe)
    assert planned.train.activation_checkpointing and fit_micro(shape, Setup(2, size), 64, planned) == 1
    assert "activation checkpointing per decoder layer" in plan_devices(recipe, Setup(2, size))
    off = apply_overrides(recipe, {"train.activation_checkpointing": "false"})  # set by the user: kept
    assert not with_checkpointing(shape, Setup(2, size), 64, off).train.activation_checkpointing
