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
The tests check the formula against ``FlopCounterMode`` for every family.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from torch import nn

from .archs import find_ffns
from .errors import UnsupportedModelError, WidthError

__all__ = ["FlopCount", "count_flops", "SUPPORTED_MODEL_TYPES"]


@dataclass
class FlopCount:
    """Matmul FLOPs of one forward pass over one example, split by where they are spent."""

    total: int
    ffn: int
    attention: int  # q/k/v/o projections + attention scores + weighted sum of values
    head: int  # pooler and classifier, or the LM head
    other: int  # e.g. ELECTRA's embedding projection

    @property
    def ffn_share(self) -> float:
        """Fraction of all FLOPs spent in the FFN blocks (what truncating them can save)."""
        return self.ffn / self.total if self.total else 0.0


# Families the formulas know (where their FFNs are comes from archs.find_ffns). Decoder heads run
# on every position, encoder classification heads on the first token only.
_ENCODERS = ("bert", "roberta", "xlm-roberta", "electra", "distilbert")
_DECODERS = ("gpt2", "llama", "mistral", "qwen2", "qwen3")
_FAMILIES = _ENCODERS + _DECODERS
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(_FAMILIES)

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
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in _FAMILIES:
        raise UnsupportedModelError(
            f"count_flops does not know model_type {model_type!r} ({type(model).__name__}); "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
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


def count_flops(model: nn.Module, seq_len: int, ffn_widths: Optional[Sequence[int]] = None) -> FlopCount:
    """Matmul FLOPs of one forward pass over one example of ``seq_len`` tokens.

    ``ffn_widths`` (one entry per layer) replaces the FFN widths read from the model, e.g. to count a
    dynamic top-k scheme at its active width; each FFN matmul is then counted at that width.
    Raises ``UnsupportedModelError`` for a family or head this module has no formula for, and
    ``WidthError`` when ``ffn_widths`` has the wrong length or a negative entry.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    model_type = _family(model)
    config = model.config
    blocks = find_ffns(model)
    n_layers = len(blocks)
    widths = list(ffn_widths) if ffn_widths is not None else [b.width for b in blocks]
    if len(widths) != n_layers:
        raise WidthError(f"ffn_widths has {len(widths)} entries but the model has {n_layers} layers")
    if any(w < 0 for w in widths):
        raise WidthError(f"ffn_widths must be non-negative, got {widths}")

    s = seq_len
    h = int(config.hidden_size)  # DistilBERT and GPT-2 configs map hidden_size to dim / n_embd
    n_heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or h // n_heads)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)  # GQA: fewer k/v heads
    q_dim, kv_dim = n_heads * head_dim, n_kv * head_dim

    # q and o are h×q_dim, k and v are h×kv_dim (equal for multi-head attention), on every position;
    # scores (QKᵀ) and the weighted sum (AV) are S×S×head_dim per query head each.
    attention_per_layer = 2 * s * h * (2 * q_dim + 2 * kv_dim) + 2 * 2 * s * s * q_dim
    attention = n_layers * attention_per_layer
    matmuls = 3 if blocks[0].gate is not None else 2  # gate, up, down vs up, down
    ffn = sum(matmuls * 2 * s * h * w for w in widths)

    other = 0
    if model_type == "electra" and int(config.embedding_size) != h:
        other += 2 * s * int(config.embedding_size) * h  # embeddings_project, every position
    head = _head_flops(model, model_type, s, h)
    total = ffn + attention + head + other
    return FlopCount(total=int(total), ffn=int(ffn), attention=int(attention), head=int(head), other=int(other))
