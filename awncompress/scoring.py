"""Neuron importance scores for one FFN: the initial order of AWN and the no-training baselines.

Every scorer has the same signature ``(block, mean_abs_activation or None, generator) -> scores``
(higher = more important). Activation statistics are ``E|h_j|`` over calibration tokens, padding
excluded, where ``h`` is the input of the down projection.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Mapping, Optional

import torch
from torch import nn

from .archs import FFNBlock, neuron_axis
from .errors import DataError, UnknownScorerError

Scorer = Callable[[FFNBlock, Optional[torch.Tensor], torch.Generator], torch.Tensor]


def neuron_norms(module: nn.Module, role: str) -> torch.Tensor:
    """L2 norm of each neuron's weights in a projection (a row of up, a column of down)."""
    w = module.weight.detach().float()
    axis = neuron_axis(module, role)
    return w.norm(dim=1 - axis)


def _wina(block: FFNBlock, act: Optional[torch.Tensor], _: torch.Generator) -> torch.Tensor:
    return act * neuron_norms(block.down, "out")


def _activation(block: FFNBlock, act: Optional[torch.Tensor], _: torch.Generator) -> torch.Tensor:
    return act.clone()


def _magnitude(block: FFNBlock, act: Optional[torch.Tensor], _: torch.Generator) -> torch.Tensor:
    # Gated MLPs: a neuron's input weights are its up and gate rows together.
    inputs = neuron_norms(block.up, "in").pow(2)
    if block.gate is not None:
        inputs = inputs + neuron_norms(block.gate, "in").pow(2)
    return inputs.sqrt() * neuron_norms(block.down, "out")


def _random(block: FFNBlock, act: Optional[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    return torch.rand(block.width, generator=generator)


SCORERS: dict[str, Scorer] = {
    "wina": _wina,
    "activation": _activation,
    "magnitude": _magnitude,
    "random": _random,
}
NEEDS_ACTIVATIONS = frozenset({"wina", "activation"})


def check_scorer(name: str) -> None:
    """Raise UnknownScorerError unless ``name`` is a registered scorer."""
    if name not in SCORERS:
        raise UnknownScorerError(f"unknown scorer {name!r}; choose one of: {', '.join(SCORERS)}")


@contextmanager
def _down_input_hooks(blocks: list[FFNBlock], fn: Callable[[int, torch.Tensor], None]) -> Iterator[None]:
    """Call ``fn(layer_index, h)`` with the input of each block's down projection."""
    handles = []
    for i, block in enumerate(blocks):
        target = block.adaptive if block.adaptive is not None else block.down
        handles.append(target.register_forward_pre_hook(lambda _m, args, i=i: fn(i, args[0])))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def model_inputs(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The tensors of a batch a forward pass takes, on ``device`` (labels dropped)."""
    return {k: v.to(device) for k, v in batch.items() if k != "labels" and isinstance(v, torch.Tensor)}


@torch.no_grad()
def mean_abs_activations(model: nn.Module, blocks: list[FFNBlock], batches: Iterable[Mapping[str, torch.Tensor]]) -> list[torch.Tensor]:
    """``E|h_j|`` per block over the non-padding tokens of ``batches`` (model run in eval mode)."""
    sums = [torch.zeros(b.width, dtype=torch.float64) for b in blocks]
    count = 0
    mask: list[Optional[torch.Tensor]] = [None]

    def accumulate(i: int, h: torch.Tensor) -> None:
        flat = h.detach().abs().reshape(-1, h.shape[-1]).double().cpu()
        if mask[0] is not None:
            flat = flat[mask[0]]
        sums[i] += flat.sum(0)

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with _down_input_hooks(blocks, accumulate):
            for batch in batches:
                inputs = model_inputs(batch, device)
                attn = inputs.get("attention_mask")
                mask[0] = attn.reshape(-1).bool().cpu() if attn is not None else None
                count += int(mask[0].sum()) if mask[0] is not None else int(inputs["input_ids"].numel())
                model(**inputs)
    finally:
        model.train(was_training)
    if count == 0:
        raise DataError("calibration batches held no tokens")
    return [(s / count).float() for s in sums]


def score_neurons(
    model: nn.Module,
    blocks: list[FFNBlock],
    scorer: str,
    batches: Optional[Iterable[Mapping[str, torch.Tensor]]] = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Importance score of every neuron of every block (higher = keep first).

    ``wina`` and ``activation`` need calibration ``batches``; ``magnitude`` and ``random`` do not.
    """
    check_scorer(scorer)
    acts: list[Optional[torch.Tensor]] = [None] * len(blocks)
    if scorer in NEEDS_ACTIVATIONS:
        if batches is None:
            raise DataError(f"scorer {scorer!r} needs calibration batches")
        acts = list(mean_abs_activations(model, blocks, batches))
    generator = torch.Generator().manual_seed(seed)
    return [SCORERS[scorer](block, act, generator).cpu() for block, act in zip(blocks, acts)]


def order_from_scores(scores: torch.Tensor) -> torch.Tensor:
    """Neuron indices, most important first (stable, so ties keep their original order)."""
    return torch.argsort(scores, descending=True, stable=True)
