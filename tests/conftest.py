"""Tiny random models of every supported family, built offline, and batches with padding."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch
import transformers as tf

COMMON = dict(vocab_size=97, num_hidden_layers=2, num_attention_heads=2, hidden_size=32, intermediate_size=64,
              max_position_embeddings=64)


def _config(family: str):
    if family == "bert":
        return tf.BertConfig(**COMMON)
    if family == "roberta":
        return tf.RobertaConfig(**COMMON, pad_token_id=1)
    if family == "xlm-roberta":
        return tf.XLMRobertaConfig(**COMMON, pad_token_id=1)
    if family == "electra":
        return tf.ElectraConfig(**COMMON, embedding_size=16)
    if family == "distilbert":
        return tf.DistilBertConfig(vocab_size=97, n_layers=2, n_heads=2, dim=32, hidden_dim=64, max_position_embeddings=64)
    if family == "gpt2":
        return tf.GPT2Config(vocab_size=97, n_layer=2, n_head=2, n_embd=32, n_inner=64, n_positions=64,
                             bos_token_id=0, eos_token_id=0)
    gated = dict(COMMON, num_key_value_heads=1, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    if family == "llama":
        return tf.LlamaConfig(**gated)
    if family == "mistral":
        return tf.MistralConfig(**gated, sliding_window=None)
    if family == "qwen2":
        return tf.Qwen2Config(**gated)
    if family == "qwen3":
        return tf.Qwen3Config(**gated, head_dim=16)
    raise KeyError(family)


ENCODERS = ["bert", "roberta", "xlm-roberta", "electra", "distilbert"]
DECODERS = ["gpt2", "llama", "mistral", "qwen2", "qwen3"]
FAMILIES = ENCODERS + DECODERS


def make_model(family: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random model: sequence classification for encoders, causal LM for decoders."""
    torch.manual_seed(seed)
    config = _config(family)
    if family in ENCODERS:
        config.num_labels = 3
        model = tf.AutoModelForSequenceClassification.from_config(config)
    else:
        model = tf.AutoModelForCausalLM.from_config(config)
    # Random init gives FFNs that barely matter; widen weights so that truncation is visible.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name and "wte" not in name and "wpe" not in name:
                p.normal_(0, 0.15)
    return model.eval()


def make_batches(n_batches: int = 2, batch: int = 3, seq: int = 10, vocab: int = 97, seed: int = 0) -> list[dict]:
    """Random token batches whose last rows are right-padded (attention_mask 0)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(2, vocab, (batch, seq), generator=g)
        mask = torch.ones(batch, seq, dtype=torch.long)
        mask[-1, seq // 2:] = 0
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


# --- a tiny local model folder and data files, for the pipeline and CLI -------------------------

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dull", "weak"]
FILLER = ["the", "film", "was", "plot", "actors", "and", "very", "quite", "story", "a"]


def word_tokenizer(specials: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")):
    """A BERT-style word-level fast tokenizer over the synthetic review vocabulary, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(list(specials) + POSITIVE + NEGATIVE + FILLER)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]")


def write_reviews(path, n: int = 96, seed: int = 0):
    """A CSV of synthetic reviews whose label (fresh/rotten) is carried by sentiment words."""
    import random

    import pandas as pd

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append({"text": " ".join(words), "label": "fresh" if label else "rotten"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def save_tiny_bert(folder, with_head: bool = True):
    """A tiny BERT folder (safetensors + tokenizer); without head = a base model, like MiniLM."""
    tok = word_tokenizer()
    config = tf.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = tf.BertForSequenceClassification(config) if with_head else tf.BertModel(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_tiny_llama(folder):
    """A tiny Llama causal LM folder with a word-level tokenizer (eos, no pad: like SmolLM2)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<unk>", "<eos>"] + POSITIVE + NEGATIVE + FILLER)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<eos>")
    config = tf.LlamaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            num_key_value_heads=1, intermediate_size=64, max_position_embeddings=64,
                            bos_token_id=1, eos_token_id=1)
    torch.manual_seed(0)
    tf.LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
