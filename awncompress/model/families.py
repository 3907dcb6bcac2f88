"""Where the FFN of each transformer layer lives, per model family: the one table that knows.

Like peft's target-module table: ``FFN_SPECS`` maps a ``model_type`` to the specs of its FFNs (an
encoder–decoder or a mixture-of-experts model has several kinds, each with its own config
attribute). A model type that is not in the table is tried against generic fallbacks whose config
attribute is *probed* (the model is rebuilt on the meta device with the attribute changed, and the
attribute counts only if the FFN width follows), so a fallback never writes a width the config
does not control. Anything else is a loud error listing the model's Linear modules.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Iterable, Optional, Union

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import UnsupportedModelError
from .ffn import FFNBlock, FFNSpec, is_projection, neuron_axis

__all__ = [
    "FFNSpec",
    "FFN_SPECS",
    "FFNBlock",
    "find_ffns",
    "specs_for",
    "attach_spec",
    "set_config_widths",
    "neuron_axis",
    "SpecLike",
]


SpecLike = Union[FFNSpec, Iterable[FFNSpec]]
Specs = tuple[FFNSpec, ...]

BERT_STYLE = FFNSpec(up="intermediate.dense", down="output.dense")
GATED_MLP = FFNSpec(up="mlp.up_proj", down="mlp.down_proj", gate="mlp.gate_proj")
GPT2_MLP = FFNSpec(up="mlp.c_fc", down="mlp.c_proj", d_ff_attr="n_inner")
LINEAR_C_FC = FFNSpec(
    up="mlp.c_fc", down="mlp.c_proj"
)  # GPT-Neo, StarCoder2: GPT-2 names, nn.Linear, intermediate_size
FUSED_GATE_UP = FFNSpec(up="mlp.gate_up_proj", down="mlp.down_proj", fused=True)
NEOX_MLP = FFNSpec(up="mlp.dense_h_to_4h", down="mlp.dense_4h_to_h")
FC_MLP = FFNSpec(up="mlp.fc1", down="mlp.fc2")
T5_DENSE = FFNSpec(up="DenseReluDense.wi", down="DenseReluDense.wo", d_ff_attr="d_ff")
T5_GATED = FFNSpec(up="DenseReluDense.wi_1", down="DenseReluDense.wo", gate="DenseReluDense.wi_0", d_ff_attr="d_ff")


def experts_spec(d_ff_attr: str) -> FFNSpec:
    """Mixture-of-experts weights as transformers 5 stores them: ``mlp.experts.{gate_up_proj, down_proj}``."""
    return FFNSpec(
        up="mlp.experts.gate_up_proj", down="mlp.experts.down_proj", d_ff_attr=d_ff_attr, fused=True, experts=True
    )


def seq2seq_specs(up: str, down: str, encoder_attr: str, decoder_attr: str) -> Specs:
    """An encoder stack and a decoder stack whose FFN widths are separate config attributes."""
    return (
        FFNSpec(up=up, down=down, d_ff_attr=encoder_attr, within="encoder."),
        FFNSpec(up=up, down=down, d_ff_attr=decoder_attr, within="decoder."),
    )


_LLAMA_LIKE = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "olmo",
    "olmo2",
    "stablelm",
    "granite",
    "cohere",
    "smollm3",
    "helium",
)
_BERT_LIKE = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "deberta", "deberta-v2", "mpnet")

FFN_SPECS: dict[str, Specs] = {
    **{t: (BERT_STYLE,) for t in _BERT_LIKE},
    **{t: (GATED_MLP,) for t in _LLAMA_LIKE},
    "distilbert": (FFNSpec(up="ffn.lin1", down="ffn.lin2", d_ff_attr="hidden_dim"),),
    "albert": (FFNSpec(up="ffn", down="ffn_output"),),  # one FFN module shared by every layer
    "modernbert": (FFNSpec(up="mlp.Wi", down="mlp.Wo", fused=True),),
    "xlnet": (FFNSpec(up="ff.layer_1", down="ff.layer_2", d_ff_attr="d_inner"),),
    "funnel": (FFNSpec(up="ffn.linear_1", down="ffn.linear_2", d_ff_attr="d_inner"),),
    "gpt2": (GPT2_MLP,),
    "gpt_neo": (LINEAR_C_FC,),
    "starcoder2": (LINEAR_C_FC,),
    "gpt_neox": (NEOX_MLP,),
    "gptj": (FFNSpec(up="mlp.fc_in", down="mlp.fc_out", d_ff_attr="n_inner"),),
    "opt": (FFNSpec(up="fc1", down="fc2", d_ff_attr="ffn_dim"),),
    "falcon": (FFNSpec(up="mlp.dense_h_to_4h", down="mlp.dense_4h_to_h", d_ff_attr="ffn_hidden_size"),),
    "phi": (FC_MLP,),
    "phi3": (FUSED_GATE_UP,),
    "glm": (FUSED_GATE_UP,),
    "mixtral": (experts_spec("intermediate_size"),),
    "olmoe": (experts_spec("intermediate_size"),),
    "qwen2_moe": (
        experts_spec("moe_intermediate_size"),
        FFNSpec(
            up="mlp.shared_expert.up_proj",
            down="mlp.shared_expert.down_proj",
            gate="mlp.shared_expert.gate_proj",
            d_ff_attr="shared_expert_intermediate_size",
        ),
        GATED_MLP,
    ),  # layers in mlp_only_layers are dense
    "qwen3_moe": (experts_spec("moe_intermediate_size"), GATED_MLP),
    "t5": (T5_DENSE, T5_GATED),  # one of the two, by feed_forward_proj
    "mt5": (T5_DENSE, T5_GATED),
    "bart": seq2seq_specs("fc1", "fc2", "encoder_ffn_dim", "decoder_ffn_dim"),
    "mbart": seq2seq_specs("fc1", "fc2", "encoder_ffn_dim", "decoder_ffn_dim"),
}

# Families whose FFN width no config attribute can change: an export could not be loaded.
UNSHRINKABLE: dict[str, str] = {
    "bloom": "BLOOM's modeling code hard-codes its FFN width (4 × hidden_size); no config attribute can say a narrower "
    "width, so vanilla transformers could not load an export",
}
# Tried in order for a model_type that is not in the table; the width attribute is probed.
FALLBACK_SPECS: Specs = (BERT_STYLE, GATED_MLP, GPT2_MLP, FFNSpec(up="ffn.lin1", down="ffn.lin2"), NEOX_MLP, FC_MLP)
_WIDTH_ATTRS = (
    "intermediate_size",
    "n_inner",
    "ffn_dim",
    "d_ff",
    "d_inner",
    "hidden_dim",
    "ffn_hidden_size",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "moe_intermediate_size",
)


# --------------------------------------------------------------------------------------------- finding blocks


def _experts_blocks(model: nn.Module, spec: FFNSpec) -> list[FFNBlock]:
    module_path, _, up_param = spec.up.rpartition(".")
    down_param = spec.down.rpartition(".")[2]
    blocks = []
    for name, module in model.named_modules():
        if not (name.endswith("." + module_path) or name == module_path):
            continue
        has = lambda p: isinstance(getattr(module, p, None), torch.Tensor) or parametrize.is_parametrized(module, p)  # noqa: E731
        if not (has(up_param) and has(down_param)):
            continue
        layer = name[: -len(module_path) - 1] if name != module_path else ""
        adaptive = module.parametrizations[down_param][0] if parametrize.is_parametrized(module, down_param) else None
        blocks.append(FFNBlock(layer, spec, module, module, None, module, down_param, adaptive))
    return blocks


def _blocks_for(model: nn.Module, spec: FFNSpec) -> list[FFNBlock]:
    if spec.experts:
        blocks = _experts_blocks(model, spec)
        return [b for b in blocks if spec.within is None or spec.within in b.layer + "."]
    modules = dict(model.named_modules())
    blocks = []
    suffix = "." + spec.up
    for name, module in modules.items():
        if not (name.endswith(suffix) or name == spec.up) or not is_projection(module):
            continue
        layer = name[: -len(suffix)] if name.endswith(suffix) else ""
        if spec.within is not None and spec.within not in layer + ".":
            continue
        prefix = layer + "." if layer else ""
        down = modules.get(prefix + spec.down)
        gate = modules.get(prefix + spec.gate) if spec.gate else None
        wrapper = down if getattr(down, "is_awn_wrapper", False) else None
        if wrapper is not None:
            down = wrapper.inner
        if down is None or not is_projection(down) or (spec.gate and not is_projection(gate)):
            continue
        parent_name, _, attr = (prefix + spec.down).rpartition(".")
        blocks.append(FFNBlock(layer, spec, module, down, gate, modules[parent_name], attr, wrapper))
    return blocks


# The attribute a converted (or loaded) model carries its FFN specs in, so that every later step
# (prior, fold, truncate, FLOPs, provenance, exports) uses the specs it was converted with.
_SPEC_ATTR = "awncompress_ffn_spec"


def _as_specs(spec: SpecLike) -> Specs:
    return (spec,) if isinstance(spec, FFNSpec) else tuple(spec)


def attach_spec(model: nn.Module, spec: SpecLike) -> None:
    """Record ``spec`` on ``model``; :func:`specs_for` returns it from then on (copies keep it)."""
    setattr(model, _SPEC_ATTR, _as_specs(spec))


def _probe_width_attr(model: nn.Module, spec: FFNSpec, blocks: list[FFNBlock]) -> Optional[str]:
    """The config attribute that sets the width of ``blocks`` (rebuilt on the meta device), or None."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(type(model), "config_class"):
        return None
    target = max(b.width for b in blocks) + 3
    for attr in _WIDTH_ATTRS:
        if not hasattr(config, attr):
            continue
        probe = copy.deepcopy(config)
        setattr(probe, attr, target)
        try:
            with torch.device("meta"):
                rebuilt = type(model)(probe)
        except Exception:  # noqa: BLE001 - a config this attribute breaks simply is not the answer
            continue
        found = _blocks_for(rebuilt, spec)
        if found and all(b.width == target for b in found):
            return attr
    return None


def specs_for(model: nn.Module, spec: Optional[SpecLike] = None) -> Specs:
    """The FFN specs of ``model``: the ones given, the ones recorded on it, its table entry, or a
    fallback whose width attribute was probed. UnsupportedModelError when none is sure."""
    if spec is not None:
        return _as_specs(spec)
    recorded = getattr(model, _SPEC_ATTR, None)
    if recorded:
        return _as_specs(recorded)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in UNSHRINKABLE:
        raise UnsupportedModelError(f"model_type {model_type!r}: {UNSHRINKABLE[model_type]}")
    if model_type in FFN_SPECS:
        return FFN_SPECS[model_type]
    for candidate in FALLBACK_SPECS:
        blocks = _blocks_for(model, candidate)
        if not blocks:
            continue
        attr = _probe_width_attr(model, candidate, blocks)
        if attr is None:
            raise UnsupportedModelError(
                f"model_type {model_type!r} has FFN modules {candidate.up} / {candidate.down}, but no config attribute "
                f"awncompress knows ({', '.join(_WIDTH_ATTRS)}) sets their width, so an export could not be loaded; "
                f"name it: AWNConfig(spec=FFNSpec(up={candidate.up!r}, down={candidate.down!r}, d_ff_attr='...'))"
            )
        return (dataclasses.replace(candidate, d_ff_attr=attr),)
    raise UnsupportedModelError(_no_ffn_message(model, model_type))


def find_ffns(model: nn.Module, spec: Optional[SpecLike] = None) -> list[FFNBlock]:
    """Every FFN block of ``model`` in layer order; raises UnsupportedModelError if there is none."""
    specs = specs_for(model, spec)
    blocks = [b for s in specs for b in _blocks_for(model, s)]
    if not blocks:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        raise UnsupportedModelError(_no_ffn_message(model, model_type, specs))
    order = {id(m): i for i, m in enumerate(model.modules())}
    return sorted(blocks, key=lambda b: order.get(id(b.up), 0))


def _no_ffn_message(model: nn.Module, model_type: Optional[str], specs: Optional[Specs] = None) -> str:
    names = [n for n, m in model.named_modules() if is_projection(m)]
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    tried = (
        f"specs {list(specs)}"
        if specs
        else f"the known specs for {len(FFN_SPECS)} model types and the generic fallbacks"
    )
    return (
        f"no FFN blocks found in model_type {model_type!r} with {tried}. Linear modules: {shown or 'none'}. "
        "Name the FFN modules yourself, e.g. AWNConfig(spec=FFNSpec(up='mlp.fc1', down='mlp.fc2', "
        "d_ff_attr='intermediate_size'))"
    )


def set_config_widths(config: Any, blocks: list[FFNBlock]) -> None:
    """Record each kind of FFN's width (the largest of its blocks) in the config attribute vanilla
    transformers reads: exact for uniform widths, an upper bound for per-layer widths."""
    widths: dict[str, int] = {}
    for block in blocks:
        widths[block.spec.d_ff_attr] = max(widths.get(block.spec.d_ff_attr, 0), block.width)
    for attr, width in widths.items():
        setattr(config, attr, int(width))
