"""How much memory a run will want, and batch sizes that fit the machine.

Being killed by the kernel for memory gives the user nothing, so the size of a training micro-batch
and of an evaluation batch is chosen from an estimate before anything runs. The estimate is
deliberately rough but errs high: weights, gradients and Adam state, the frozen teacher, per-layer
activations, and for a language model the logits, which span the vocabulary at every position
(the term that killed a 24 GB machine at the old default of 32 sequences).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from torch import nn

GIB = 1024**3
# Share of the available memory a run may plan to use: the estimate is rough, and the OS, the page
# cache and Python's allocator need the rest.
USABLE_SHARE = 0.6


def _proc_bytes(path: str, key: str) -> Optional[int]:
    """A ``key: N kB`` line of a /proc file, in bytes (None where there is none)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_bytes() -> int:
    """Memory the system could give this process now (MemAvailable; the physical total as a fallback)."""
    found = _proc_bytes("/proc/meminfo", "MemAvailable")
    return found if found is not None else int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def resident_bytes() -> int:
    """This process's resident memory now (VmRSS; 0 where /proc is not there)."""
    return _proc_bytes("/proc/self/status", "VmRSS") or 0


def hidden_size(config: Any) -> int:
    """A config's hidden (residual stream) width; 0 when it names none."""
    return int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0) or getattr(config, "n_embd", 0) or 0)


@dataclass
class ModelShape:
    """What the estimate needs to know about a model."""

    params: int
    hidden: int
    layers: int
    d_ff: int
    vocab: int
    bytes_per_value: int = 4

    ffn_params: int = 0  # the FFN weights (up, gate, down): what growth adds to
    frozen: int = 0  # weights the fine-tunes leave untrained (train.freeze_embeddings): no gradient, no Adam state

    def optimizer_bytes(self) -> int:
        """Gradients and Adam's two moments of the weights a fine-tune trains."""
        return 3 * (self.params - self.frozen) * self.bytes_per_value

    @classmethod
    def of(cls, model: nn.Module, d_ff: int, layers: int, ffn_params: int = 0) -> "ModelShape":
        config: Any = model.config
        return cls(
            params=sum(p.numel() for p in model.parameters()),
            hidden=hidden_size(config),
            layers=layers,
            d_ff=d_ff,
            vocab=int(getattr(config, "vocab_size", 0) or 0),
            ffn_params=ffn_params,
        )

    def grown(self, cap: float) -> "ModelShape":
        """The shape once every FFN layer has grown to ``cap`` × its width (``awn.grow``'s worst case):
        its weights, gradients, Adam state and activations grow with it."""
        extra = int((cap - 1) * self.ffn_params)
        return replace(self, params=self.params + extra, d_ff=int(self.d_ff * cap), ffn_params=self.ffn_params + extra)

    def cut(self, width: float) -> "ModelShape":
        """The shape with every FFN layer cut to ``width`` of its neurons (a per-width fine-tune's model)."""
        kept = int(width * self.ffn_params)
        return replace(
            self, params=self.params - self.ffn_params + kept, d_ff=max(1, int(self.d_ff * width)), ffn_params=kept
        )


def activation_bytes(
    layers: int, hidden: int, d_ff: int, tokens: int, bytes_per_value: int, checkpointed: bool = False
) -> int:
    """What a forward keeps for its backward over ``tokens`` tokens: every layer's activations, or with
    activation checkpointing each layer's input plus the one layer being recomputed."""
    per_layer = tokens * (16 * hidden + 4 * d_ff) * bytes_per_value
    if checkpointed:
        return layers * tokens * hidden * bytes_per_value + per_layer
    return layers * per_layer


def logit_bytes(vocab: int, tokens: int, lm: bool, teacher_live: bool) -> int:
    """A language model's float32 logits over ``tokens`` tokens: the output, its gradient, the loss's
    copy and, with a live teacher, the teacher's (0 for a classifier)."""
    return tokens * vocab * 4 * (4 if teacher_live else 3) if lm else 0


LOGITS_DOMINATE = 1 / 3  # the LM head's share of a forward's matmul FLOPs from which the plan warns


def logits_note(shape: Any, *, tied: bool, teacher_live: bool, bytes_per_value: int) -> Optional[str]:
    """A warning when a language model's vocabulary logits dominate its training step (None otherwise):
    the LM head's share of a forward pass's matmul FLOPs (the input embedding is a lookup; a tied head
    is the same matrix) and the logits' share of what a token holds for the backward. ``shape`` has
    ``params``, ``hidden``, ``layers``, ``d_ff`` and ``vocab`` (a ModelShape or a device plan's
    ConfigShape). A small model with a large vocabulary (Gemma 3 270M: 262,144 tokens) spends most of
    each step on its head, which awncompress does not narrow."""
    params, hidden, layers, d_ff, vocab = shape.params, shape.hidden, shape.layers, shape.d_ff, shape.vocab
    head = vocab * hidden
    matmul = params - (0 if tied else head)
    if not head or matmul <= 0:
        return None
    compute = head / matmul
    logits = logit_bytes(vocab, 1, True, teacher_live)
    memory = logits / (logits + activation_bytes(layers, hidden, d_ff, 1, bytes_per_value))
    if compute < LOGITS_DOMINATE and memory < 0.5:
        return None
    return (
        f"vocabulary logits dominate the training step: the LM head ({vocab:,} tokens × hidden {hidden}) is "
        f"{compute:.0%} of a forward pass's matrix FLOPs and its logits {memory:.0%} of the memory a token holds "
        "for the backward; the FFNs awncompress narrows are the rest, so steps are slow for the width they save"
    )


def training_bytes(
    shape: ModelShape, micro_batch: int, seq_len: int, lm: bool, teacher_live: bool, checkpointed: bool = False
) -> int:
    """Estimated peak bytes of one training micro-batch (one forward and backward)."""
    b = shape.bytes_per_value
    state = shape.params * b + shape.optimizer_bytes()  # weights, gradients, Adam's two moments
    teacher = shape.params * b if teacher_live else 0
    tokens = micro_batch * seq_len
    activations = activation_bytes(shape.layers, shape.hidden, shape.d_ff, tokens, b, checkpointed)
    return int(state + teacher + activations + logit_bytes(shape.vocab, tokens, lm, teacher_live))


def stage_bytes(
    shape: ModelShape,
    *,
    micro_batch: int,
    seq_len: int,
    lm: bool,
    teacher_live: bool,
    checkpointed: bool,
    dense_stage: bool,
    trained_width: float,
    eval_batch: int,
) -> dict[str, int]:
    """Bytes each stage of a convert run holds on top of the loaded model (whose weights the process
    already holds when the plan is made), at its worst batch (``micro_batch`` × ``seq_len`` tokens):

    * ``dense head``: gradients and Adam's two moments, activations and logits;
    * ``awn fine-tune``: the frozen dense copy (the teacher, or the evaluation's reference when the
      teacher is a logit table), gradients and Adam of the trained weights, activations and logits (the
      teacher's too when live);
    * ``evaluation``: the dense copy and a baseline's ordered copy, then either a full copy being cut
      and one evaluation batch, or (``trained_width`` > 0: the widest per-width fine-tune, as a
      fraction of every FFN) that cut with its gradients, Adam state, activations and logits.
    """
    weights = shape.params * shape.bytes_per_value
    tokens = micro_batch * seq_len
    b = shape.bytes_per_value

    def trained(s: ModelShape) -> int:
        acts = activation_bytes(s.layers, s.hidden, s.d_ff, tokens, b, checkpointed)
        return s.optimizer_bytes() + acts + logit_bytes(s.vocab, tokens, lm, teacher_live)

    stages = {}
    if dense_stage:
        acts = activation_bytes(shape.layers, shape.hidden, shape.d_ff, tokens, b, checkpointed)
        stages["dense head"] = 3 * weights + acts + logit_bytes(shape.vocab, tokens, lm, False)
    stages["awn fine-tune"] = weights + trained(shape)
    scoring = evaluation_bytes(shape, eval_batch, seq_len, lm) - weights
    evaluation = 3 * weights + scoring
    if trained_width > 0:
        cut = shape.cut(min(1.0, trained_width))
        evaluation = max(evaluation, 2 * weights + cut.params * b + trained(cut))
    stages["evaluation"] = evaluation
    return stages


def evaluation_bytes(shape: ModelShape, batch: int, seq_len: int, lm: bool) -> int:
    """Estimated peak bytes of one evaluation batch (no gradients)."""
    b = shape.bytes_per_value
    tokens = batch * seq_len
    logits = tokens * shape.vocab * b * 3 if lm else 0  # the logits and the loss's float copies
    return int(shape.params * b + shape.layers * tokens * 4 * shape.hidden * b + logits)


def fit_micro_batch(
    shape: ModelShape,
    batch: int,
    seq_len: int,
    lm: bool,
    teacher_live: bool,
    budget: Optional[int] = None,
    checkpointed: bool = False,
) -> Optional[int]:
    """The largest divisor of ``batch`` whose training estimate fits ``budget`` (None: none fits)."""
    budget = int(available_bytes() * USABLE_SHARE) if budget is None else budget
    for micro in sorted((d for d in range(1, batch + 1) if batch % d == 0), reverse=True):
        if training_bytes(shape, micro, seq_len, lm, teacher_live, checkpointed) <= budget:
            return micro
    return None


def fit_eval_batch(shape: ModelShape, batch: int, seq_len: int, lm: bool, budget: Optional[int] = None) -> int:
    """The largest evaluation batch up to ``batch`` whose estimate fits ``budget`` (at least 1)."""
    budget = int(available_bytes() * USABLE_SHARE) if budget is None else budget
    while batch > 1 and evaluation_bytes(shape, batch, seq_len, lm) > budget:
        batch //= 2
    return max(1, batch)
