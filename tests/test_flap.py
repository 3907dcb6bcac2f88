"""FLAP on the FFN: fluctuation order, standardised global threshold, bias compensation."""

from __future__ import annotations

import pytest
import torch
from conftest import collate, make_batches, toy_data
from test_scorers import _hidden
from zoo import make_model

from awncompress import find_ffns
from awncompress.evaluate.matrix import evaluate_methods
from awncompress.evaluate.methods import EvalContext, make_method
from awncompress.evaluate.methods.flap import adaptive_widths, standardise
from awncompress.model.scoring import score_neurons


def _down_outputs(model, batches) -> torch.Tensor:
    """Layer 0's down-projection outputs over the non-padding tokens (its input is the same in any cut)."""
    seen = []
    handle = find_ffns(model)[0].down.register_forward_hook(lambda _m, _a, out: seen.append(out.detach()))
    with torch.no_grad():
        for batch in batches:
            model(**batch)
    handle.remove()
    masks = torch.cat([b["attention_mask"].reshape(-1).bool() for b in batches])
    return torch.cat([o.reshape(-1, o.shape[-1]) for o in seen])[masks]


def test_fluctuation_is_variance_times_squared_column_norm():
    model, batches = make_model("bert"), make_batches()
    scores = score_neurons(model, find_ffns(model), "fluctuation", batches)
    for block, s, h in zip(find_ffns(model), scores, _hidden(model, batches)):
        direct = h.double().var(0, unbiased=False).float() * block.down.weight.detach().norm(dim=0).pow(2)
        torch.testing.assert_close(s, direct, rtol=1e-3, atol=1e-6)


def test_adaptive_widths_keep_the_highest_standardised_scores_overall():
    z = [torch.tensor([3.0, 1.0, -1.0, -3.0]), torch.tensor([0.5, 0.4, 0.3, -9.0])]
    assert adaptive_widths(z, 5) == [2, 3]  # 3.0 and 0.5 by the floor, then 1.0, 0.4, 0.3
    assert adaptive_widths(z, 2) == [1, 1]  # every layer keeps one
    assert torch.allclose(standardise(torch.tensor([1.0, 2.0, 3.0])), torch.tensor([-1.0, 0.0, 1.0]))


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_flap_cuts_to_the_same_total_and_keeps_the_mean_output(family):
    model, batches = make_model(family), make_batches()
    full = [b.width for b in find_ffns(model)]
    plan = {0.5: [w // 2 for w in full]}
    method = make_method("flap")
    ctx = EvalContext(model, [0.5], plan, batches)
    method.prepare(ctx)
    with method.at_width(ctx, 0.5) as cand:
        assert sum(cand.widths) == sum(plan[0.5]) and [b.width for b in find_ffns(cand.model)] == cand.widths
        assert cand.widths[0] < full[0]
        # Bias compensation: layer 0's mean down output over the calibration tokens is the dense model's.
        torch.testing.assert_close(
            _down_outputs(cand.model, batches).mean(0), _down_outputs(model, batches).mean(0), rtol=1e-4, atol=1e-5
        )
        assert not torch.allclose(_down_outputs(cand.model, batches), _down_outputs(model, batches))


def test_flap_is_a_row_of_the_report():
    model, data = make_model("bert"), toy_data()
    record = evaluate_methods(
        model,
        None,
        data,
        collate,
        "text-classification",
        "accuracy",
        ["flap"],
        [0.5],
        make_batches(),
        None,
        batch_size=16,
    )
    row = record["rows"][0]
    assert (
        row["method"] == "flap"
        and sum(
            row["intermediate_size"] if isinstance(row["intermediate_size"], list) else [row["intermediate_size"]] * 2
        )
        == 64
    )


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_awn_bc_is_the_nested_cut_with_the_removed_neurons_mean_in_the_bias(family, tmp_path):
    from awncompress.checkpoint.export import export_nested
    from awncompress.model.surgery import truncate_

    model, batches = make_model(family), make_batches()
    export_nested(model, tmp_path / "nested")
    plan = {0.5: [b.width // 2 for b in find_ffns(model)]}
    method = make_method("awn-bc")
    ctx = EvalContext(model, [0.5], plan, batches, out=tmp_path)
    method.prepare(ctx)
    with method.at_width(ctx, 0.5) as cand:
        assert cand.widths == plan[0.5] and [b.width for b in find_ffns(cand.model)] == plan[0.5]
        # Layer 0's mean down output over the calibration tokens is the uncut model's; the cut alone's is not.
        torch.testing.assert_close(
            _down_outputs(cand.model, batches).mean(0), _down_outputs(model, batches).mean(0), rtol=1e-4, atol=1e-5
        )
    cut = make_model(family)
    truncate_(cut, plan[0.5])
    assert not torch.allclose(_down_outputs(cut, batches).mean(0), _down_outputs(model, batches).mean(0), atol=1e-4)


def test_awn_bc_needs_a_nested_checkpoint(tmp_path):
    from awncompress.errors import NotAnExportError

    ctx = EvalContext(make_model("bert"), [0.5], {0.5: [32, 32]}, make_batches(), out=tmp_path)
    with pytest.raises(NotAnExportError, match="nested checkpoint"):
        make_method("awn-bc").check(ctx)


def test_flap_layer_widths_count_each_layer_above_the_threshold_in_any_order():
    from awncompress.evaluate.methods.awn_flap import flap_layer_widths

    # adaptive_widths' case above, each layer shuffled: the counts do not depend on the neurons' order.
    f = [torch.tensor([-1.0, 3.0, -3.0, 1.0]), torch.tensor([0.3, -9.0, 0.5, 0.4])]
    assert flap_layer_widths(f, 5) == [2, 3]
    assert flap_layer_widths(f, 2) == [1, 1]


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_awn_flap_cuts_the_nested_model_to_flaps_counts_of_its_leading_neurons(family, tmp_path):
    from awncompress.checkpoint.export import export_nested
    from awncompress.checkpoint.layout import NESTED_DIR
    from awncompress.checkpoint.load import load_pretrained
    from awncompress.evaluate.methods.awn_flap import flap_layer_widths
    from awncompress.model.surgery import truncate_

    model, batches = make_model(family), make_batches()
    export_nested(model, tmp_path / NESTED_DIR)
    total = sum(b.width for b in find_ffns(model)) // 2
    plan = {0.5: [b.width // 2 for b in find_ffns(model)]}
    method = make_method("awn-flap")
    ctx = EvalContext(model, [0.5], plan, batches, out=tmp_path)
    method.check(ctx)
    method.prepare(ctx)
    # FLAP's fluctuation computed directly from the hidden activations, Var(h_j) · ‖W_down[:, j]‖².
    direct = [
        h.double().var(0, unbiased=False).float() * b.down.weight.detach().norm(dim=0).pow(2)
        for b, h in zip(find_ffns(model), _hidden(model, batches))
    ]
    expected = flap_layer_widths(direct, total)
    assert sum(expected) == total and expected != plan[0.5]
    with method.at_width(ctx, 0.5) as cand:
        assert cand.widths == expected and [b.width for b in find_ffns(cand.model)] == expected
        cut = load_pretrained(tmp_path / NESTED_DIR)
        truncate_(cut, expected)
        torch.testing.assert_close(_down_outputs(cand.model, batches), _down_outputs(cut, batches))
    assert [b.width for b in find_ffns(method.full)] == [b.width for b in find_ffns(model)]


def test_awn_flap_needs_a_nested_checkpoint(tmp_path):
    from awncompress.errors import NotAnExportError

    ctx = EvalContext(make_model("bert"), [0.5], {0.5: [32, 32]}, make_batches(), out=tmp_path)
    with pytest.raises(NotAnExportError, match="nested checkpoint"):
        make_method("awn-flap").check(ctx)
