"""A family awncompress does not know: one hand-written FFNSpec at convert_ serves every later step."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import logits, make_batches
from torch.utils.flop_counter import FlopCounterMode
from zoo import ToyForSequenceClassification, make_toy

from awncompress import (
    AWNConfig,
    FFNSpec,
    UnsupportedModelError,
    awn_prior,
    convert_,
    export_uniform,
    fold_,
    load_pretrained,
    read_provenance,
    truncate_,
)
from awncompress.evaluate.methods import dynamic_wina
from awncompress.model.flops import count_flops

TOY_SPEC = FFNSpec(up="feed_forward.w_in", down="feed_forward.w_out", d_ff_attr="ffn_size")


def test_an_unknown_family_without_a_spec_is_refused():
    with pytest.raises(UnsupportedModelError, match="toy-ffn.*Name the FFN modules yourself"):
        convert_(make_toy())


def test_the_spec_given_to_convert_serves_prior_fold_flops_export_and_load(tmp_path):
    model = make_toy()
    batch = make_batches()[0]
    before = logits(model, batch)
    convert_(model, AWNConfig(spec=TOY_SPEC), calibration=make_batches())
    assert torch.allclose(logits(model, batch), before, atol=1e-5)
    assert float(awn_prior(model, 4.6, 1.0, 1.0).detach()) > 0
    assert count_flops(model, 10).source == "flop-counter"
    fold_(model)
    assert torch.allclose(logits(model, batch), before, atol=1e-5)
    with dynamic_wina(model, 0.25) as ks:
        assert ks == [16, 16] and not torch.allclose(logits(model, batch), before, atol=1e-3)

    folder = export_uniform(model, tmp_path / "w", 0.5)
    record = read_provenance(folder)
    assert record["ffn_spec"]["up"] == "feed_forward.w_in" and record["layer_widths"] == [32, 32]
    loaded = load_pretrained(folder, model_class=ToyForSequenceClassification)
    assert loaded.config.ffn_size == 32
    cut = copy.deepcopy(model)
    truncate_(cut, 0.5)
    assert torch.allclose(logits(loaded, batch), logits(cut, batch), atol=1e-6)
    assert not torch.allclose(logits(loaded, batch), before, atol=1e-3)  # the cut is real


def test_flops_of_a_family_without_a_formula_are_counted():
    model = make_toy()
    truncate_(copy.deepcopy(model), 1.0, spec=TOY_SPEC)  # records nothing on `model` itself
    convert_(model, AWNConfig(scorer="none", spec=TOY_SPEC))
    fold_(model)
    ids = torch.full((1, 12), 3)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert count_flops(model, 12).total == counter.get_total_flops()
    half = copy.deepcopy(model)
    truncate_(half, [16, 40])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        half(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert count_flops(model, 12, ffn_widths=[16, 40]).total == counter.get_total_flops()
    assert count_flops(half, 12).ffn < count_flops(model, 12).ffn
