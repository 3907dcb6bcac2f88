"""Analytic FLOPs per example, by formula, for the model families awncompress supports.

Only matrix multiplications are counted, at ``2·m·n·k`` each (one multiply and one add per term),
which is the convention of ``torch.utils.flop_counter.FlopCounterMode``; elementwise work (norms,
activations, softmax, rotary embeddings, residual adds) and embedding look-ups are ignored. The
attention scores are counted dense (``S×S`` per head, causal masking does not halve them), because
that is what the kernels compute.

The FFN part is counted per layer from the widths actually present in the model (per-layer
truncation slices modules in place, so widths differ between layers), or from ``ffn_widths`` given
by the caller, e.g. the number of neurons a dynamic top-k scheme keeps active.

Why a formula rather than ``FlopCounterMode``: it needs no forward pass, no tokenizer and no
device, works at any sequence length instantly, and can count widths the model does not have.
The tests check the formula against ``FlopCounterMode`` for every family. A model of a family with
no formula (e.g. one converted with a hand-written ``FFNSpec``) is counted with ``FlopCounterMode``
itself, one forward pass per sequence length, and its counts say so (``source="flop-counter"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import UnsupportedModelError, WidthError
from .families import FFNBlock, find_ffns
from .heads import find_heads, has_head_spec

__all__ = ["FlopCount", "count_flops", "has_formula", "FORMULA_MODEL_TYPES"]


@dataclass
class FlopCount:
    """Matmul FLOPs of one forward pass over one example, split by where they are spent."""

    total: int
    ffn: int
    attention: int  # q/k/v/o projections + attention scores + weighted sum of values
    head: int  # pooler and classifier, or the LM head
    other: int  # e.g. ELECTRA's embedding projection; everything but the FFN when counted
    source: str = "formula"  # or "flop-counter": measured with FlopCounterMode (no formula for the family)

    @property
    def ffn_share(self) -> float:
        """Fraction of all FLOPs spent in the FFN blocks (what truncating them can save)."""
        return self.ffn / self.total if self.total else 0.0


# Families the formulas know (where their FFNs are comes from archs.find_ffns). Decoder heads run
# on every position, encoder classification heads on the first token only.
_ENCODERS = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert")
_DECODERS = ("gpt2", "llama", "mistral", "qwen2", "qwen3")
FORMULA_MODEL_TYPES: tuple[str, ...] = _ENCODERS + _DECODERS


def has_formula(model_type: Optional[str]) -> bool:
    """Whether FLOPs of this model_type are counted by formula (else by FlopCounterMode)."""
    return model_type in FORMULA_MODEL_TYPES


# Head kinds, recognised from the class name (e.g. "BertForSequenceClassification").
_HEAD_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("ForSequenceClassification", "seq-cls"),
    ("ForTokenClassification", "token-cls"),
    ("ForQuestionAnswering", "qa"),
    ("ForMaskedLM", "lm"),
    ("ForCausalLM", "lm"),
    ("LMHeadModel", "lm"),  # GPT2LMHeadModel, BertLMHeadModel
)


def _family(model: nn.Module) -> str:
    config = model.config
    model_type = config.model_type
    if getattr(config, "add_cross_attention", False):
        # Cross-attention cost depends on the encoder's length, which one seq_len cannot say.
        raise UnsupportedModelError(f"count_flops does not count cross-attention ({type(model).__name__})")
    return model_type


def _head_kind(model: nn.Module) -> str:
    if getattr(model, "base_model", model) is model:
        return "base"
    name = type(model).__name__
    for suffix, kind in _HEAD_SUFFIXES:
        if name.endswith(suffix):
            return kind
    raise UnsupportedModelError(
        f"count_flops does not know the head of {name}; supported: base models and "
        "*ForSequenceClassification, *ForTokenClassification, *ForQuestionAnswering, *ForMaskedLM, *ForCausalLM"
    )


def _head_flops(model: nn.Module, model_type: str, seq_len: int, hidden: int) -> int:
    """FLOPs of the pooler (if the base model has one) and the task head, as each class implements it."""
    config = model.config
    s, h = seq_len, hidden
    labels = int(getattr(config, "num_labels", 2))
    vocab = int(config.vocab_size)
    # BERT/RoBERTa base models keep a tanh pooler on the first token unless built without one.
    pooler = 2 * h * h if getattr(model.base_model, "pooler", None) is not None else 0
    kind = _head_kind(model)
    if kind == "base":
        return pooler
    if model_type in _DECODERS:
        # GPT-2 and the generic Llama-style heads run on every position (sequence classification
        # picks the last non-padding token *after* scoring all of them); QA heads are fixed at 2.
        outputs = {"seq-cls": labels, "token-cls": labels, "qa": 2, "lm": vocab}[kind]
        return pooler + 2 * s * h * outputs
    if kind == "seq-cls":
        if model_type == "bert":
            return pooler + 2 * h * labels  # pooler (first token) + classifier
        # RoBERTa/XLM-R/ELECTRA classification head and DistilBERT's pre_classifier + classifier:
        # a dense h→h then h→labels, on the first token only.
        return pooler + 2 * h * h + 2 * h * labels
    if kind in ("token-cls", "qa"):
        return pooler + 2 * s * h * labels  # one linear on every position
    # Masked / causal LM heads on encoders: a transform then the vocabulary projection, every position.
    if model_type == "electra":
        emb = int(config.embedding_size)  # the generator head projects back to embedding_size first
        return pooler + 2 * s * h * emb + 2 * s * emb * vocab
    return pooler + 2 * s * h * h + 2 * s * h * vocab


def _non_ffn_key(model: nn.Module, ffn_ids: set[int], seq_len: int) -> tuple:
    shapes = tuple(
        (n, tuple(p.shape))
        for m in model.modules()
        if id(m) not in ffn_ids
        for n, p in m.named_parameters(recurse=False)
    )
    return type(model).__name__, seq_len, shapes


# Per (architecture, non-FFN parameter shapes, length): the non-FFN FLOPs the counter measured and
# the tokens each FFN block processed. Every width of one model shares them, so each length costs
# one forward pass.
_COUNTED: dict[tuple, tuple[int, list[int]]] = {}


def _token_hooks(blocks: list[FFNBlock], tokens: list[int]) -> list:
    """Count the token rows each block processes: a shared FFN (ALBERT) once per layer that runs it,
    an experts block once per (token, chosen expert)."""

    def dense(i: int):
        def hook(_m, args):
            tokens[i] += args[0].numel() // args[0].shape[-1]

        return hook

    def experts(i: int):
        def hook(_m, args, kwargs):
            tokens[i] += int((args[1] if len(args) > 1 else kwargs["top_k_index"]).numel())

        return hook

    return [
        b.up.register_forward_pre_hook(experts(i), with_kwargs=True)
        if b.kind == "experts"
        else b.up.register_forward_pre_hook(dense(i))
        for i, b in enumerate(blocks)
    ]


def _measure(model: nn.Module, seq_len: int, blocks: list[FFNBlock]) -> tuple[int, list[int]]:
    vocab = int(getattr(model.config, "vocab_size", 100) or 100)
    device = next(model.parameters()).device
    ids = torch.full((1, seq_len), min(3, vocab - 1), dtype=torch.long, device=device)
    implementation = getattr(model.config, "_attn_implementation", None)
    swap = implementation not in (None, "eager") and hasattr(model, "set_attn_implementation")
    tokens = [0] * len(blocks)
    handles = _token_hooks(blocks, tokens)
    if swap:
        model.set_attn_implementation("eager")  # the counter has no formula for SDPA's CPU kernel
    extra = {"decoder_input_ids": ids} if getattr(model.config, "is_encoder_decoder", False) else {}
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
    finally:
        for handle in handles:
            handle.remove()
        if swap:
            model.set_attn_implementation(implementation)
    names = {id(m): f"{type(model).__name__}.{n}" for n, m in model.named_modules()}
    counts = counter.get_flop_counts()
    ffn = sum(sum(counts.get(names.get(id(m), ""), {}).values()) for b in blocks for m in b.modules())
    return int(counter.get_total_flops()) - int(ffn), tokens


def _count_with_counter(model: nn.Module, seq_len: int, blocks: list[FFNBlock], widths: list[int]) -> FlopCount:
    """Everything but the FFN measured by ``FlopCounterMode`` (cached per architecture and length);
    the FFN by formula from its shapes at ``widths``, for the tokens each block processed."""
    ffn_ids = {id(m) for b in blocks for m in b.modules()}
    key = _non_ffn_key(model, ffn_ids, seq_len)
    if key not in _COUNTED:
        _COUNTED[key] = _measure(model, seq_len, blocks)
    non_ffn, tokens = _COUNTED[key]
    ffn = sum(b.flops(t, w) for b, t, w in zip(blocks, tokens, widths))
    return FlopCount(total=non_ffn + ffn, ffn=ffn, attention=0, head=0, other=non_ffn, source="flop-counter")


def _attention_dims(model: nn.Module, n_layers: int, head_counts: Optional[Sequence[int]]) -> list[tuple[int, int]]:
    """(query width, key/value width) of each layer's attention: read from the projections where heads
    can be cut (a cut model's layers differ), else from the config; ``head_counts`` (query heads per
    layer) replaces what the model has."""
    if has_head_spec(model):
        blocks = find_heads(model)
        if head_counts is None:
            return [(b.q_dim, b.kv_dim) for b in blocks]
        if len(head_counts) != len(blocks) or any(c < 0 for c in head_counts):
            raise WidthError(f"head_counts must be {len(blocks)} non-negative numbers, got {list(head_counts)}")
        return [(c * b.head_dim, c // b.group * b.head_dim) for c, b in zip(head_counts, blocks)]
    if head_counts is not None:
        raise UnsupportedModelError(f"head_counts: attention heads of {model.config.model_type!r} cannot be cut")
    config = model.config
    n_heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or int(config.hidden_size) // n_heads)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)  # GQA: fewer k/v heads
    return [(n_heads * head_dim, n_kv * head_dim)] * n_layers


def count_flops(
    model: nn.Module,
    seq_len: int,
    ffn_widths: Optional[Sequence[int]] = None,
    head_counts: Optional[Sequence[int]] = None,
) -> FlopCount:
    """Matmul FLOPs of one forward pass over one example of ``seq_len`` tokens.

    ``ffn_widths`` (one entry per layer) replaces the FFN widths read from the model, e.g. to count a
    dynamic top-k scheme at its active width; each FFN matmul is then counted at that width.
    ``head_counts`` (query heads per layer) likewise replaces the attention heads (families whose
    heads can be cut, see heads.py).
    Raises ``UnsupportedModelError`` for a family or head this module has no formula for, and
    ``WidthError`` when ``ffn_widths`` or ``head_counts`` has the wrong length or a negative entry.
    """
    if seq_len <= 0:
        raise WidthError(f"seq_len must be positive, got {seq_len}")
    blocks = find_ffns(model)
    n_layers = len(blocks)
    widths = list(ffn_widths) if ffn_widths is not None else [b.width for b in blocks]
    if len(widths) != n_layers:
        raise WidthError(f"ffn_widths has {len(widths)} entries but the model has {n_layers} layers")
    if any(w < 0 for w in widths):
        raise WidthError(f"ffn_widths must be non-negative, got {widths}")
    if not has_formula(getattr(getattr(model, "config", None), "model_type", None)):
        if head_counts is not None:
            raise UnsupportedModelError("head_counts: FLOPs of this family are measured, not counted by formula")
        return _count_with_counter(model, seq_len, blocks, widths)
    model_type = _family(model)
    config = model.config

    s = seq_len
    h = int(config.hidden_size)  # DistilBERT and GPT-2 configs map hidden_size to dim / n_embd
    # q and o are h×q_dim, k and v are h×kv_dim (equal for multi-head attention), on every position;
    # scores (QKᵀ) and the weighted sum (AV) are S×S×head_dim per query head each.
    attention = sum(
        2 * s * h * (2 * q_dim + 2 * kv_dim) + 2 * 2 * s * s * q_dim
        for q_dim, kv_dim in _attention_dims(model, n_layers, head_counts)
    )
    matmuls = 3 if blocks[0].gate is not None else 2  # gate, up, down vs up, down
    ffn = sum(matmuls * 2 * s * h * w for w in widths)

    other = 0
    if model_type == "electra" and int(config.embedding_size) != h:
        other += 2 * s * int(config.embedding_size) * h  # embeddings_project, every position
    head = _head_flops(model, model_type, s, h)
    total = ffn + attention + head + other
    return FlopCount(total=int(total), ffn=int(ffn), attention=int(attention), head=int(head), other=int(other))
