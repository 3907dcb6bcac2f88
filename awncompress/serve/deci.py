"""Per-layer FFN widths that serving engines read: the DeciLM / Nemotron-NAS config (``block_configs``).

A vanilla Llama config holds one ``intermediate_size``, and llama.cpp's ``llama`` loader builds every
FFN with one ``n_ff`` (a per-layer list converts, then fails to load). llama.cpp's ``DECI``
architecture and vLLM's native DeciLM class read a width per block instead, from ``ffn_mult``:
llama.cpp's converter (``conversion/deci.py``) sets each FFN to ``int(2 * ffn_mult * hidden / 3)``
rounded *up* to a multiple of 256, and keeps every layer's query heads at ``num_attention_heads``
(key/value heads per block come from ``n_heads_in_group``). So only FFN widths that are multiples of
256 and no query-head cuts can be said; anything else is refused in one line before anything is
written (its vocabulary reader is chosen by size: see check_deci_tokenizer). transformers has no
DeciLM class of its own (the Hub's needs ``trust_remote_code``), so the per-layer transformers export
stays the one ``awncompress.load_pretrained`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import UnsupportedModelError
from .common import linked_copy

DECI_ARCHITECTURE = "DeciLMForCausalLM"
DECI_MODEL_TYPE = "nemotron-nas"
ROW = 256  # llama.cpp rounds each DeciLM FFN width up to a multiple of this
LLAMA3_VOCAB = 128256  # conversion/deci.py reads a tokenizer of this size as Llama 3's (gpt2-style BPE)
# Families whose decoder blocks are DeciLM blocks: RMSNorm, rotary attention without q/k/v biases or
# q/k norms, head size hidden / heads, gated SiLU MLP without biases.
DECI_FAMILIES = {"llama"}


def deci_width(ffn_mult: float, hidden: int) -> int:
    """The FFN width llama.cpp's converter derives from ``ffn_mult`` (conversion/deci.py)."""
    width = int(2 * ffn_mult * hidden / 3)
    return width if width % ROW == 0 else width + ROW - width % ROW


def ffn_mult(width: int, hidden: int) -> float:
    """The ``ffn_mult`` whose derived width is ``width`` (a multiple of 256)."""
    return 3 * width / (2 * hidden)


def check_deci(config: Any, widths: Sequence[int], heads: Optional[Sequence[int]] = None) -> None:
    """UnsupportedModelError (one line) unless DeciLM can say these per-layer widths for this family."""
    model_type = getattr(config, "model_type", None)
    if model_type not in DECI_FAMILIES:
        raise UnsupportedModelError(
            f"per-layer GGUF exports are written as llama.cpp's DECI (DeciLM) architecture, whose blocks are "
            f"Llama blocks; {model_type} blocks do not map (per-layer exports of it stay --format hf)"
        )
    hidden, n_heads = int(config.hidden_size), int(config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or hidden // n_heads
    if head_dim * n_heads != hidden or getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise UnsupportedModelError(
            "DeciLM blocks have head size hidden / heads and no attention or MLP biases; this model differs"
        )
    bad = [i for i, w in enumerate(widths) if w % ROW]
    if bad:
        raise UnsupportedModelError(
            f"DeciLM (llama.cpp's DECI) rounds every FFN width up to a multiple of {ROW}, so layer {bad[0]}'s width "
            f"{widths[bad[0]]} cannot be said: give --multiple {ROW} (widths {list(widths)})"
        )
    if heads is not None and any(h != n_heads for h in heads):
        raise UnsupportedModelError(
            "llama.cpp's DECI converter keeps every layer's query heads at num_attention_heads; head-cut "
            "per-layer exports cannot be written as GGUF"
        )
    if any(deci_width(ffn_mult(w, hidden), hidden) != w for w in widths):  # float rounding, never expected
        raise UnsupportedModelError(f"ffn_mult cannot express the widths {list(widths)} exactly")


def check_deci_tokenizer(tokenizer: Any, vocab_size: int) -> bool:
    """Whether llama.cpp's DeciLM converter must read this tokenizer with its GPT-2-style BPE reader
    although the vocabulary is not Llama 3's; UnsupportedModelError (one line) for a tokenizer it cannot read.

    The converter picks its reader by vocabulary size: 128,256 (Llama 3) goes to the BPE reader, any
    other size to the Llama-2 byte-fallback reader, which fails on a plain BPE such as SmolLM2's; for
    those, run_converter points DeciLM at the BPE reader the converter's other models use.
    """
    if vocab_size == LLAMA3_VOCAB:
        return False
    try:
        model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    except (AttributeError, ValueError, KeyError, TypeError):
        model = {}
    if model.get("type") != "BPE":
        raise UnsupportedModelError(
            "llama.cpp's DeciLM converter reads BPE tokenizers (Llama 3's, Llama 2's byte-fallback one, GPT-2-style "
            f"ones); this model's ({model.get('type', 'no tokenizer.json')}, vocabulary {vocab_size}) is not one, "
            "so its per-layer widths cannot be written as GGUF"
        )
    return not model.get("byte_fallback")


def deci_config(config: dict, widths: Sequence[int]) -> dict:
    """The Llama config ``config`` (a config.json dict) as a DeciLM / Nemotron-NAS config with one block per layer."""
    hidden, n_heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    kv = int(config.get("num_key_value_heads") or n_heads)
    out = {k: v for k, v in config.items() if k not in ("intermediate_size", "num_key_value_heads", "head_dim")}
    out.update(
        architectures=[DECI_ARCHITECTURE],
        model_type=DECI_MODEL_TYPE,
        block_configs=[
            {
                "attention": {"n_heads_in_group": n_heads // kv, "no_op": False, "replace_with_linear": False},
                "ffn": {"ffn_mult": ffn_mult(int(w), hidden), "no_op": False, "replace_with_linear": False},
            }
            for w in widths
        ],
    )
    return out


def write_deci_folder(hf: Path, deci: Path, widths: Sequence[int]) -> None:
    """A copy of the per-layer export ``hf`` (weights linked, not copied) whose config.json is DeciLM's."""
    config = json.loads((hf / "config.json").read_text())
    linked_copy(hf, deci, deci_config(config, widths))
