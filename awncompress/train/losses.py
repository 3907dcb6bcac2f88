"""The fine-tune's losses: distillation from the teacher and the language-model loss.

Per-token losses over a large vocabulary are computed in chunks of rows under activation
checkpointing: only each chunk's inputs (views of the logits) are kept for the backward pass, and
the softmax of one chunk at a time is recomputed there, instead of several full
tokens × vocabulary copies living at once. Small logits (classification) take the direct path.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# Above this many logit values (tokens × vocabulary) per-token losses are chunked.
CHUNK_VALUES = 1 << 22


def _kl_rows(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.kl_div(
        F.log_softmax(student.float() / temperature, -1),
        F.log_softmax(teacher.float() / temperature, -1),
        log_target=True,
        reduction="none",
    ).sum(-1)


def _rows_per_chunk(vocab: int) -> int:
    return max(1, CHUNK_VALUES // max(1, vocab))


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float, mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """KL(teacher ‖ student) on temperature-softened logits, × T², averaged over examples or tokens
    (``mask``: which tokens count)."""
    t = temperature
    if student.numel() <= CHUNK_VALUES:
        kl = _kl_rows(student, teacher, t)
        if mask is not None:
            kl = kl[mask.bool()]
        return kl.mean() * t * t
    vocab = student.shape[-1]
    s, q = student.reshape(-1, vocab), teacher.reshape(-1, vocab)
    weight = mask.reshape(-1).to(torch.float32) if mask is not None else torch.ones(s.shape[0], device=s.device)
    total = torch.zeros((), device=s.device)
    size = _rows_per_chunk(vocab)
    # split, not s[a:b]: a slice's backward writes its gradient into a zeroed tensor of the full logits'
    # size, once per chunk (32 chunks of Gemma 3's 262,144-token logits: 32 × 512 MiB to fault in and add);
    # split's backward concatenates the chunks' gradients once.
    for s_rows, q_rows, w_rows in zip(s.split(size), q.split(size), weight.split(size)):
        total = total + (checkpoint(_kl_rows, s_rows, q_rows, t, use_reentrant=False) * w_rows).sum()
    return total / weight.sum().clamp_min(1) * t * t


def _ce_rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets, ignore_index=-100, reduction="sum")


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of [batch, seq, vocab] logits against ``labels`` (-100 ignored),
    averaged over scored tokens, as the models' own loss is; chunked over rows when large."""
    vocab = logits.shape[-1]
    s = logits[:, :-1].reshape(-1, vocab)
    targets = labels[:, 1:].reshape(-1).to(logits.device)
    count = (targets != -100).sum().clamp_min(1)
    if s.numel() <= CHUNK_VALUES:
        return _ce_rows(s, targets) / count
    total = torch.zeros((), device=logits.device)
    size = _rows_per_chunk(vocab)
    for rows, wanted in zip(s.split(size), targets.split(size)):  # split: see distillation_loss
        total = total + checkpoint(_ce_rows, rows, wanted, use_reentrant=False)
    return total / count


def hidden_loss(student: tuple, teacher: tuple, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Layer-wise distillation: the mean over layers of ``|h_s − h_t|² / |h_t|²`` per token (the
    embeddings left out), averaged over the tokens ``mask`` keeps."""
    losses = []
    for s, t in zip(student[1:], teacher[1:]):
        err = (s.float() - t.float()).pow(2).sum(-1) / t.float().pow(2).sum(-1).clamp_min(1e-6)
        losses.append(err[mask.bool()].mean() if mask is not None else err.mean())
    return torch.stack(losses).mean()
