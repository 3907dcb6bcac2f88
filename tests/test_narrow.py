"""Narrow width passes (narrow.py): a pass at width t computes only the kept neurons, with the masked
pass's outputs and gradients, in every family of the FFN table; a model where they would differ
keeps the masked passes; a fine-tune with them trains what one without them trains."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import collate, make_batches, toy_data
from torch.utils.flop_counter import FlopCounterMode
from zoo import TINY, build, inputs, make_model

from awncompress import AWNConfig, adaptive_modules, convert_
from awncompress.model.adaptive import awn_units
from awncompress.model.families import UNSHRINKABLE, find_ffns
from awncompress.model.narrow import narrowing_agrees, plan_narrowing, width_pass
from awncompress.train.finetune import PriorConfig, TrainConfig, finetune

FAMILIES = sorted(t for t in TINY if t not in UNSHRINKABLE)


def _pass(model, units, plan, narrowing, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """Logits, every gradient and the FLOPs of one width pass."""
    model.zero_grad(set_to_none=True)
    with width_pass(units, plan, narrowing), FlopCounterMode(display=False) as counter:
        logits = model(**batch).logits
        (logits.float() * torch.linspace(-1, 1, logits.shape[-1])).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads, counter.get_total_flops()


@pytest.mark.parametrize("model_type", FAMILIES)
def test_a_narrow_pass_is_the_masked_pass_for_less(model_type):
    model = build(model_type)
    batch = inputs(model_type)
    convert_(model, AWNConfig(scorer="wina"), calibration=[batch])
    model.eval()  # no dropout: the two passes must see the same function
    units = awn_units(model)
    narrowing = plan_narrowing(model, units)
    blocks = find_ffns(model)
    assert [n is not None for n in narrowing] == [b.kind != "experts" for b in blocks]
    plan = [max(1, u.width // (4 if i % 2 else 2)) for i, u in enumerate(units)]  # per-layer widths differ
    masked, masked_grads, masked_flops = _pass(model, units, plan, None, batch)
    narrow, narrow_grads, narrow_flops = _pass(model, units, plan, narrowing, batch)
    scale = max(1.0, masked.abs().max().item())
    assert (narrow - masked).abs().max().item() <= 1e-5 * scale
    assert masked_grads.keys() == narrow_grads.keys()
    for name, g in masked_grads.items():
        assert (narrow_grads[name] - g).abs().max().item() <= 1e-5 * max(1.0, g.abs().max().item()), name
    if any(narrowing):
        assert narrow_flops < masked_flops
    assert all(u.truncate_to is None for u in units) and not any("forward" in vars(m) for m in model.modules())


def test_a_model_whose_ffn_mixes_its_neurons_keeps_masked_passes():
    model = make_model("bert")
    convert_(model, AWNConfig(), calibration=make_batches())
    units = adaptive_modules(model)
    narrowing = plan_narrowing(model, units)
    batch = {k: v for k, v in collate(toy_data()[:2]).items() if k != "labels"}
    assert narrowing_agrees(model, units, narrowing, batch)
    # An FFN whose code reads every neuron (here: adds their mean) computes something else when narrowed.
    find_ffns(model)[0].up.register_forward_hook(lambda _m, _a, out: out + out.mean(-1, keepdim=True))
    model.train()
    assert not narrowing_agrees(model, units, narrowing, batch)
    assert model.training  # the check runs in eval mode and restores the mode it found


@pytest.mark.parametrize("model_type", ["bert", "llama"])
def test_a_fine_tune_with_narrow_passes_trains_what_masked_passes_train(model_type, monkeypatch):
    import awncompress.model.narrow as narrow

    data = toy_data()
    if model_type == "bert":
        base = make_model("bert")
        convert_(base, AWNConfig(), calibration=make_batches())
    else:
        base = build("llama")
        convert_(base, AWNConfig(), calibration=[inputs("llama")])
    narrowed_calls = []
    real = narrow.produce_first
    monkeypatch.setattr(narrow, "produce_first", lambda *a, **k: narrowed_calls.append(1) or real(*a, **k))
    trained = {}
    for narrow_passes in (True, False):
        model = copy.deepcopy(base)
        cfg = TrainConfig(
            steps=4,
            batch_size=8,
            lr=1e-3,
            rate_lr=0.1,
            checkpoint_every=0,
            extra_widths=[0.25],
            narrow_passes=narrow_passes,
        )
        finetune(
            model, data, collate, cfg, num_examples=len(data), prior=PriorConfig(4.6, 1.0, 1.0), quiet=True, seed=3
        )
        trained[narrow_passes] = {n: p.detach().clone() for n, p in model.named_parameters()}
        if narrow_passes:
            assert narrowed_calls, "the fine-tune never narrowed a pass"
            narrowed_calls.clear()
        else:
            assert not narrowed_calls
    for name, p in trained[False].items():
        assert (trained[True][name] - p).abs().max().item() <= 1e-4 * max(1.0, p.abs().max().item()), name
