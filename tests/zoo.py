"""The tests' one tiny-model factory: a random model of every family in the FFN table (hidden 32,
2 layers), built offline, plus a made-up family awncompress has never heard of.

``build`` makes any family of ``TINY``; ``make_model`` is the ten core families most tests sweep
(``FAMILIES``: a classifier for an encoder, a causal LM for a decoder). Each config was checked to
build, run with an attention mask, and save/reload with plain transformers (transformers 5).
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
# The ten core families (FAMILIES below) keep the shapes most tests were tuned on: a vocabulary of 97
# and, for the gated decoders, one KV group for their 2 query heads (GQA).
CORE = dict(vocab_size=97)
CORE_GQA = dict(CORE, num_key_value_heads=1)
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
    "bert": dict(ENC, **CORE),
    "roberta": dict(ENC, **CORE, pad_token_id=1),
    "xlm-roberta": dict(ENC, **CORE, pad_token_id=1),
    "camembert": dict(ENC, pad_token_id=1),
    "electra": dict(ENC, **CORE, embedding_size=16),
    "deberta": ENC,
    "deberta-v2": ENC,
    "mpnet": dict(ENC, pad_token_id=1),
    "distilbert": dict(
        vocab_size=97, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64, pad_token_id=0
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
        vocab_size=97,
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
    "llama": dict(DEC, **CORE_GQA),
    "mistral": dict(DEC, **CORE_GQA, sliding_window=16),
    "qwen2": dict(DEC, **CORE_GQA),
    "qwen3": dict(DEC, **CORE_GQA, head_dim=16),
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

# The core families most tests sweep (the ``family`` fixture): classifiers and causal LMs.
ENCODERS = ["bert", "roberta", "xlm-roberta", "electra", "distilbert"]
DECODERS = ["gpt2", "llama", "mistral", "qwen2", "qwen3"]
FAMILIES = ENCODERS + DECODERS
HEADS = ("auto", "lm", "base")


def head_class(model_type: str, head: str = "auto") -> type:
    """``auto``: sequence classification where the family has it, else causal LM; seq2seq: conditional
    generation. ``lm``: causal LM. ``base``: the bare model (no head), like a sentence encoder."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {head!r}")
    if head == "base":
        mappings: tuple[dict, ...] = (modeling_auto.MODEL_MAPPING_NAMES,)
    elif head == "lm":
        mappings = (modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,)
    elif model_type in SEQ2SEQ_TYPES:
        mappings = (modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,)
    else:
        mappings = (
            modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
            modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        )
    for mapping in mappings:
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


def build(
    model_type: str, seed: int = 0, *, head: str = "auto", num_labels: int = 3, widen: bool = True, **overrides
) -> torch.nn.Module:
    """A tiny random model of the family (``overrides`` change its ``TINY`` config). ``widen``: weights
    wide enough that a half-width cut shows (random init gives FFNs that barely matter); off, the
    family's own initialisation, as a checkpoint saved by transformers would have it."""
    torch.manual_seed(seed)
    config = tf.AutoConfig.for_model(model_type, **{**TINY[model_type], **overrides})
    cls = head_class(model_type, head)
    if cls.__name__.endswith("ForSequenceClassification"):
        config.num_labels = num_labels
    model = cls(config)
    if widen:
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


def make_model(family: str, seed: int = 0) -> torch.nn.Module:
    """A core family as most tests use it: sequence classification (3 labels) for an encoder, causal
    LM for a decoder."""
    return build(family, seed, head="lm" if family in DECODERS else "auto")


def inputs(model_type: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two rows of ids, the second right-padded; every row ends in eos (seq2seq classification pools on it)."""
    g = torch.Generator().manual_seed(seed)
    vocab = TINY[model_type]["vocab_size"]
    ids = torch.randint(5, vocab, (2, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    eos = int(TINY[model_type].get("eos_token_id", 2))
    ids[0, -1], ids[1, 6] = eos, eos
    batch = {"input_ids": ids, "attention_mask": mask}
    if model_type in SEQ2SEQ_TYPES:
        batch["decoder_input_ids"] = torch.randint(5, vocab, (2, 6), generator=g)
    return batch


# --- a model family awncompress has never heard of -----------------------------------------------


class ToyConfig(tf.PretrainedConfig):
    """A made-up family: no entry in the FFN table, module names no fallback matches."""

    model_type = "toy-ffn"

    def __init__(self, vocab_size=97, hidden_size=32, ffn_size=64, num_layers=2, **kwargs):
        self.vocab_size, self.hidden_size, self.ffn_size, self.num_layers = (
            vocab_size,
            hidden_size,
            ffn_size,
            num_layers,
        )
        super().__init__(**kwargs)


class _ToyFeedForward(torch.nn.Module):
    def __init__(self, config: ToyConfig):
        super().__init__()
        self.w_in = torch.nn.Linear(config.hidden_size, config.ffn_size)
        self.w_out = torch.nn.Linear(config.ffn_size, config.hidden_size)

    def forward(self, x):
        return self.w_out(torch.nn.functional.gelu(self.w_in(x)))


class _ToyBlock(torch.nn.Module):
    def __init__(self, config: ToyConfig):
        super().__init__()
        self.mix = torch.nn.Linear(config.hidden_size, config.hidden_size)
        self.feed_forward = _ToyFeedForward(config)

    def forward(self, x):
        x = x + torch.tanh(self.mix(x))
        return x + self.feed_forward(x)


class ToyForSequenceClassification(tf.PreTrainedModel):
    """Embeddings → blocks (mix + FFN) → masked mean → classifier."""

    config_class = ToyConfig
    base_model_prefix = "toy"

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.embed = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = torch.nn.ModuleList([_ToyBlock(config) for _ in range(config.num_layers)])
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x)
        mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).unsqueeze(-1).to(x.dtype)
        logits = self.classifier((x * mask).sum(1) / mask.sum(1).clamp_min(1))
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return tf.modeling_outputs.SequenceClassifierOutput(loss=loss, logits=logits)


def make_toy(seed: int = 0) -> ToyForSequenceClassification:
    """The made-up family, with weights wide enough that truncation changes the outputs."""
    torch.manual_seed(seed)
    model = ToyForSequenceClassification(ToyConfig(num_labels=3))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                p.normal_(0, 0.3)
    return model.eval()


# --- a tiny Llama-style tokenizer (llama.cpp's converter embeds the tokenizer in every GGUF) -------


def llama_tokenizer():
    """A real but tiny SentencePiece-style BPE tokenizer (byte fallback, ``▁`` for spaces), as Llama 2's
    ``tokenizer.json`` is built: 3 specials, 256 byte tokens, the letters and a few merges (291 tokens).
    llama.cpp's converter reads this kind without a pre-tokenizer hash, so no download is needed."""
    from tokenizers import Tokenizer, decoders, models, normalizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for ch in "▁abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
    merges = [("▁", "t"), ("h", "e"), ("▁t", "he"), ("i", "n"), ("a", "n")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return tf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def llama_with_tokenizer(seed: int = 0, family: str = "llama", **overrides):
    """A tiny Llama (or ``family``) causal LM whose vocabulary is :func:`llama_tokenizer`'s, and that tokenizer."""
    tokenizer = llama_tokenizer()
    model = build(family, seed, head="lm", vocab_size=len(tokenizer), **overrides)
    return model, tokenizer
