"""The AWN profile: quantile width, sampling, prior terms, gradients reach λ."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_batches
from torch import nn
from zoo import make_model

from awncompress import AWNConfig, adaptive_modules, awn_prior, convert_, rate_for_quantile
from awncompress.model.adaptive import AdaptiveFFN


def test_initial_quantile_is_full_width_and_profile_is_geometric():
    w = AdaptiveFFN(nn.Linear(100, 8), d_ff=100, k=0.9)
    assert w.active_width() == 100
    p = w.profile()
    ratios = p[1:] / p[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))
    assert math.isclose(float(p.sum().detach()), 0.9, rel_tol=1e-4)  # k-quantile at d_ff


def test_quantile_width_follows_rate():
    w = AdaptiveFFN(nn.Linear(100, 8), d_ff=100, k=0.9, init_rate=rate_for_quantile(0.25, 0.9))
    assert w.active_width() == 25


def test_sampled_widths_follow_the_profile():
    w = AdaptiveFFN(nn.Linear(1000, 8), d_ff=1000, k=0.9, init_rate=rate_for_quantile(0.5, 0.9))
    g = torch.Generator().manual_seed(0)
    samples = torch.tensor([w.sample_width(g) for _ in range(4000)], dtype=torch.float)
    assert samples.min() >= 1 and samples.max() <= 1000
    within = (samples <= 500).float().mean().item()
    assert abs(within - 0.9 / (1 - math.exp(-w.rate().item() * 1000))) < 0.03


def test_prior_and_task_loss_reach_the_rate():
    model = make_model("bert")
    convert_(model, AWNConfig(), calibration=make_batches())
    model.train()
    out = model(**make_batches()[0], labels=torch.tensor([0, 1, 2]))
    prior = awn_prior(model, rate_mean=4.6, rate_std=1.0, weight_std=1.0)
    (out.loss + prior).backward()
    grads = [w.raw_rate.grad for w in adaptive_modules(model)]
    assert all(g is not None and g.abs() > 0 for g in grads)


def test_rate_prior_pulls_widths_down():
    model = make_model("llama")
    convert_(model, AWNConfig(), calibration=make_batches())
    rates = [w.raw_rate for w in adaptive_modules(model)]
    opt = torch.optim.Adam(rates, lr=0.1)
    for _ in range(50):
        opt.zero_grad()
        awn_prior(model, rate_mean=rate_for_quantile(0.25, 0.9), rate_std=1.0, weight_std=1.0).backward()
        opt.step()
    assert all(w.active_width() < 64 * 0.4 for w in adaptive_modules(model))


def test_the_size_weight_charges_each_layers_quantile_width():
    model = make_model("llama")
    convert_(model, AWNConfig(), calibration=make_batches())
    base = awn_prior(model, rate_mean=4.6, rate_std=1.0, weight_std=1.0)
    sized = awn_prior(model, rate_mean=4.6, rate_std=1.0, weight_std=1.0, size_weight=3.0)
    widths = sum(
        -math.log(0.1) / float(w.normalised_rate().detach()) for w in adaptive_modules(model)
    )  # in units of d_ff
    assert float(sized - base) == pytest.approx(3.0 * widths, rel=1e-5)
    rates = [w.raw_rate for w in adaptive_modules(model)]
    opt = torch.optim.Adam(rates, lr=0.1)
    for _ in range(30):  # alone (no Gaussian pull: a huge rate_std) it shrinks every layer
        opt.zero_grad()
        awn_prior(model, rate_mean=4.6, rate_std=1e6, weight_std=1e6, size_weight=1.0).backward()
        opt.step()
    assert all(w.active_width() < 64 * 0.6 for w in adaptive_modules(model))


def test_budget_widths_follow_the_rates_and_meet_the_budget():
    from awncompress.model.adaptive import widths_for_budget

    rates = [1.0, 2.0, 4.0, 8.0]
    widths = widths_for_budget(rates, d_ff=1000, fraction=0.25)
    assert widths == sorted(widths, reverse=True)  # faster decay → fewer neurons
    assert 0.24 * 4000 <= sum(widths) <= 0.25 * 4000
    assert widths_for_budget([3.0] * 4, 1000, 0.5) == [500] * 4  # equal rates → uniform
    assert widths_for_budget(rates, 1000, 1.0) == [1000] * 4
    # A layer that grew may be given more than its full width; the budget stays a fraction of the full widths.
    capped = widths_for_budget([1.0, 8.0], 1000, 0.75)
    grown = widths_for_budget([1.0, 8.0], 1000, 0.75, caps=[2000, 1000])
    assert capped[0] == 1000 and grown[0] > 1000 and grown[1] < capped[1]
    assert 0.74 * 2000 <= sum(grown) <= 0.75 * 2000
    assert widths_for_budget([1.0, 8.0], 1000, 1.0, caps=[2000, 1000])[0] > 1000
