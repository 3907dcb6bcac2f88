"""FFN discovery: the table, the generic fallback, custom specs and the error for unknown models."""

from __future__ import annotations

import pytest
import torch
from conftest import make_batches
from torch import nn
from zoo import make_model

from awncompress import AWNConfig, FFNSpec, UnknownScorerError, UnsupportedModelError, convert_, find_ffns


def test_every_family_has_two_ffn_blocks(family):
    blocks = find_ffns(make_model(family))
    assert [b.width for b in blocks] == [64, 64]
    assert (blocks[0].gate is not None) == (family in ("llama", "mistral", "qwen2", "qwen3"))


def test_unknown_model_type_with_bert_names_uses_fallback():
    model = make_model("bert")
    model.config.model_type = "my-bert-fork"
    assert len(find_ffns(model)) == 2


def test_unknown_model_type_with_gated_names_uses_fallback():
    model = make_model("llama")
    model.config.model_type = "my-llama-fork"
    assert find_ffns(model)[0].gate is not None


class Toy(nn.Module):
    """A model whose FFN modules have names no table knows."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.ModuleDict({"fc1": nn.Linear(8, 16), "fc2": nn.Linear(16, 8)}) for _ in range(2))

    def forward(self, x):
        for b in self.blocks:
            x = x + b["fc2"](torch.relu(b["fc1"](x)))
        return x


def test_model_without_ffn_gets_a_clear_error_naming_its_modules():
    with pytest.raises(UnsupportedModelError, match=r"blocks\.0\.fc1.*FFNSpec\(up="):
        find_ffns(Toy())


def test_custom_spec_converts_an_unknown_model():
    torch.manual_seed(0)
    model = Toy()
    x = torch.randn(4, 8)
    before = model(x)
    convert_(model, AWNConfig(scorer="magnitude", spec=FFNSpec(up="fc1", down="fc2")))
    assert torch.allclose(model(x), before, atol=1e-6)


def test_unknown_scorer():
    with pytest.raises(UnknownScorerError, match="wina"):
        convert_(make_model("bert"), AWNConfig(scorer="entropy"), calibration=make_batches())
