"""Where the FFN of each transformer layer lives, per model family.

Like peft's target-module table: one `FFNSpec` per `model_type`, a generic fallback that tries the
usual BERT-style and gated-MLP names, and a loud error listing the model's modules otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from .errors import UnsupportedModelError


@dataclass(frozen=True)
class FFNSpec:
    """Names of one layer's FFN modules, relative to the layer module, and the config attribute of d_ff.

    Example (BERT): ``FFNSpec(up="intermediate.dense", down="output.dense")``; gated MLPs also name
    ``gate``. Pass your own spec to :func:`find_ffns` / ``AWNConfig(spec=...)`` for a model type
    awncompress does not know.
    """

    up: str
    down: str
    gate: Optional[str] = None
    d_ff_attr: str = "intermediate_size"


BERT_STYLE = FFNSpec(up="intermediate.dense", down="output.dense")
GATED_MLP = FFNSpec(up="mlp.up_proj", down="mlp.down_proj", gate="mlp.gate_proj")
GPT2_MLP = FFNSpec(up="mlp.c_fc", down="mlp.c_proj", d_ff_attr="n_inner")
DISTILBERT_FFN = FFNSpec(up="ffn.lin1", down="ffn.lin2", d_ff_attr="hidden_dim")

FFN_SPECS: dict[str, FFNSpec] = {
    "bert": BERT_STYLE,
    "roberta": BERT_STYLE,
    "xlm-roberta": BERT_STYLE,
    "camembert": BERT_STYLE,
    "electra": BERT_STYLE,
    "distilbert": DISTILBERT_FFN,
    "gpt2": GPT2_MLP,
    "llama": GATED_MLP,
    "mistral": GATED_MLP,
    "qwen2": GATED_MLP,
    "qwen3": GATED_MLP,
}
# Tried in order for a model_type that is not in the table.
FALLBACK_SPECS: tuple[FFNSpec, ...] = (BERT_STYLE, GATED_MLP, GPT2_MLP, DISTILBERT_FFN)


@dataclass
class FFNBlock:
    """One layer's FFN: the modules and where the down projection hangs, so it can be swapped."""

    layer: str  # qualified name of the layer module, e.g. "bert.encoder.layer.3"
    up: nn.Module
    down: nn.Module
    gate: Optional[nn.Module]
    down_parent: nn.Module
    down_attr: str
    adaptive: Optional[nn.Module] = None  # the AdaptiveFFN wrapping ``down``, once converted

    @property
    def width(self) -> int:
        """Current number of hidden neurons."""
        return neuron_count(self.up, role="in")


def _is_projection(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, Conv1D))


def neuron_axis(module: nn.Module, role: str) -> int:
    """Axis of ``module.weight`` indexed by FFN neurons.

    role "in": module produces the hidden neurons (up/gate); "out": it consumes them (down).
    Conv1D (GPT-2) stores its weight transposed relative to nn.Linear.
    """
    produces = role == "in"
    if isinstance(module, Conv1D):
        return 1 if produces else 0
    if isinstance(module, nn.Linear):
        return 0 if produces else 1
    raise UnsupportedModelError(f"FFN projection {type(module).__name__} is neither nn.Linear nor Conv1D")


def neuron_count(module: nn.Module, role: str) -> int:
    """Number of FFN neurons a projection produces (role "in") or consumes (role "out")."""
    return int(module.weight.shape[neuron_axis(module, role)])


def _blocks_for(model: nn.Module, spec: FFNSpec) -> list[FFNBlock]:
    modules = dict(model.named_modules())
    blocks = []
    suffix = "." + spec.up
    for name, module in modules.items():
        if not (name.endswith(suffix) or name == spec.up) or not _is_projection(module):
            continue
        layer = name[: -len(suffix)] if name.endswith(suffix) else ""
        prefix = layer + "." if layer else ""
        down = modules.get(prefix + spec.down)
        gate = modules.get(prefix + spec.gate) if spec.gate else None
        wrapper = down if getattr(down, "is_awn_wrapper", False) else None
        if wrapper is not None:
            down = wrapper.inner
        if down is None or not _is_projection(down) or (spec.gate and gate is None):
            continue
        parent_name, _, attr = (prefix + spec.down).rpartition(".")
        blocks.append(FFNBlock(layer, module, down, gate, modules[parent_name], attr, wrapper))
    return blocks


# The attribute a converted (or loaded) model carries its FFN spec in, so that every later step
# (prior, fold, truncate, FLOPs, provenance, exports) uses the spec it was converted with.
_SPEC_ATTR = "awncompress_ffn_spec"


def attach_spec(model: nn.Module, spec: FFNSpec) -> None:
    """Record ``spec`` on ``model``; :func:`spec_for` returns it from then on (copies keep it)."""
    setattr(model, _SPEC_ATTR, spec)


def spec_for(model: nn.Module, spec: Optional[FFNSpec] = None) -> FFNSpec:
    """The FFN spec for ``model``: the one given, the one recorded on it, the table entry for its
    model_type, or a generic fallback."""
    if spec is not None:
        return spec
    recorded = getattr(model, _SPEC_ATTR, None)
    if isinstance(recorded, FFNSpec):
        return recorded
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in FFN_SPECS:
        return FFN_SPECS[model_type]
    for candidate in FALLBACK_SPECS:
        if _blocks_for(model, candidate):
            return candidate
    raise UnsupportedModelError(_no_ffn_message(model, model_type))


def find_ffns(model: nn.Module, spec: Optional[FFNSpec] = None) -> list[FFNBlock]:
    """Every FFN block of ``model`` in layer order; raises UnsupportedModelError if there is none."""
    spec = spec_for(model, spec)
    blocks = _blocks_for(model, spec)
    if not blocks:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        raise UnsupportedModelError(_no_ffn_message(model, model_type, spec))
    return blocks


def _no_ffn_message(model: nn.Module, model_type: Optional[str], spec: Optional[FFNSpec] = None) -> str:
    names = [n for n, m in model.named_modules() if _is_projection(m)]
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    tried = f"spec {spec}" if spec else f"the known specs for {sorted(set(FFN_SPECS))} and the generic fallbacks"
    return (
        f"no FFN blocks found in model_type {model_type!r} with {tried}. "
        f"Linear modules: {shown or 'none'}. Name the FFN modules yourself, e.g. "
        "AWNConfig(spec=FFNSpec(up='mlp.fc1', down='mlp.fc2', d_ff_attr='intermediate_size'))"
    )


def set_config_width(config, spec: FFNSpec, width: int) -> None:
    """Record a uniform FFN width in the config attribute vanilla transformers reads."""
    setattr(config, spec.d_ff_attr, int(width))


@torch.no_grad()
def select_neurons_(block: FFNBlock, index: torch.Tensor) -> None:
    """Keep (and reorder) the FFN neurons ``index`` of ``block`` in place.

    With a permutation this leaves the function unchanged; with the first w indices it truncates.
    Rows of up/gate (and their biases) and the matching columns of down are selected together.
    """
    for module, role in ((block.up, "in"), (block.gate, "in"), (block.down, "out")):
        if module is None:
            continue
        axis = neuron_axis(module, role)
        idx = index.to(module.weight.device)
        module.weight = nn.Parameter(module.weight.index_select(axis, idx), module.weight.requires_grad)
        if role == "in" and module.bias is not None:
            module.bias = nn.Parameter(module.bias.index_select(0, idx), module.bias.requires_grad)
        n = len(index)
        if isinstance(module, Conv1D):
            if role == "in":
                module.nf = n
            else:
                module.nx = n
        elif role == "in":
            module.out_features = n
        else:
            module.in_features = n
