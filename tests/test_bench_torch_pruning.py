"""bench/torch_pruning_peer.py: torch-pruning's dependency-graph pruner with its Taylor importance cuts
exactly the FFN neurons asked for, nothing else, and the same ones as awncompress's `taylor` scorer
(both sum |w · ∂L/∂w| over each neuron's up row and down column): two implementations, one answer."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from zoo import build, inputs

from awncompress.model.surgery import layer_widths, order_, truncate_

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from torch_pruning_peer import prune_ffns  # noqa: E402


def _batches(family: str = "bert", n: int = 3) -> list[dict[str, torch.Tensor]]:
    out = []
    for seed in range(n):
        batch = inputs(family, seed=seed)
        if family == "llama":  # a causal LM's loss: the next token
            batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        else:
            batch["labels"] = torch.randint(
                0, 2, (batch["input_ids"].shape[0],), generator=torch.Generator().manual_seed(seed)
            )
        out.append(batch)
    return out


# BERT: an up row, its bias and a down column per neuron; Llama (gated, no biases): gate and up rows, a down column.
PER_NEURON = {"bert": lambda hidden: 2 * hidden + 1, "llama": lambda hidden: 3 * hidden}


@pytest.mark.parametrize("family,keep", [("bert", [16, 16]), ("bert", [8, 40]), ("llama", [8, 24])])
def test_torch_pruning_keeps_the_neurons_taylor_keeps(family, keep):
    torch.manual_seed(0)
    model = (build("bert", num_labels=2) if family == "bert" else build("llama", head="lm")).eval()
    batches = _batches(family)
    pruned, ours = copy.deepcopy(model), copy.deepcopy(model)
    params = sum(p.numel() for p in model.parameters())
    prune_ffns(pruned, keep, batches)  # a decoder too: only the FFN groups are traced (it hung on Llama)
    assert layer_widths(pruned) == keep
    d_ff, hidden = model.config.intermediate_size, model.config.hidden_size
    removed = sum(d_ff - k for k in keep) * PER_NEURON[family](hidden)
    assert sum(p.numel() for p in pruned.parameters()) == params - removed  # nothing but FFN neurons went
    order_(ours, "taylor", batches)
    truncate_(ours, keep)
    x = inputs(family, seed=7)
    with torch.no_grad():
        torch.testing.assert_close(pruned(**x).logits, ours(**x).logits, rtol=1e-5, atol=1e-6)


def test_a_cut_torch_pruning_cannot_make_is_an_error():
    model = build("bert", num_labels=2).eval()
    with pytest.raises(ValueError, match="torch-pruning left FFN widths"):
        prune_ffns(model, [16, 16, 16], _batches(n=1))  # three widths for a 2-layer model
