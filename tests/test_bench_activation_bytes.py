"""The plan's activation term against what autograd saves for an AWN model's backward (bench/activation_bytes.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import make_batches
from zoo import make_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from activation_bytes import saved_bytes  # noqa: E402

from awncompress import AWNConfig, convert_  # noqa: E402
from awncompress.model.families import find_ffns  # noqa: E402
from awncompress.run.memory import activation_bytes, hidden_size  # noqa: E402


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_the_planned_activations_are_within_a_third_of_what_autograd_saves(family):
    model = make_model(family)
    convert_(model, AWNConfig(), calibration=make_batches(vocab=64))
    model.train()
    b, seq = 4, 32
    ids = torch.randint(2, 64, (b, seq), generator=torch.Generator().manual_seed(0))
    lm = family == "llama"
    labels = ids if lm else torch.zeros(b, dtype=torch.long)
    saved = saved_bytes(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    saved -= b * seq * model.config.vocab_size * 4 if lm else 0  # the loss's log-softmax: the plan's logits term
    blocks = find_ffns(model)
    planned = activation_bytes(len(blocks), hidden_size(model.config), blocks[0].base_width, b * seq, 4)
    assert 0.75 < planned / saved < 1.33, (planned, saved)
