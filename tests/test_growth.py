"""Growth (issue 31): new neurons leave the function unchanged, and TINY's directions are its formula."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import collate, toy_data
from torch import nn
from zoo import build, inputs

from awncompress.errors import TrainingError, UnsupportedModelError
from awncompress.model.adaptive import adaptive_modules, rate_for_quantile
from awncompress.model.families import find_ffns
from awncompress.model.growth import BottleneckStats, grow_, grown_width, new_input_rows
from awncompress.model.surgery import AWNConfig, convert_, fold_, full_widths, layer_widths, truncate_
from awncompress.train.finetune import PriorConfig, TrainConfig, finetune
from awncompress.train.growing import GrowthConfig, grow_layers_
from awncompress.train.optimizer import optimizer_for


def _logits(model: nn.Module, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize(
    "model_type",
    ["bert", "gpt2", "llama", "phi3", "modernbert"],  # plain Linear with bias, Conv1D, gated, fused [gate; up] ×2
)
@pytest.mark.parametrize("init", ["tiny", "random"])
def test_growth_keeps_the_function_and_appends_after_the_order(model_type, init):
    model = build(model_type, head="lm" if model_type in ("gpt2", "llama", "phi3") else "auto")
    batch = inputs(model_type)
    before = _logits(model, batch)
    convert_(model, AWNConfig(scorer="magnitude"))
    blocks = find_ffns(model)
    width = blocks[0].width
    old_rows = blocks[0].in_norms().clone()
    hidden = model.config.hidden_size
    directions = torch.randn(3, hidden) if init == "tiny" else None
    up, gate = new_input_rows(blocks[0], 5, init, torch.Generator().manual_seed(0), directions)
    grow_(blocks[0], up, gate)
    after = find_ffns(model)[0]
    assert after.width == width + 5 and after.base_width == width
    assert after.adaptive.width == width + 5  # the wrapper consumes the new neurons
    assert torch.allclose(after.in_norms()[:width], old_rows)  # the learned order is untouched, new ones last
    assert torch.all(after.out_norms()[width:] == 0)
    assert torch.allclose(_logits(model, batch), before, atol=1e-5)
    # Folded, the grown model still computes the same; full widths (what fractions mean) are the pretrained ones.
    fold_(model)
    assert torch.allclose(_logits(model, batch), before, atol=1e-5)
    assert full_widths(find_ffns(model))[0] == width
    assert layer_widths(model)[0] == width + 5


def test_tiny_rows_take_the_given_directions_at_the_layers_norm():
    model = build("llama", head="lm")
    block = find_ffns(model)[0]
    directions = torch.randn(2, model.config.hidden_size)
    up, gate = new_input_rows(block, 4, "tiny", torch.Generator().manual_seed(1), directions)
    cos = nn.functional.cosine_similarity(up[:2], directions, dim=1)
    assert torch.allclose(cos, torch.ones(2), atol=1e-5)
    assert torch.allclose(up.norm(dim=1), block.up.weight.norm(dim=1).mean().expand(4), rtol=1e-4)
    assert gate is not None and torch.allclose(gate.norm(dim=1), block.gate.weight.norm(dim=1).mean().expand(4))


def test_bottleneck_directions_are_tinys_formula():
    g = torch.Generator().manual_seed(0)
    t, h, d = 400, 6, 10
    x = torch.randn(t, h, generator=g)
    hidden = torch.tanh(x @ torch.randn(h, d, generator=g))
    grad = torch.randn(t, h, generator=g)
    stats = BottleneckStats()
    stats.add(x[:150], hidden[:150], grad[:150])  # sums over two micro-batches are one sum
    stats.add(x[150:], hidden[150:], grad[150:])
    got = stats.directions(3)
    # Direct computation (float64, least squares for δW*, matrix square root by eigh).
    x, hidden, v = x.double(), hidden.double(), -grad.double()
    delta = torch.linalg.lstsq(hidden, v).solution  # [d, h]: δW*ᵀ
    bottleneck = v - hidden @ delta
    s = x.T @ x / t
    n = x.T @ bottleneck / t
    e, q = torch.linalg.eigh(s)
    inv_sqrt = q @ torch.diag(e.rsqrt()) @ q.T
    u, sigma, _ = torch.linalg.svd(inv_sqrt @ n)
    want = ((inv_sqrt @ u[:, :3]) * sigma[:3].sqrt()).T
    signs = torch.sign((got.double() * want).sum(1))  # singular vectors are defined up to sign
    assert torch.allclose(got.double() * signs[:, None], want, rtol=2e-3, atol=2e-3)
    # The bottleneck is orthogonal to what the existing down projection can express.
    assert torch.allclose(hidden.T @ bottleneck / t, torch.zeros(d, h, dtype=torch.float64), atol=1e-8)


def test_grown_width_follows_the_quantile_in_whole_multiples_up_to_the_cap():
    assert grown_width(64, 64.0, 64, 2.0) == 64  # at its width: no growth
    assert grown_width(64, 64.5, 64, 2.0) == 72
    assert grown_width(64, 90.2, 64, 2.0) == 96
    assert grown_width(64, 500.0, 64, 2.0) == 128
    assert grown_width(128, 500.0, 64, 2.0) == 128


def test_experts_cannot_grow():
    model = build("mixtral", head="lm")
    block = find_ffns(model)[0]
    with pytest.raises(UnsupportedModelError, match="mixture-of-experts"):
        grow_(block, torch.zeros(1, model.config.hidden_size))


def test_a_grown_model_truncates_to_fractions_of_its_pretrained_width_and_per_layer_past_it():
    model = build("llama", head="lm")
    width = layer_widths(model)[0]
    block = find_ffns(model)[1]
    grow_(block, *new_input_rows(block, 8, "random", torch.Generator().manual_seed(0)))
    assert truncate_(copy.deepcopy(model), 0.5) == [width // 2, width // 2]
    wide = truncate_(model, [width // 2, width + 8])
    assert wide == [width // 2, width + 8]


# --- growth during the fine-tune ---------------------------------------------------------------------------

PRIOR = PriorConfig(rate_prior_mean=4.6, rate_prior_std=1.0, weight_prior_std=1.0)


def _wide_quantile_bert() -> nn.Module:
    """A converted tiny BERT whose profiles' 0.9-quantile is 1.5 × its width: due to grow at once."""
    model = build("bert")
    convert_(model, AWNConfig(scorer="magnitude", init_rate=rate_for_quantile(1.5, 0.9)))
    return model


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(steps=4, batch_size=8, lr=1e-3, rate_lr=0.1, checkpoint_every=0), **kw})


@pytest.mark.parametrize("init", ["tiny", "random"])
def test_a_layer_grows_where_its_quantile_passes_its_width_and_the_loss_does_not_jump(init):
    model = _wide_quantile_bert()
    data = toy_data()
    width = layer_widths(model)[0]
    batch = collate(data[:8])
    before = _logits(model, batch)
    optimizer = optimizer_for(model, _cfg())
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()  # Adam moments exist for every parameter
    optimizer.zero_grad()
    before = _logits(model, batch)
    quantiles = [-math.log(0.1) / float(w.rate().detach()) for w in adaptive_modules(model)]
    grown = grow_layers_(
        model,
        GrowthConfig(cap=2.0, init=init),
        optimizer,
        lambda: (model(**batch).loss, batch["attention_mask"]),
        torch.Generator().manual_seed(0),
    )
    # each layer's quantile (near 1.5 × width), rounded up to whole multiples of 8
    assert list(grown.values()) == [width + 8 * -(-(int(q) + 1 - width) // 8) for q in quantiles]
    assert all(1.3 * width < w <= 2 * width for w in grown.values())
    assert torch.allclose(_logits(model, batch), before, atol=1e-5)  # the function did not change
    assert all(p.grad is None for p in model.parameters())  # TINY's pass left no gradient behind
    params = {id(p) for p in model.parameters()}
    for group in optimizer.param_groups:  # the optimizer steps the grown parameters, with zero moments for new rows
        assert all(id(p) in params for p in group["params"])
    up = find_ffns(model)[0].up.weight
    assert optimizer.state[up]["exp_avg"].shape == up.shape
    assert torch.all(optimizer.state[up]["exp_avg"][width:] == 0)
    model(**batch).loss.backward()
    optimizer.step()  # and the next step runs
    assert torch.any(find_ffns(model)[0].down.weight[:, width:] != 0)  # the new neurons' output weights moved


def test_growth_stops_at_the_cap_and_a_resumed_run_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    data = toy_data()
    growth = GrowthConfig(cap=1.25, init="tiny", every=2)
    straight = _wide_quantile_bert()
    width = layer_widths(straight)[0]
    finetune(straight, data, collate, _cfg(steps=6), num_examples=48, prior=PRIOR, quiet=True, growth=growth)
    assert layer_widths(straight) == [int(1.25 * width)] * 2

    import awncompress.train.finetune as ft

    real_save = ft.save_checkpoint

    def save_then_die(folder, model, optimizer, state):
        real_save(folder, model, optimizer, state)
        raise KeyboardInterrupt  # killed after the step-3 checkpoint, with the layers grown at step 2

    monkeypatch.setattr(ft, "save_checkpoint", save_then_die)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        finetune(
            _wide_quantile_bert(), data, collate, _cfg(steps=6, checkpoint_every=3), num_examples=48,
            prior=PRIOR, checkpoint_dir=ckpt, quiet=True, growth=growth,
        )  # fmt: skip
    monkeypatch.setattr(ft, "save_checkpoint", real_save)
    resumed = _wide_quantile_bert()
    finetune(
        resumed, data, collate, _cfg(steps=6, checkpoint_every=3), num_examples=48,
        prior=PRIOR, checkpoint_dir=ckpt, resume=True, quiet=True, growth=growth,
    )  # fmt: skip
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6), name


def test_growth_refuses_several_processes_before_training(monkeypatch):
    import accelerate

    monkeypatch.setattr(accelerate.Accelerator, "num_processes", property(lambda self: 2))
    model = _wide_quantile_bert()
    with pytest.raises(TrainingError, match="one process"):
        finetune(model, toy_data(), collate, _cfg(), num_examples=48, prior=PRIOR, quiet=True, growth=GrowthConfig())


def test_a_grown_per_layer_shape_is_timed_on_a_model_grown_to_it():
    from awncompress.evaluate.latency import LatencyConfig
    from awncompress.evaluate.matrix import _time_shapes

    model = build("llama", head="lm")
    width = layer_widths(model)[0]
    grown = ((width + 16, width // 2), None)  # layer 0 past the dense width, as a grown run's per-layer export
    timings = _time_shapes(model, {grown}, LatencyConfig(batch_size=1, seq_len=8, warmup=1, repeats=2))
    assert set(timings) == {grown} and layer_widths(model) == [width, width]  # the dense model is untouched
