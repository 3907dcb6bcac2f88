"""The scorer registry: each scorer is one object, its formula checked against a direct computation."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_batches
from test_families import SHRINKABLE
from zoo import build, inputs, make_model

from awncompress import find_ffns
from awncompress.config import recipe_from_dict
from awncompress.errors import DataError, RecipeError, UnknownScorerError, UnsupportedModelError
from awncompress.evaluate.methods import default_method_names, make_method, method_names
from awncompress.model.head_cuts import score_heads
from awncompress.model.scorers import SCORERS, ActivationStats, Scorer, get_scorer, register_scorer
from awncompress.model.scoring import score_neurons


def _hidden(model, batches) -> list[torch.Tensor]:
    """Every FFN's hidden activations (input of the down projection) over non-padding tokens."""
    seen: list[list[torch.Tensor]] = [[] for _ in find_ffns(model)]
    handles = [b.hook_hidden(lambda h, i=i: seen[i].append(h.detach())) for i, b in enumerate(find_ffns(model))]
    with torch.no_grad():
        for batch in batches:
            model(**batch)
    for h in handles:
        h.remove()
    masks = torch.cat([b["attention_mask"].reshape(-1).bool() for b in batches])
    return [torch.cat([h.reshape(-1, h.shape[-1]) for h in hs])[masks] for hs in seen]


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_wanda_sp_is_l1_of_down_columns_times_activation_norm(family):
    model, batches = make_model(family), make_batches()
    scores = score_neurons(model, find_ffns(model), "wanda-sp", batches)
    for block, s, h in zip(find_ffns(model), scores, _hidden(model, batches)):
        down = block.down.weight.detach()  # nn.Linear: [hidden, d_ff]
        direct = down.abs().sum(0) * h.double().pow(2).sum(0).sqrt().float()  # the paper's ‖X_j‖₂ over N tokens
        # The package uses sqrt(E h²) = ‖X_j‖₂ / √N: the same order, scaled by one constant per layer.
        torch.testing.assert_close(s * h.shape[0] ** 0.5, direct, rtol=1e-4, atol=1e-5)
        assert torch.equal(torch.argsort(s, descending=True), torch.argsort(direct, descending=True))


def test_wina_is_mean_abs_activation_times_down_column_norm():
    model, batches = make_model("bert"), make_batches()
    scores = score_neurons(model, find_ffns(model), "wina", batches)
    for block, s, h in zip(find_ffns(model), scores, _hidden(model, batches)):
        direct = h.abs().mean(0) * block.down.weight.detach().norm(dim=0)
        torch.testing.assert_close(s, direct, rtol=1e-4, atol=1e-6)


def test_a_scorer_brings_its_static_baseline_but_not_always_by_default():
    assert list(SCORERS)[:4] == ["wina", "activation", "magnitude", "random"]
    assert {"wanda-sp", *list(SCORERS)} <= set(method_names())
    assert "wanda-sp" not in default_method_names() and "wina" in default_method_names()
    assert make_method("wanda-sp").needs_calibration and not make_method("magnitude").needs_calibration


def test_a_scorer_without_a_head_rule_is_refused_for_heads():
    model = make_model("llama")
    assert not get_scorer("wanda-sp").scores_heads and get_scorer("wina").scores_heads
    with pytest.raises(UnknownScorerError, match="neurons only"):
        score_heads(model, "wanda-sp", make_batches())
    with pytest.raises(RecipeError, match="wanda-sp"):
        recipe_from_dict({"model": "m", "awn": {"scorer": "wanda-sp", "heads": True}})


def test_registering_a_scorer_makes_it_usable_and_twice_is_an_error():
    class Ones(Scorer):
        name = "test-ones"

        def neurons(self, block, stats: ActivationStats | None, generator):
            return torch.ones(block.width)

    register_scorer(Ones())
    try:
        model = make_model("bert")
        assert all(torch.equal(s, torch.ones(64)) for s in score_neurons(model, find_ffns(model), "test-ones"))
        with pytest.raises(UnknownScorerError, match="twice"):
            register_scorer(Ones())
    finally:
        SCORERS.pop("test-ones")
    with pytest.raises(UnknownScorerError, match="choose one of: wina, activation"):
        get_scorer("test-ones")


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_taylor_is_the_first_order_saliency_of_each_neurons_coupled_weights(family):
    model, batches = make_model(family), make_batches()
    labelled = [dict(b, labels=_labels(family, b)) for b in batches]
    before = [p.requires_grad for p in model.parameters()]
    scores = score_neurons(model, find_ffns(model), "taylor", labelled)
    # The same sum by hand: the loss gradient over the batches, then |w * g| summed per neuron.
    reference = copy.deepcopy(model)
    for batch in labelled:
        reference(**batch).loss.backward()
    for block, s in zip(find_ffns(reference), scores):
        up, down = block.up.weight, block.down.weight
        direct = (up * up.grad).abs().sum(1) + (down * down.grad).abs().sum(0)
        if block.gate is not None:
            direct = direct + (block.gate.weight * block.gate.weight.grad).abs().sum(1)
        torch.testing.assert_close(s, direct.detach(), rtol=1e-4, atol=1e-7)
    # Scoring leaves no gradients behind and the model's flags as they were.
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == before and not model.training


def test_taylor_needs_labels():
    model = make_model("bert")
    with pytest.raises(DataError, match="labelled calibration batches"):
        score_neurons(model, find_ffns(model), "taylor", make_batches())


def _labels(family: str, batch: dict) -> torch.Tensor:
    if family == "bert":
        return torch.arange(batch["input_ids"].shape[0]) % 3
    return batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)


def test_taylor_and_fluctuation_head_rules_against_direct_sums():
    from awncompress.model.heads import find_heads

    model, batches = make_model("llama"), make_batches()
    labelled = [dict(b, labels=_labels("llama", b)) for b in batches]
    taylor = score_heads(model, "taylor", labelled)
    reference = copy.deepcopy(model)
    for batch in labelled:
        reference(**batch).loss.backward()
    for block, s in zip(find_heads(reference), taylor):
        size = block.head_dim  # one KV head per unit; the unit's query heads are its `group` query heads
        qs, ks = block.unit_size, size

        def rows(m, width):
            return (m.weight * m.weight.grad).abs().sum(1).view(block.units, width).sum(1)

        cols = (block.o.weight * block.o.weight.grad).abs().sum(0).view(block.units, qs).sum(1)
        direct = rows(block.q, qs) + rows(block.k, ks) + rows(block.v, ks) + cols
        torch.testing.assert_close(s, direct.detach(), rtol=1e-4, atol=1e-7)
    # fluctuation: Σ over a unit's context channels of Var(c) · ‖W_o[:, ch]‖²
    contexts = []
    handles = [b.hook_context(lambda c: contexts.append(c.detach())) for b in find_heads(model)]
    with torch.no_grad():
        for batch in batches:
            model(**batch)
    for h in handles:
        h.remove()
    mask = torch.cat([b["attention_mask"].reshape(-1).bool() for b in batches])
    blocks = find_heads(model)
    fluct = score_heads(model, "fluctuation", batches)
    for i, (block, s) in enumerate(zip(blocks, fluct)):
        ctx = torch.cat([c.reshape(-1, c.shape[-1]) for c in contexts[i :: len(blocks)]])[mask]
        direct = ctx.double().var(0, unbiased=False).float() * block.o.weight.detach().norm(dim=0).pow(2)
        torch.testing.assert_close(s, direct.view(block.units, -1).sum(1), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("model_type", SHRINKABLE)
def test_peer_scorers_cover_every_family(model_type):
    """wanda-sp and fluctuation score every FFN of every family in the table, one finite score a neuron;
    the Taylor saliency of FFN neurons and attention units has one entry per neuron / unit."""
    from awncompress.model.heads import find_heads

    model, batch = build(model_type), inputs(model_type)
    blocks = find_ffns(model)
    shape = [(b.experts, b.width) if b.kind == "experts" else (b.width,) for b in blocks]
    for scorer in ("wanda-sp", "fluctuation"):
        scores = score_neurons(model, blocks, scorer, [batch])
        assert [tuple(s.shape) for s in scores] == shape and all(torch.isfinite(s).all() for s in scores)
    for block in blocks:
        for weight in block.parameters():
            weight.grad = torch.randn_like(weight)
    assert [tuple(b.first_order_saliency().shape) for b in blocks] == shape
    try:
        units = find_heads(model)
    except UnsupportedModelError:  # a family whose heads awncompress does not cut
        return
    for unit in units:
        for module in unit.projections():
            module.weight.grad = torch.randn_like(module.weight)
        assert tuple(unit.unit_saliency().shape) == (unit.units,)
