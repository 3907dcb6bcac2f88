"""Defaults that carry (derived and recorded), memory-aware sizes, the dry pass, --plan and --budget."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import transformers as tf
import yaml
from conftest import save_tiny_bert, word_tokenizer, write_reviews
from typer.testing import CliRunner
from zoo import make_model

from awncompress.cli import app
from awncompress.config import Recipe, apply_overrides, load_recipe
from awncompress.config.recipe import default_recipe
from awncompress.data.tokenized import DataConfig, ExampleDataset, PadCollator, TaskData, load_task_data
from awncompress.errors import AwnError
from awncompress.run import memory
from awncompress.run.derive import derive_defaults
from awncompress.run.plan import DryTimings, estimate, fit_budget

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("defaults")
    return {
        "model": save_tiny_bert(root / "model", with_head=False),
        "data": write_reviews(root / "reviews.csv", n=160),
    }


def _data(tiny, **kw):
    return load_task_data(DataConfig(train=str(tiny["data"]), **kw), word_tokenizer())


def test_unset_settings_are_derived_and_recorded(tiny):
    recipe = apply_overrides(Recipe(model="m"), {"export.widths": "0.25,0.5"})
    derived = derive_defaults(recipe, make_model("bert"), _data(tiny), head_trained=False)
    assert derived.train.steps == 100 and derived.dense.steps == 100  # 128 examples: the floors
    assert derived.train.extra_widths == [0.25] and derived.train.lr == 3e-4
    assert derived.train.warmup_steps == 10 and "a tenth of the 100 steps" in derived.derived["train.warmup_steps"]
    assert "one pass over the 128 training examples" in derived.derived["train.steps"]
    assert "sandwich" in derived.derived["train.extra_widths"]
    assert "train.lr" not in derived.derived  # hidden 32: the rate measured at 384 stands
    # With no full-width pass the sandwich spans the export widths: smallest, middle, largest.
    topless = apply_overrides(recipe, {"train.full_width_pass": "false"})
    derived = derive_defaults(topless, make_model("bert"), _data(tiny), head_trained=False)
    assert derived.train.extra_widths == [0.25, 0.5] and "largest" in derived.derived["train.extra_widths"]
    for widths, extra in (("0.5", [0.5]), ("0.25,0.375,0.5,0.625,0.75", [0.25, 0.5, 0.75])):
        five = apply_overrides(topless, {"export.widths": widths})
        assert derive_defaults(five, make_model("bert"), _data(tiny), head_trained=False).train.extra_widths == extra


def test_a_wider_model_gets_a_smaller_rate_unless_one_is_set(tiny):
    wide = tf.BertForSequenceClassification(
        tf.BertConfig(vocab_size=100, hidden_size=768, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    )
    derived = derive_defaults(Recipe(model="m"), wide, _data(tiny))
    assert derived.train.lr == 1.5e-4 and "384/768" in derived.derived["train.lr"]
    kept = derive_defaults(apply_overrides(Recipe(model="m"), {"train.lr": 3e-4}), wide, _data(tiny))
    assert kept.train.lr == 3e-4 and "train.lr" not in kept.derived


def test_settings_someone_set_are_kept(tiny):
    recipe = apply_overrides(
        Recipe(model="m"),
        {
            "train.steps": 7,
            "train.extra_widths": "[]",
            "dense.steps": 3,
            "train.warmup_steps": 0,
            "train.batch_per_width": "false",
        },
    )
    derived = derive_defaults(recipe, make_model("bert"), _data(tiny), head_trained=False)
    assert (derived.train.steps, derived.train.extra_widths, derived.dense.steps, derived.train.warmup_steps) == (
        7,
        [],
        3,
        0,
    )
    assert derived.train.batch_per_width is False  # 7 × 32 × 2 passes would be fresh, but it was set
    assert set(derived.derived) <= {"evaluate.batch_size", "train.grad_accum"}
    shipped = load_recipe("demo")
    assert derive_defaults(shipped, make_model("bert"), _data(tiny), head_trained=False).derived == {}


def test_a_batch_per_width_pass_is_derived_only_where_its_batches_are_fresh(tiny):
    data = _data(tiny)  # 128 training examples
    one_pass = derive_defaults(apply_overrides(Recipe(model="m"), {"train.batch_size": 4}), make_model("bert"), data)
    assert one_pass.train.steps == 100 and not one_pass.train.batch_per_width  # 100 × 4 × 3 passes repeat the 128
    assert "would repeat the 128 training examples" in one_pass.derived["train.batch_per_width"]
    short = derive_defaults(
        apply_overrides(Recipe(model="m"), {"train.batch_size": 4, "train.steps": 10}), make_model("bert"), data
    )
    assert (
        short.train.batch_per_width
        and "10 steps × 4 × 3 = 120 draws are all fresh" in short.derived["train.batch_per_width"]
    )


def test_memory_sizes_a_large_vocabulary_down_and_refuses_what_cannot_fit(monkeypatch):
    shape = memory.ModelShape(params=270_000_000, hidden=640, layers=18, d_ff=2048, vocab=262_144)
    budget = int(14 * memory.GIB)
    assert memory.training_bytes(shape, 32, 64, lm=True, teacher_live=True) > budget  # the 24 GB machine's OOM
    micro = memory.fit_micro_batch(shape, 32, 64, lm=True, teacher_live=True, budget=budget)
    assert micro is not None and micro < 32 and 32 % micro == 0
    assert memory.training_bytes(shape, micro, 64, lm=True, teacher_live=True) <= budget
    assert memory.fit_micro_batch(shape, 32, 64, lm=True, teacher_live=True, budget=int(2 * memory.GIB)) is None
    assert memory.fit_eval_batch(shape, 64, 64, lm=True, budget=int(6 * memory.GIB)) < 64


def test_the_plan_warns_when_vocabulary_logits_dominate_a_step(caplog):
    gemma = memory.ModelShape(params=268_098_176, hidden=640, layers=18, d_ff=2048, vocab=262_144)
    note = memory.logits_note(gemma, tied=True, teacher_live=True, bytes_per_value=4)
    head = 262_144 * 640 / 268_098_176  # a tied head is the embedding's matrix: all of it is matmul
    logits = 262_144 * 4 * 4  # float32 logits, their gradient, the loss's copy, the teacher's
    acts = 18 * (16 * 640 + 4 * 2048) * 4
    assert f"is {head:.0%} of a forward" in note and f"logits {logits / (logits + acts):.0%} of the memory" in note
    smollm2 = memory.ModelShape(params=134_515_008, hidden=576, layers=30, d_ff=1536, vocab=49_152)
    assert memory.logits_note(smollm2, tied=True, teacher_live=True, bytes_per_value=4) is None
    # An untied head's matrix is counted once more in the parameters, and its input embedding is a lookup.
    untied = memory.ModelShape(params=268_098_176 + 262_144 * 640, hidden=640, layers=18, d_ff=2048, vocab=262_144)
    assert memory.logits_note(untied, tied=False, teacher_live=True, bytes_per_value=4) == note

    # A causal LM whose vocabulary dwarfs its layers is warned when its settings are derived; a classifier is not.
    config = tf.LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=4096
    )
    items = ExampleDataset([{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}] * 8)
    data = TaskData(items, items, None, None, PadCollator(0), len(items))
    with caplog.at_level("WARNING", logger="awncompress"):
        derive_defaults(Recipe(model="m", task="causal-lm"), tf.LlamaForCausalLM(config), data)
    assert "vocabulary logits dominate the training step: the LM head (4,096 tokens × hidden 16)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="awncompress"):
        derive_defaults(Recipe(model="m"), make_model("bert"), data)
    assert "vocabulary logits" not in caplog.text


def test_derived_gradient_accumulation_and_the_refusals(tiny, monkeypatch):
    """The real memory estimate on a machine made small: micro-batches of 4 fit, 8 do not. Batches are
    padded to their longest example, so the estimate is for the data's longest, not data.max_length."""
    import awncompress.run.derive as derive
    from awncompress.data.tokenized import example_lengths
    from awncompress.model.families import find_ffns

    model, data = make_model("bert"), _data(tiny)
    recipe = apply_overrides(Recipe(model="m"), {"train.batch_size": 16})
    blocks = find_ffns(model)
    shape = memory.ModelShape.of(model, max(b.width for b in blocks), len(blocks))
    seq, live = derive.longest_example(recipe, data), derive.teacher_is_live(recipe)
    assert seq == max(example_lengths(data.train) + example_lengths(data.eval)) < recipe.data.max_length
    assert derive.longest_example(apply_overrides(recipe, {"data.max_length": 4}), data) == 4
    one, four, eight = (memory.training_bytes(shape, micro, seq, False, live) for micro in (1, 4, 8))

    def machine(available: float) -> None:
        for module in (memory, derive):  # derive names it in its messages
            monkeypatch.setattr(module, "available_bytes", lambda: int(available))

    machine((four + eight) / 2 / memory.USABLE_SHARE)
    derived = derive_defaults(recipe, model, data)
    assert derived.train.grad_accum == 4
    assert derived.derived["train.grad_accum"].startswith("4: micro-batches of 4 fit")
    with pytest.raises(AwnError, match="grad_accum 2 needs about .* set train.grad_accum to 4 or more"):
        derive_defaults(apply_overrides(recipe, {"train.grad_accum": 2}), model, data)
    assert derive_defaults(apply_overrides(recipe, {"train.grad_accum": 8}), model, data).train.grad_accum == 8
    # One example fits only when each layer keeps just its input: activation checkpointing is derived on.
    recomputed = memory.training_bytes(shape, 1, seq, False, live, checkpointed=True)
    assert recomputed < one
    machine((recomputed + one) / 2 / memory.USABLE_SHARE)
    derived = derive_defaults(recipe, model, data)
    assert derived.train.activation_checkpointing and derived.train.grad_accum == 16
    assert derived.derived["train.activation_checkpointing"].startswith(f"on: one example of {seq} tokens needs")
    assert not derive_defaults(apply_overrides(recipe, {"train.grad_accum": 16}), model, data).derived.get(
        "train.grad_accum"
    )
    with pytest.raises(AwnError, match="one training example"):  # set off by the user: kept off, and refused
        derive_defaults(apply_overrides(recipe, {"train.activation_checkpointing": False}), model, data)
    machine(recomputed / 2 / memory.USABLE_SHARE)  # not even one example per micro-batch, even recomputed
    with pytest.raises(AwnError, match=f"one training example of {seq} tokens needs about .* GiB"):
        derive_defaults(recipe, model, data)


def _measured(**kw) -> DryTimings:
    base = dict(
        step={"awn": 2.0, "dense": 1.0},
        plans=3,
        token=1e-4,
        tokens_train=30.0,
        tokens_eval=30.0,
        export=5.0,
        latency=0.5,
        rows=20,
        dry_seconds=10.0,
        peak_bytes=2 * memory.GIB,
    )
    return DryTimings(**{**base, **kw})


def test_the_plan_scales_the_dry_pass_to_the_run():
    recipe = apply_overrides(load_recipe("demo"), {"evaluate.methods": "awn,wina,finetune"})
    plan = estimate(recipe, _measured(), 4000, 2000)
    stages = {name: seconds for name, _, seconds in plan.stages}
    assert stages["dense head"] == 250 * 1.0 and stages["awn fine-tune"] == 125 * 2.0
    # five per-width fine-tunes of 125 one-pass steps (an AWN step is three passes)
    assert stages["evaluation"] == pytest.approx(20 * 2000 * 30 * 1e-4 + 0.5 * 23 + 5 * 125 * 2.0 / 3)
    assert plan.total_seconds == pytest.approx(sum(stages.values())) and "awn fine-tune" in plan.text()


def test_a_budget_scales_every_fine_tune_and_refuses_what_cannot_fit(caplog):
    recipe = load_recipe("demo")
    plan = estimate(recipe, _measured(), 4000, 2000)
    with caplog.at_level("WARNING", logger="awncompress"):
        fitted = fit_budget(recipe, plan, 5.0)  # 30 % of the steps
        assert "weak curve" not in caplog.text
        fit_budget(recipe, plan, 4.0)  # 20 % (the teacher table shrinks with the steps)
    assert "leaves 20 % of the derived fine-tune steps: expect a weak curve" in caplog.text
    assert fitted.train.steps < 125 and fitted.dense.steps < 250 and fitted.budget == 5.0
    assert estimate(fitted, _measured(), 4000, 2000).total_seconds <= 5 * 60 + 1
    assert "--budget 5 min" in fitted.derived["train.steps"]
    warm = fit_budget(apply_overrides(recipe, {"train.warmup_steps": 13}), plan, 5.0)
    assert warm.train.steps == fitted.train.steps and abs(warm.train.warmup_steps - 13 * warm.train.steps / 125) <= 1
    assert "scaled by" in warm.derived["train.warmup_steps"]
    assert fit_budget(recipe, plan, 60.0) is recipe  # it fits already
    assert not fitted.train.batch_per_width  # the demo sets it: the budget leaves it alone
    with pytest.raises(AwnError, match="cannot fit"):
        fit_budget(recipe, plan, 0.5)


def test_a_budget_that_leaves_fresh_examples_turns_a_derived_batch_per_width_on_and_fits_its_table():
    derived = {"train.batch_per_width": "false: would repeat the 4,000 training examples"}
    recipe = load_recipe("demo").model_copy(update={"derived": derived})
    measured = _measured()  # a table of 3 ms per example: tripling what it holds costs a few steps
    plan = estimate(recipe, measured, 4000, 2000)
    fitted = fit_budget(recipe, plan, 5.0)
    assert fitted.train.batch_per_width and "(under --budget 5 min)" in fitted.derived["train.batch_per_width"]
    assert fitted.train.steps * 32 * 3 <= 4000
    assert estimate(fitted, measured, 4000, 2000).total_seconds <= 5 * 60 + 1
    without = fit_budget(recipe.model_copy(update={"derived": {}}), plan, 5.0)
    assert (
        not without.train.batch_per_width and without.train.steps > fitted.train.steps
    )  # the larger table costs steps


def test_the_teacher_table_covers_only_what_the_fine_tunes_draw_and_shrinks_with_a_budget():
    recipe = load_recipe("demo")  # 125 steps of 32: 4,000 examples drawn
    measured = _measured(tokens_train=300.0)  # a slow teacher: 0.03 s per training example
    teacher = lambda plan: {n: (what, s) for n, what, s in plan.stages}["teacher logits"]  # noqa: E731
    big = estimate(recipe, measured, 40000, 2000)
    assert teacher(big)[0].startswith("4,000 of 40,000") and teacher(big)[1] == pytest.approx(4000 * 0.03)
    assert teacher(estimate(recipe, measured, 3000, 2000))[1] == pytest.approx(3000 * 0.03)  # all of a small set
    fitted = fit_budget(recipe, big, 8.0)
    after = estimate(fitted, measured, 40000, 2000)
    assert teacher(after)[1] == pytest.approx(fitted.train.steps * 32 * 0.03)
    # the budget is used, not left idle by counting the whole table as a fixed cost
    one_step = after.total_seconds / fitted.train.steps
    assert 8 * 60 - 2 * one_step <= after.total_seconds <= 8 * 60 + 1


def test_a_budget_cuts_a_large_evaluation_set_before_the_steps():
    recipe = apply_overrides(load_recipe("demo"), {"evaluate.methods": "awn,wina,finetune"})
    measured = _measured(rows=36, tokens_eval=128.0, token=2e-4)  # ~0.92 s per evaluation example
    plan = estimate(recipe, measured, 11000, 7500)
    fitted = fit_budget(recipe, plan, 40.0)
    kept = fitted.data.max_eval_examples
    assert 1000 <= kept < 7500 and "--budget 40 min" in fitted.derived["data.max_eval_examples"]
    assert kept * plan.eval_example_seconds <= 0.5 * 40 * 60
    assert estimate(fitted, measured, 11000, kept).total_seconds <= 40 * 60 + 1
    # a small evaluation set is never cut below the floor, and one that fits is left alone
    assert (
        fit_budget(recipe, estimate(recipe, measured, 11000, 900), 40.0).data.max_eval_examples
        == recipe.data.max_eval_examples
    )
    assert (
        fit_budget(recipe, estimate(recipe, _measured(), 4000, 2000), 5.0).data.max_eval_examples
        == recipe.data.max_eval_examples
    )


def test_plan_writes_nothing_and_the_run_records_what_it_derived(tiny, tmp_path):
    out = tmp_path / "out"
    args = [
        "convert",
        str(tiny["model"]),
        "--data",
        str(tiny["data"]),
        "--widths",
        "0.5",
        "--out",
        str(out),
        "--set",
        "evaluate.methods=awn,wina",
        "--set",
        "evaluate.latency_repeats=1",
    ]
    result = runner.invoke(app, [*args, "--plan"])
    assert result.exit_code == 0, result.output
    assert (
        "awn fine-tune" in result.output and "peak memory" in result.output and "derived train.steps" in result.output
    )
    assert "GiB (in the awn fine-tune) of" in result.output  # its dense stage holds no teacher copy
    # The user is told what the silent minutes before the plan are (a large model's dry pass takes them).
    assert "dry pass: every stage once on a copy of the model, 2 steps of one micro-batch" in result.output
    assert not out.exists()
    result = runner.invoke(app, [*args, "--steps", "3", "--dense-steps", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    recorded = yaml.safe_load((out / "recipe.yaml").read_text())
    assert recorded["train"]["extra_widths"] == [0.5] and "train.extra_widths" in recorded["derived"]
    assert recorded["train"]["steps"] == 3 and "train.steps" not in recorded["derived"]
    report = json.loads((out / "report.json").read_text())
    assert report["derived"] == recorded["derived"]


def test_the_dry_pass_fails_a_run_before_its_output_exists(tiny, tmp_path, monkeypatch):
    import awncompress.evaluate.methods.static as static

    def broken(self, ctx):
        raise AwnError("the static baseline cannot order this model")

    monkeypatch.setattr(static.StaticMethod, "prepare", broken)
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
            "--out",
            str(out),
            "--set",
            "evaluate.methods=awn,wina",
            "--quiet",
        ],
    )
    assert result.exit_code == 1 and "cannot order" in result.output and not out.exists()


def test_the_peak_is_estimated_stage_by_stage_from_the_model():
    shape = memory.ModelShape(params=22_700_000, hidden=384, layers=6, d_ff=1536, vocab=30_522)
    weights = shape.params * 4
    kw = dict(micro_batch=32, seq_len=64, lm=False, teacher_live=False, checkpointed=False, eval_batch=64)
    static = memory.stage_bytes(shape, dense_stage=True, trained_width=0.0, **kw)
    acts = memory.activation_bytes(6, 384, 1536, 32 * 64, 4)
    assert static["dense head"] == 3 * weights + acts  # gradients, Adam's two moments, activations
    assert static["awn fine-tune"] == static["dense head"] + weights  # and the frozen dense copy
    assert max(static, key=static.get) == "awn fine-tune"
    assert static["evaluation"] == 3 * weights + memory.evaluation_bytes(shape, 64, 64, False) - weights
    trained = memory.stage_bytes(shape, dense_stage=False, trained_width=1.0, **kw)
    assert "dense head" not in trained
    # a per-width fine-tune trains a cut next to the dense copy and the baseline's ordered copy
    assert trained["evaluation"] == trained["awn fine-tune"] + 2 * weights
    # ... at the widest width it trains: a quarter of the FFN fewer weights, gradients, Adam moments, activations
    ffn = 6 * 2 * 384 * 1536
    shape = replace(shape, ffn_params=ffn)
    three_quarters = memory.stage_bytes(shape, dense_stage=False, trained_width=0.75, **kw)["evaluation"]
    narrower_acts = acts - memory.activation_bytes(6, 384, 1152, 32 * 64, 4)
    assert trained["evaluation"] - three_quarters == 4 * (ffn // 4) * 4 + narrower_acts
    halved = memory.stage_bytes(shape, dense_stage=False, trained_width=0.0, **{**kw, "micro_batch": 16})
    assert static["awn fine-tune"] - halved["awn fine-tune"] == acts // 2


def test_growth_is_planned_at_its_cap_in_weights_optimiser_state_and_activations(tiny, tmp_path):
    from awncompress.run.derive import model_shape

    model = tf.AutoModelForSequenceClassification.from_pretrained(tiny["model"])
    plain = model_shape(model)
    recipe = default_recipe(str(tiny["model"]))
    assert model_shape(model, recipe) == plain  # growth off: nothing added
    grown = model_shape(model, apply_overrides(recipe, {"awn.grow": "true"}))
    ffn = plain.ffn_params
    assert 0 < ffn < plain.params and grown.params == plain.params + ffn  # grow_cap 2: every FFN doubled
    assert grown.d_ff == 2 * plain.d_ff and grown.ffn_params == 2 * ffn
    kw = dict(micro_batch=8, seq_len=32, lm=False, teacher_live=False, checkpointed=False, eval_batch=8)
    before = memory.stage_bytes(plain, dense_stage=False, trained_width=0.0, **kw)["awn fine-tune"]
    after = memory.stage_bytes(grown, dense_stage=False, trained_width=0.0, **kw)["awn fine-tune"]
    acts = memory.activation_bytes(plain.layers, plain.hidden, 2 * plain.d_ff, 8 * 32, 4)
    acts -= memory.activation_bytes(plain.layers, plain.hidden, plain.d_ff, 8 * 32, 4)
    assert after - before == 4 * ffn * 4 + acts  # the grown weights in the copy, gradients, Adam; wider activations
    args = ["convert", str(tiny["model"]), "--data", str(tiny["data"]), "--grow", "--plan"]
    args += ["--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and not (tmp_path / "o").exists(), result.output
    assert "awn.grow: memory counted as if every FFN grew to 2 × its width" in result.output


def test_the_dry_pass_runs_one_micro_batch(tiny):
    from awncompress.run.plan import DRY_STEPS, _tiny, dry_batch

    recipe = load_recipe("demo")
    assert dry_batch(recipe) == recipe.train.batch_size
    assert dry_batch(apply_overrides(recipe, {"train.grad_accum": "8"})) == 4  # one micro-batch, not eight
    small, tiny_data = _tiny(recipe, _data(tiny), 4)
    assert small.train.batch_size == small.dense.batch_size == 4 and small.train.grad_accum == 1
    assert len(tiny_data.train) == 4 * DRY_STEPS and small.export.widths == [min(recipe.export.widths)]


def test_frozen_embeddings_are_planned_without_gradients_or_adam_state(tiny):
    from awncompress.run.derive import model_shape

    model = tf.AutoModelForSequenceClassification.from_pretrained(tiny["model"])
    recipe = default_recipe(str(tiny["model"]))
    plain = model_shape(model, recipe)
    frozen = model_shape(model, apply_overrides(recipe, {"train.freeze_embeddings": "true"}))
    vocab = model.get_input_embeddings().weight.numel()
    assert plain.frozen == 0 and frozen.frozen == vocab
    kw = dict(micro_batch=8, seq_len=32, lm=False, teacher_live=False, checkpointed=False, eval_batch=8)
    before = memory.stage_bytes(plain, dense_stage=True, trained_width=1.0, **kw)
    after = memory.stage_bytes(frozen, dense_stage=True, trained_width=1.0, **kw)
    saved = 3 * vocab * 4  # its gradient and Adam's two moments, float32
    assert before["awn fine-tune"] - after["awn fine-tune"] == saved
    assert before["evaluation"] - after["evaluation"] == saved  # the per-width fine-tunes freeze it too
    assert before["dense head"] == after["dense head"]  # the dense stage trains every weight
    train = lambda shape: memory.training_bytes(shape, 8, 32, False, False)  # noqa: E731
    assert train(plain) - train(frozen) == saved
    from awncompress.config.settings import read_settings

    stages = read_settings(apply_overrides(load_recipe("demo"), {"train.freeze_embeddings": "true"}))
    assert stages.train.freeze_embeddings and stages.per_width.freeze_embeddings and not stages.dense.freeze_embeddings


def test_the_evaluation_is_planned_at_the_widest_width_a_method_fine_tunes():
    from awncompress.evaluate.methods import widest_fine_tune

    widths, targets = [0.25, 0.5, 0.75], [0.4, 0.9]
    assert widest_fine_tune(["awn", "wina", "flap"], widths, targets) == 0.0  # no method fine-tunes a cut
    assert widest_fine_tune(["awn", "finetune"], widths, targets) == 0.75  # each export width
    assert widest_fine_tune(["flap+finetune"], widths, []) == 0.75
    assert widest_fine_tune(["finetune-heads"], widths, targets) == 0.9  # each FLOP target
    assert widest_fine_tune(["finetune", "finetune-heads"], [0.5], [0.4]) == 0.5
