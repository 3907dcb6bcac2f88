"""Gathering what scorers read, and scoring every neuron of a model with one of them.

The scorers themselves (one formula each) are in ``scorers/``. Activation statistics are taken
over calibration tokens, padding excluded, of ``h``, the input of the down projection: E|h_j| and
sqrt(E h_j²) (see :class:`~awncompress.model.scorers.ActivationStats`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import torch
from torch import nn

from ..errors import DataError
from .ffn import FFNBlock
from .scorers import ActivationStats, get_scorer


def model_inputs(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The tensors of a batch a forward pass takes, on ``device`` (labels dropped)."""
    return {k: v.to(device) for k, v in batch.items() if k != "labels" and isinstance(v, torch.Tensor)}


class _Stats:
    """Running sums of |h_j| per block (per expert for experts) and the token counts they are over."""

    def __init__(self, blocks: list[FFNBlock]) -> None:
        shape = lambda b: (b.experts, b.width) if b.kind == "experts" else (b.width,)  # noqa: E731
        self.sums = [torch.zeros(shape(b), dtype=torch.float64) for b in blocks]
        self.squares = [torch.zeros(shape(b), dtype=torch.float64) for b in blocks]
        self.signed = [torch.zeros(shape(b), dtype=torch.float64) for b in blocks]
        self.counts = [torch.zeros(shape(b)[:-1] or (1,), dtype=torch.float64) for b in blocks]
        self.mask: Optional[torch.Tensor] = None  # which flattened tokens are not padding

    def dense(self, i: int, h: torch.Tensor) -> None:
        flat = h.detach().reshape(-1, h.shape[-1]).double().cpu()
        if self.mask is not None and len(self.mask) == len(flat):  # (a decoder stack has its own length)
            flat = flat[self.mask]
        self.sums[i] += flat.abs().sum(0)
        self.squares[i] += flat.pow(2).sum(0)
        self.signed[i] += flat.sum(0)
        self.counts[i] += flat.shape[0]

    def expert(self, i: int, expert: int, tokens: torch.Tensor, h: torch.Tensor) -> None:
        rows = h.detach().double().cpu()
        if self.mask is not None and int(tokens.max()) < len(self.mask):
            rows = rows[self.mask[tokens.cpu()]]
        self.sums[i][expert] += rows.abs().sum(0)
        self.squares[i][expert] += rows.pow(2).sum(0)
        self.signed[i][expert] += rows.sum(0)
        self.counts[i][expert] += rows.shape[0]

    def means(self) -> list[ActivationStats]:
        def mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
            return total / count.clamp_min(1).unsqueeze(-1) if total.dim() == 2 else total / count.clamp_min(1)

        return [
            ActivationStats(mean(s, c).float(), mean(q, c).sqrt().float(), mean(m, c).float())
            for s, q, m, c in zip(self.sums, self.squares, self.signed, self.counts)
        ]


@torch.no_grad()
def run_calibration(
    model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]], stats: Any, handles: Sequence[Any]
) -> None:
    """Run ``model`` in eval mode over ``batches`` while the hooks ``handles`` feed ``stats`` (whose
    ``mask`` is set to each batch's flattened non-padding mask first); the hooks are removed after.
    DataError when the batches hold no tokens."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    tokens = 0
    try:
        for batch in batches:
            inputs = model_inputs(batch, device)
            attn = inputs.get("attention_mask")
            mask = attn.reshape(-1).bool().cpu() if attn is not None else None
            stats.mask = mask
            tokens += int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
            model(**inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    if tokens == 0:
        raise DataError("calibration batches held no tokens")


def activation_stats(
    model: nn.Module, blocks: list[FFNBlock], batches: Iterable[Mapping[str, torch.Tensor]]
) -> list[ActivationStats]:
    """E|h_j| and sqrt(E h_j²) per block over the non-padding tokens of ``batches`` (model run in eval mode);
    for a mixture-of-experts block, per expert over the tokens routed to it."""
    stats = _Stats(blocks)
    handles = [
        b.hook_expert_hidden(lambda e, t, h, i=i: stats.expert(i, e, t, h))
        if b.kind == "experts"
        else b.hook_hidden(lambda h, i=i: stats.dense(i, h))
        for i, b in enumerate(blocks)
    ]
    run_calibration(model, batches, stats, handles)
    return stats.means()


def score_neurons(
    model: nn.Module,
    blocks: list[FFNBlock],
    scorer: str,
    batches: Optional[Iterable[Mapping[str, torch.Tensor]]] = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Importance score of every neuron of every block (higher = keep first), by the registered
    ``scorer``; one that needs calibration (``wina``, ``activation``, ...) needs ``batches``."""
    rule = get_scorer(scorer)
    if rule.needs_calibration and batches is None:
        raise DataError(f"scorer {scorer!r} needs calibration batches")
    generator = torch.Generator().manual_seed(seed)
    if rule.needs_gradients:
        with loss_gradients(model, [w for block in blocks for w in block.parameters()], batches, scorer):
            return [rule.neurons(block, None, generator).detach().cpu() for block in blocks]
    stats = list(activation_stats(model, blocks, batches)) if rule.needs_calibration else [None] * len(blocks)
    return [rule.neurons(block, s, generator).cpu() for block, s in zip(blocks, stats)]


@contextmanager
def loss_gradients(
    model: nn.Module, weights: list[torch.Tensor], batches: Iterable[Mapping[str, torch.Tensor]], scorer: str = "taylor"
) -> Iterator[None]:
    """While open, ``weights`` hold the gradient of the task loss summed over ``batches`` (model in
    eval mode, no other parameter gets one); after, the model's gradients, ``requires_grad`` flags
    and mode are as before. DataError when a batch has no labels."""
    params = list(model.parameters())
    flags, grads, was_training = [p.requires_grad for p in params], [p.grad for p in params], model.training
    wanted = {id(w) for w in weights}
    device = next(model.parameters()).device
    try:
        for p in params:
            p.requires_grad_(id(p) in wanted)
            p.grad = None
        model.eval()
        for batch in batches:
            if "labels" not in batch:
                raise DataError(f"scorer {scorer!r} needs labelled calibration batches (it takes the loss's gradient)")
            inputs = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            model(**inputs).loss.backward()
        yield
    finally:
        for p, flag, grad in zip(params, flags, grads):
            p.requires_grad_(flag)
            p.grad = grad
        model.train(was_training)


def order_from_scores(scores: torch.Tensor) -> torch.Tensor:
    """Neuron indices, most important first (stable, so ties keep their original order); along the
    last axis, so a mixture-of-experts block gets one order per expert."""
    return torch.argsort(scores, dim=-1, descending=True, stable=True)
