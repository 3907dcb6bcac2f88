"""Methods describe themselves: what they train, what they need, when they are added; a training
method is one module (``minitron``) that the evaluation, the plan and the recipe check all read."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import collate, logits, make_batches, toy_data
from zoo import make_model

from awncompress.config import recipe_from_dict
from awncompress.errors import RecipeError, UnknownMethodError
from awncompress.evaluate.matrix import evaluate_methods
from awncompress.evaluate.measure import evaluate_model
from awncompress.evaluate.methods import TrainingKit, auto_methods, fine_tune_runs, make_method
from awncompress.model.surgery import order_, truncate_
from awncompress.train.finetune import finetune
from awncompress.train.settings import TrainConfig


def test_what_methods_say_of_themselves():
    assert make_method("finetune").trains and make_method("minitron").trains and not make_method("wina").trains
    assert make_method("finetune").needs_scorer and not make_method("minitron").needs_scorer
    assert make_method("awn-per-layer").requires == "export.per_layer" and make_method("awn-per-layer").auto
    assert make_method("finetune-heads").requires == "awn.heads" and not make_method("finetune-heads").auto
    # The plan's cost: one fine-tune per width, or per FLOP target for the head cuts.
    assert fine_tune_runs(["awn", "wina", "finetune", "minitron", "finetune-heads"], 5, 3) == 5 + 5 + 3
    for peer in ("taylor", "fluctuation"):  # a head peer's fine-tuned twin: one per target, its own order
        twin = make_method(f"{peer}-heads+finetune")
        assert twin.trains and not twin.needs_scorer and twin.requires == "awn.heads" and not twin.auto
        assert twin.fine_tunes(5, 3) == 3 and twin.name == f"{peer}-heads+finetune"


def test_auto_methods_join_where_their_switch_is_on():
    assert auto_methods(["awn", "wina"], lambda key: key == "export.per_layer") == ["awn", "awn-per-layer", "wina"]
    assert auto_methods(["wina"], lambda key: key == "export.per_layer") == ["awn-per-layer", "wina"]
    assert auto_methods(["awn", "wina"], lambda key: key == "awn.heads") == ["awn", "wina", "awn-heads", "wina-heads"]
    assert auto_methods(["awn"], lambda key: False) == ["awn"]


def test_the_recipe_checks_read_the_methods():
    with pytest.raises(RecipeError, match="finetune, which cuts neurons in awn.scorer's order"):
        recipe_from_dict({"model": "m", "awn": {"scorer": "none"}, "evaluate": {"methods": ["awn", "finetune"]}})
    # minitron brings its own order, so it runs with the pretrained order kept
    recipe_from_dict({"model": "m", "awn": {"scorer": "none"}, "evaluate": {"methods": ["awn", "minitron"]}})
    with pytest.raises(RecipeError, match=r"lists wina-heads: set awn.heads to true \(--heads\)"):
        recipe_from_dict({"model": "m", "evaluate": {"methods": ["awn", "wina-heads"]}})
    with pytest.raises(RecipeError, match=r"lists awn-per-layer: set export.per_layer to true \(--per-layer\)"):
        recipe_from_dict({"model": "m", "evaluate": {"methods": ["awn", "awn-per-layer"]}})


def test_minitron_is_the_activation_cut_fine_tuned_with_the_shared_budget():
    model, data, calibration = make_model("bert"), toy_data(), make_batches()
    cfg = TrainConfig(steps=3, batch_size=8, lr=1e-3, kd_weight=0.5, mode="deterministic", checkpoint_every=0)
    teacher = copy.deepcopy(model).requires_grad_(False)
    kit = TrainingKit(data, collate, len(data), cfg, teacher)
    record = evaluate_methods(
        model,
        None,
        data,
        collate,
        "text-classification",
        "accuracy",
        ["minitron"],
        [0.5],
        calibration,
        None,
        batch_size=16,
        seed=0,
        training=kit,
        quiet=True,
    )
    assert [r["method"] for r in record["rows"]] == ["minitron"]
    assert record["rows"][0]["intermediate_size"] == 32
    # The same cut and fine-tune by hand give the same model (so the same accuracy).
    expected = copy.deepcopy(model).requires_grad_(True)
    order_(expected, "activation", calibration, seed=0)
    truncate_(expected, 0.5)
    finetune(expected, data, collate, cfg, num_examples=len(data), teacher=teacher, seed=0, quiet=True)
    assert record["rows"][0]["value"] == pytest.approx(
        evaluate_model(expected, data, collate, "text-classification", "accuracy", 16)
    )
    assert not torch.equal(logits(expected, make_batches()[0]), logits(model, make_batches()[0]))


def test_a_peer_and_its_fine_tuned_twin():
    model, data = make_model("bert"), toy_data()
    cfg = TrainConfig(steps=3, batch_size=8, lr=1e-3, kd_weight=0.5, mode="deterministic", checkpoint_every=0)
    kit = TrainingKit(data, collate, len(data), cfg, copy.deepcopy(model).requires_grad_(False))
    assert fine_tune_runs(["flap+finetune", "taylor+finetune", "flap"], 4, 0) == 8
    record = evaluate_methods(
        model,
        None,
        data,
        collate,
        "text-classification",
        "accuracy",
        ["flap", "flap+finetune"],
        [0.5],
        make_batches(),
        None,
        batch_size=16,
        training=kit,
        quiet=True,
    )
    flap, tuned = record["rows"]
    assert (flap["method"], tuned["method"]) == ("flap", "flap+finetune")
    assert tuned["intermediate_size"] == flap["intermediate_size"]  # the same adaptive widths, then trained
    assert record["per_example_correct"]["flap@0.5"] != record["per_example_correct"]["flap+finetune@0.5"] or (
        tuned["value"] != flap["value"]
    )


def test_two_methods_may_not_write_rows_of_one_name():
    model, data = make_model("bert"), toy_data()
    kit = TrainingKit(data, collate, len(data), TrainConfig(steps=1, batch_size=8, checkpoint_every=0), None)
    with pytest.raises(UnknownMethodError, match="same name"):
        evaluate_methods(
            model,
            None,
            data,
            collate,
            "text-classification",
            "accuracy",
            ["finetune", "taylor+finetune"],
            [0.5],
            make_batches(),
            None,
            scorer="taylor",
            training=kit,
        )
