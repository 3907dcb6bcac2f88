"""Tiny random models of every family in the FFN table (hidden 32, 2 layers), built offline.

Used by the family conformance tests; each config was checked to build, run with an attention mask,
and save/reload with plain transformers (transformers 5).
"""

from __future__ import annotations

import torch
import transformers as tf
from transformers.models.auto import modeling_auto

ENC = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
    pad_token_id=0,
)
DEC = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
MOE = dict(DEC, num_experts=4, num_experts_per_tok=2)
SEQ2SEQ = dict(
    vocab_size=99,
    d_model=32,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=64,
    decoder_ffn_dim=48,
    max_position_embeddings=64,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
    decoder_start_token_id=2,
)

# model_type → config kwargs (AutoConfig.for_model)
TINY: dict[str, dict] = {
    "bert": ENC,
    "roberta": dict(ENC, pad_token_id=1),
    "xlm-roberta": dict(ENC, pad_token_id=1),
    "camembert": dict(ENC, pad_token_id=1),
    "electra": dict(ENC, embedding_size=16),
    "deberta": ENC,
    "deberta-v2": ENC,
    "mpnet": dict(ENC, pad_token_id=1),
    "distilbert": dict(
        vocab_size=99, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64, pad_token_id=0
    ),
    "albert": dict(ENC, embedding_size=16, num_hidden_groups=1, inner_group_num=1),
    "modernbert": dict(
        ENC,
        global_attn_every_n_layers=2,
        local_attention=16,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
    ),
    "xlnet": dict(vocab_size=99, d_model=32, n_layer=2, n_head=2, d_inner=64, pad_token_id=0),
    "funnel": dict(
        vocab_size=99,
        d_model=32,
        n_head=2,
        d_head=16,
        d_inner=64,
        block_sizes=[1, 1],
        block_repeats=[1, 1],
        num_decoder_layers=1,
        max_position_embeddings=64,
        pad_token_id=0,
    ),
    "gpt2": dict(
        vocab_size=99,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_inner=64,
        n_positions=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "gpt_neo": dict(
        vocab_size=99,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        attention_types=[[["global", "local"], 1]],
        window_size=8,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "gpt_neox": DEC,
    "gptj": dict(
        vocab_size=99,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_inner=64,
        rotary_dim=8,
        n_positions=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "opt": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=64,
        word_embed_proj_dim=32,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "falcon": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_hidden_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        max_position_embeddings=64,
    ),
    "phi": DEC,
    "phi3": dict(DEC, original_max_position_embeddings=64),
    "glm": dict(DEC, head_dim=16),
    "llama": DEC,
    "mistral": dict(DEC, sliding_window=16),
    "qwen2": DEC,
    "qwen3": dict(DEC, head_dim=16),
    "gemma": dict(DEC, head_dim=16),
    "gemma2": dict(DEC, head_dim=16, sliding_window=16),
    "gemma3_text": dict(DEC, head_dim=16, sliding_window=16),
    "olmo": DEC,
    "olmo2": DEC,
    "stablelm": DEC,
    "starcoder2": DEC,
    "granite": DEC,
    "cohere": DEC,
    "smollm3": DEC,
    "helium": dict(DEC, head_dim=16),
    "mixtral": dict(DEC, num_local_experts=4, num_experts_per_tok=2),
    "olmoe": MOE,
    "qwen2_moe": dict(MOE, moe_intermediate_size=24, shared_expert_intermediate_size=40),
    "qwen3_moe": dict(MOE, head_dim=16, moe_intermediate_size=24, mlp_only_layers=[1]),
    "t5": dict(
        vocab_size=99,
        d_model=32,
        d_ff=64,
        d_kv=16,
        num_heads=2,
        num_layers=2,
        num_decoder_layers=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    ),
    "mt5": dict(
        vocab_size=99,
        d_model=32,
        d_ff=64,
        d_kv=16,
        num_heads=2,
        num_layers=2,
        num_decoder_layers=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        feed_forward_proj="gated-gelu",
    ),
    "bart": SEQ2SEQ,
    "mbart": SEQ2SEQ,
    "bloom": dict(vocab_size=99, hidden_size=32, n_layer=2, n_head=2, pad_token_id=0, bos_token_id=1, eos_token_id=2),
}
SEQ2SEQ_TYPES = {"t5", "mt5", "bart", "mbart"}


def head_class(model_type: str) -> type:
    """Sequence classification where the family has it, else causal LM; seq2seq: conditional generation."""
    for mapping in (
        (modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,)
        if model_type in SEQ2SEQ_TYPES
        else (
            modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
            modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        )
    ):
        if model_type in mapping:
            return getattr(tf, mapping[model_type])
    raise KeyError(model_type)


def auto_class(model: torch.nn.Module) -> type:
    """The Auto class a user would load an export of ``model`` with."""
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return tf.AutoModelForSequenceClassification
    if name.endswith("ForConditionalGeneration"):
        return tf.AutoModelForSeq2SeqLM
    return tf.AutoModelForCausalLM


def build(model_type: str, seed: int = 0, num_labels: int = 3, **overrides) -> torch.nn.Module:
    """A tiny random model of the family, with weights wide enough that a half-width cut shows."""
    torch.manual_seed(seed)
    config = tf.AutoConfig.for_model(model_type, **{**TINY[model_type], **overrides})
    if head_class(model_type).__name__.endswith("ForSequenceClassification"):
        config.num_labels = num_labels
    model = head_class(model_type)(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if (
                p.dim() >= 2
                and "embed" not in name
                and "wte" not in name
                and "wpe" not in name
                and "shared" not in name
            ):
                p.normal_(0, 0.15)
    return model.eval()


def inputs(model_type: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two rows of ids, the second right-padded; every row ends in eos (seq2seq classification pools on it)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 99, (2, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    eos = int(TINY[model_type].get("eos_token_id", 2))
    ids[0, -1], ids[1, 6] = eos, eos
    batch = {"input_ids": ids, "attention_mask": mask}
    if model_type in SEQ2SEQ_TYPES:
        batch["decoder_input_ids"] = torch.randint(5, 99, (2, 6), generator=g)
    return batch
