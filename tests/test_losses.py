"""The fine-tune's losses: chunked under checkpointing they equal the direct computation, values
and gradients; the LM loss equals the model's own."""

from __future__ import annotations

import pytest
import torch
from zoo import make_model

from awncompress.train import losses


def _grads(fn, *tensors):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    value = fn(*leaves)
    value.backward()
    return value.detach(), [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("masked", [False, True])
def test_chunked_distillation_equals_the_direct_one(monkeypatch, masked):
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(3, 7, 50, generator=g), torch.randn(3, 7, 50, generator=g)
    mask = (torch.rand(3, 7, generator=g) > 0.3).long() if masked else None
    direct, (grad_direct, _) = _grads(lambda s, t: losses.distillation_loss(s, t, 2.0, mask), student, teacher)
    monkeypatch.setattr(losses, "CHUNK_VALUES", 60)  # a chunk of one row: 21 chunks
    chunked, (grad_chunked, _) = _grads(lambda s, t: losses.distillation_loss(s, t, 2.0, mask), student, teacher)
    assert torch.allclose(direct, chunked, atol=1e-6) and torch.allclose(grad_direct, grad_chunked, atol=1e-7)


def test_lm_loss_is_the_models_own_and_chunks_the_same(monkeypatch):
    model = make_model("llama")
    ids = torch.randint(2, 97, (3, 9))
    labels = ids.clone()
    labels[:, 0] = -100
    labels[2, 6:] = -100
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels)
    assert torch.allclose(losses.lm_loss(out.logits, labels), out.loss, atol=1e-6)
    direct, (grad_direct,) = _grads(lambda x: losses.lm_loss(x, labels), out.logits)
    monkeypatch.setattr(losses, "CHUNK_VALUES", 200)
    chunked, (grad_chunked,) = _grads(lambda x: losses.lm_loss(x, labels), out.logits)
    assert torch.allclose(direct, chunked, atol=1e-6) and torch.allclose(grad_direct, grad_chunked, atol=1e-7)
