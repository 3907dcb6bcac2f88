"""count_flops against torch's FlopCounterMode, on tiny random models of every supported family."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers as tf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from transformers.pytorch_utils import Conv1D

from awncompress.errors import UnsupportedModelError, WidthError
from awncompress.model.flops import FlopCount, count_flops

SEQ_LEN = 16
VOCAB = 100


def _configs() -> dict[str, tf.PretrainedConfig]:
    # Eager attention: on CPU, FlopCounterMode has no formula for SDPA's CPU kernel and would
    # miss the attention scores that the analytic count includes.
    common = dict(vocab_size=VOCAB, attn_implementation="eager")
    bert = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **common)
    llama = dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=96,
        **common,
    )
    return {
        "bert": tf.BertConfig(**bert),
        "roberta": tf.RobertaConfig(**bert),
        "xlm-roberta": tf.XLMRobertaConfig(**bert),
        "electra": tf.ElectraConfig(embedding_size=16, **bert),  # != hidden: embeddings_project
        "electra-same-emb": tf.ElectraConfig(embedding_size=32, **bert),
        "distilbert": tf.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **common),
        "gpt2": tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_inner=64, n_positions=64, **common),
        "gpt2-default-inner": tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, **common),
        "llama": tf.LlamaConfig(**llama),
        "mistral": tf.MistralConfig(**llama),
        "qwen2": tf.Qwen2Config(**llama),
        # head_dim set apart from hidden/heads, as Qwen3 allows.
        "qwen3": tf.Qwen3Config(head_dim=24, **llama),
    }


CONFIGS = _configs()
ENCODER_HEADS = ["base", "seq-cls", "token-cls", "qa", "lm"]
HEAD_CLASSES = {
    "bert": (
        tf.BertModel,
        tf.BertForSequenceClassification,
        tf.BertForTokenClassification,
        tf.BertForQuestionAnswering,
        tf.BertLMHeadModel,
    ),
    "roberta": (
        tf.RobertaModel,
        tf.RobertaForSequenceClassification,
        tf.RobertaForTokenClassification,
        tf.RobertaForQuestionAnswering,
        tf.RobertaForCausalLM,
    ),
    "xlm-roberta": (
        tf.XLMRobertaModel,
        tf.XLMRobertaForSequenceClassification,
        tf.XLMRobertaForTokenClassification,
        tf.XLMRobertaForQuestionAnswering,
        tf.XLMRobertaForCausalLM,
    ),
    "electra": (
        tf.ElectraModel,
        tf.ElectraForSequenceClassification,
        tf.ElectraForTokenClassification,
        tf.ElectraForQuestionAnswering,
        tf.ElectraForCausalLM,
    ),
    "distilbert": (
        tf.DistilBertModel,
        tf.DistilBertForSequenceClassification,
        tf.DistilBertForTokenClassification,
        tf.DistilBertForQuestionAnswering,
        tf.DistilBertForMaskedLM,
    ),
    "gpt2": (
        tf.GPT2Model,
        tf.GPT2ForSequenceClassification,
        tf.GPT2ForTokenClassification,
        tf.GPT2ForQuestionAnswering,
        tf.GPT2LMHeadModel,
    ),
    "llama": (
        tf.LlamaModel,
        tf.LlamaForSequenceClassification,
        tf.LlamaForTokenClassification,
        tf.LlamaForQuestionAnswering,
        tf.LlamaForCausalLM,
    ),
    "mistral": (
        tf.MistralModel,
        tf.MistralForSequenceClassification,
        tf.MistralForTokenClassification,
        tf.MistralForQuestionAnswering,
        tf.MistralForCausalLM,
    ),
    "qwen2": (
        tf.Qwen2Model,
        tf.Qwen2ForSequenceClassification,
        tf.Qwen2ForTokenClassification,
        tf.Qwen2ForQuestionAnswering,
        tf.Qwen2ForCausalLM,
    ),
    "qwen3": (
        tf.Qwen3Model,
        tf.Qwen3ForSequenceClassification,
        tf.Qwen3ForTokenClassification,
        tf.Qwen3ForQuestionAnswering,
        tf.Qwen3ForCausalLM,
    ),
}
HEAD_CLASSES["electra-same-emb"] = HEAD_CLASSES["electra"]
HEAD_CLASSES["gpt2-default-inner"] = HEAD_CLASSES["gpt2"]


def _build(key: str, head: str) -> nn.Module:
    config = CONFIGS[key]
    cls = HEAD_CLASSES[key][ENCODER_HEADS.index(head)]
    if (
        head == "lm"
        and cls.__name__.endswith(("ForCausalLM", "LMHeadModel"))
        and not key.startswith(("gpt2", "llama", "mistral", "qwen"))
    ):
        config = copy.deepcopy(config)  # (to_dict would drop the eager attention choice)
        config.is_decoder = True  # a causal LM on an encoder
    torch.manual_seed(0)
    return cls(config).eval()


def _measured(model: nn.Module, seq_len: int = SEQ_LEN) -> tuple[int, int]:
    """FlopCounterMode's total, and the part spent in the head (task modules + the base's pooler)."""
    ids = torch.randint(3, VOCAB, (1, seq_len))
    counter = FlopCounterMode(display=False, depth=3)
    with torch.no_grad(), counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    root = type(model).__name__
    base = root if model.base_model is model else f"{root}.{model.base_model_prefix}"
    # Direct children of a task model other than its base model are the head (none for a base model).
    heads = [name for name in counts if base != root and name.count(".") == 1 and name != base]
    head = sum(counts[name] for name in heads) + counts.get(f"{base}.pooler", 0)
    return counter.get_total_flops(), head


def _assert_close(counted: FlopCount, measured: tuple[int, int]) -> None:
    total, head = measured
    assert counted.total == pytest.approx(total, rel=0.02), (counted, measured)
    # The head is a sliver of a tiny model's FLOPs, so 2 % on the total would not see it: exact here.
    assert counted.head == head, (counted, measured)
    assert counted.total == counted.ffn + counted.attention + counted.head + counted.other


@pytest.mark.parametrize("head", ENCODER_HEADS)
@pytest.mark.parametrize("key", list(CONFIGS))
def test_matches_flop_counter(key: str, head: str) -> None:
    model = _build(key, head)
    _assert_close(count_flops(model, SEQ_LEN), _measured(model))


def _slice_ffn(model: nn.Module, layer: int, width: int) -> None:
    """Replace one layer's FFN projections by narrower ones, as per-layer truncation does."""
    base = model.base_model
    model_type = model.config.model_type
    if model_type in ("bert", "roberta", "xlm-roberta", "electra"):
        block = base.encoder.layer[layer]
        h = block.intermediate.dense.in_features
        block.intermediate.dense = nn.Linear(h, width)
        block.output.dense = nn.Linear(width, h)
    elif model_type == "distilbert":
        ffn = base.transformer.layer[layer].ffn
        h = ffn.lin1.in_features
        ffn.lin1, ffn.lin2 = nn.Linear(h, width), nn.Linear(width, h)
    elif model_type == "gpt2":
        mlp = base.h[layer].mlp
        h = mlp.c_fc.weight.shape[0]
        mlp.c_fc, mlp.c_proj = Conv1D(width, h), Conv1D(h, width)
    else:
        mlp = base.layers[layer].mlp
        h = mlp.up_proj.in_features
        mlp.gate_proj = nn.Linear(h, width, bias=False)
        mlp.up_proj = nn.Linear(h, width, bias=False)
        mlp.down_proj = nn.Linear(width, h, bias=False)


@pytest.mark.parametrize("key", ["bert", "electra", "distilbert", "gpt2", "llama", "qwen3"])
def test_per_layer_widths_read_from_modules(key: str) -> None:
    model = _build(key, "seq-cls")
    full = count_flops(model, SEQ_LEN)
    _slice_ffn(model, 0, 8)
    _slice_ffn(model, 1, 40)
    sliced = count_flops(model, SEQ_LEN)
    _assert_close(sliced, _measured(model))
    assert sliced.ffn < full.ffn
    assert sliced.attention == full.attention and sliced.head == full.head
    # Passing the widths that are there gives the same count.
    assert count_flops(model, SEQ_LEN, ffn_widths=[8, 40]) == sliced


def test_explicit_ffn_widths_scale_ffn_only() -> None:
    model = _build("llama", "lm")
    full = count_flops(model, SEQ_LEN)
    half = count_flops(model, SEQ_LEN, ffn_widths=[48, 48])
    assert half.ffn * 2 == full.ffn
    assert half.attention == full.attention and half.head == full.head
    assert full.ffn == 2 * 3 * 2 * SEQ_LEN * 64 * 96  # layers × gated matmuls × 2·S·h·d_ff
    assert 0 < half.ffn_share < full.ffn_share < 1


def test_gqa_counts_fewer_kv_projection_flops() -> None:
    config = copy.deepcopy(CONFIGS["llama"])
    config.num_key_value_heads = 4
    mha = tf.LlamaModel(config)
    gqa = tf.LlamaModel(CONFIGS["llama"])
    # Two fewer kv heads of 16 dims each, for k and v, in both layers.
    saved = 2 * 2 * (2 * SEQ_LEN * 64 * 32)
    assert count_flops(mha, SEQ_LEN).attention - count_flops(gqa, SEQ_LEN).attention == saved


def test_attention_grows_quadratically_with_seq_len() -> None:
    model = _build("bert", "base")
    a, b = count_flops(model, 16), count_flops(model, 32)
    assert b.ffn == 2 * a.ffn
    assert b.attention > 2 * a.attention


def test_wrong_ffn_widths_raise() -> None:
    model = _build("bert", "base")
    with pytest.raises(WidthError, match="2 layers"):
        count_flops(model, SEQ_LEN, ffn_widths=[64])
    with pytest.raises(WidthError):
        count_flops(model, SEQ_LEN, ffn_widths=[64, -1])


def test_camembert_is_counted_like_roberta() -> None:
    config = tf.CamembertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=VOCAB,
        attn_implementation="eager",
    )
    model = tf.CamembertForSequenceClassification(config).eval()
    ids = torch.full((1, SEQ_LEN), 5)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=ids)
    assert count_flops(model, SEQ_LEN).total == counter.get_total_flops()


def test_a_model_whose_ffns_nobody_named_raises() -> None:
    from zoo import make_toy

    with pytest.raises(UnsupportedModelError, match="toy-ffn"):
        count_flops(make_toy(), SEQ_LEN)


def test_unknown_head_raises() -> None:
    model = tf.BertForMultipleChoice(CONFIGS["bert"])
    with pytest.raises(UnsupportedModelError, match="BertForMultipleChoice"):
        count_flops(model, SEQ_LEN)
