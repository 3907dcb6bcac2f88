"""Conversion, ordering and folding leave every supported family's outputs unchanged."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import logits, make_batches
from zoo import make_model

from awncompress import (
    AdaptiveFFN,
    AWNConfig,
    adaptive_modules,
    convert_,
    find_ffns,
    fold_,
    layer_widths,
    order_,
    truncate_,
)
from awncompress.model.scorers import SCORERS

TOL = 1e-5


def test_convert_preserves_outputs(family):
    model = make_model(family)
    batches = make_batches()
    before = logits(model, batches[0])
    convert_(model, AWNConfig(scorer="wina"), calibration=batches)
    assert len(adaptive_modules(model)) == 2
    assert (logits(model, batches[0]) - before).abs().max() < TOL


@pytest.mark.parametrize("scorer", sorted(SCORERS))
def test_order_is_a_permutation_that_preserves_outputs(scorer):
    model = make_model("llama")
    batches = make_batches()
    # A scorer that takes the loss's gradient (taylor) needs labels: next-token ids, padding ignored.
    labelled = [dict(b, labels=b["input_ids"].masked_fill(b["attention_mask"] == 0, -100)) for b in batches]
    before = logits(model, batches[0])
    perms = order_(model, scorer, labelled)
    assert all(sorted(p.tolist()) == list(range(64)) for p in perms)
    assert any(p.tolist() != list(range(64)) for p in perms)
    assert (logits(model, batches[0]) - before).abs().max() < TOL


def test_fold_gives_vanilla_model_with_adaptive_outputs(family):
    model = make_model(family)
    batches = make_batches()
    convert_(model, AWNConfig(), calibration=batches)
    with torch.no_grad():  # move the rates away from their initial value, as training would
        for i, w in enumerate(adaptive_modules(model)):
            w.raw_rate.add_(1.0 + i)
    adaptive_out = logits(model, batches[1])
    fold_(model)
    assert not any(isinstance(m, AdaptiveFFN) for m in model.modules())
    assert (logits(model, batches[1]) - adaptive_out).abs().max() < TOL


def test_full_width_truncation_equals_original_and_half_width_differs(family):
    model = make_model(family)
    batch = make_batches()[0]
    before = logits(model, batch)
    full = copy.deepcopy(model)
    assert truncate_(full, 1.0) == [64, 64]
    assert (logits(full, batch) - before).abs().max() < TOL
    half = copy.deepcopy(model)
    assert truncate_(half, 0.5) == [32, 32]
    assert layer_widths(half) == [32, 32]
    assert (logits(half, batch) - before).abs().max() > 1e-3  # the FFN matters in these tiny models


def test_truncated_adaptive_equals_sliced_folded():
    """Masking neurons past w in the wrapper is what folding then slicing to w computes."""
    model = make_model("bert")
    batch = make_batches()[0]
    convert_(model, AWNConfig(), calibration=make_batches())
    for w in adaptive_modules(model):
        w.truncate_to = 16
    masked = logits(model, batch)
    for w in adaptive_modules(model):
        w.truncate_to = None
    fold_(model)
    truncate_(model, 16)
    assert (logits(model, batch) - masked).abs().max() < TOL


def test_truncate_rounds_to_multiple_and_sets_config():
    model = make_model("gpt2")
    assert truncate_(model, 0.3, multiple=8) == [16, 16]
    assert model.config.n_inner == 16
    model = make_model("distilbert")
    truncate_(model, 24)
    assert model.config.hidden_dim == 24


def test_per_layer_truncation():
    model, masked = make_model("qwen3"), make_model("qwen3")
    batch = make_batches()[0]
    full = logits(model, batch)
    assert truncate_(model, [8, 40]) == [8, 40]
    assert [b.width for b in find_ffns(model)] == [8, 40]
    with torch.no_grad():  # a layer cut to w computes what the full layer computes with neurons past w zeroed
        for block, w in zip(find_ffns(masked), [8, 40]):
            block.down.weight[:, w:] = 0
    out = logits(model, batch)
    assert torch.allclose(out, logits(masked, batch), atol=1e-5)
    assert not torch.allclose(out, full, atol=1e-3)


def test_wina_order_beats_reverse_order_under_truncation():
    """Ordering by wina puts the neurons that matter first: keeping them hurts less than keeping the rest."""
    model = make_model("bert")
    batches = make_batches(4)
    ref = [logits(model, b) for b in batches]
    order_(model, "wina", batches)
    good = copy.deepcopy(model)
    truncate_(good, 16)
    bad = copy.deepcopy(model)
    for block in find_ffns(bad):
        block.select_(torch.arange(63, 47, -1))

    def err(m):
        return sum((logits(m, b) - r).pow(2).mean() for b, r in zip(batches, ref))

    assert err(good) < err(bad)


def test_convert_twice_is_refused():
    model = make_model("bert")
    convert_(model, AWNConfig(scorer="magnitude"))
    with pytest.raises(ValueError, match="already converted"):
        convert_(model, AWNConfig(scorer="magnitude"))
