"""vLLM: the learned per-layer widths as a folder vLLM's native ``DeciLMForCausalLM`` serves.

A uniform export is a plain transformers folder that ``vllm serve`` loads as it is. Per-layer widths
need a config that says one FFN width per layer: the DeciLM / Nemotron-NAS ``block_configs`` (see
deci.py), which vLLM's ``nemotron_nas.py`` reads, with the weights of the per-layer export unchanged.
transformers has no class for that config, so the folder carries configuration_decilm.py (a Llama
config with attribute-style blocks, no model code) and is served with ``--trust-remote-code``.

vLLM cannot run beside this package's transformers (it pins an older one), so the check before the
rename rebuilds the model the way vLLM's class does, from the folder's config alone (each block's FFN
width from ``ffn_mult`` by its formula, its KV heads from ``n_heads_in_group``), loads the folder's
weights into it with nothing missing or left over, and compares its logits with the per-layer
transformers export. ``bench/vllm_check.py`` runs the folders in vLLM itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from ..checkpoint.provenance import PROVENANCE_FILE
from ..errors import UnsupportedModelError
from ..files.manifest import MANIFEST
from .common import linked_copy
from .deci import deci_config, deci_width

CONFIG_MODULE = Path(__file__).with_name("configuration_decilm.py")
AUTO_MAP = {"AutoConfig": "configuration_decilm.DeciLMConfig"}
TOLERANCE = 1e-4  # relative: the same float32 matmuls in another module tree
VLLM_COMMAND = "vllm serve PATH --trust-remote-code"  # PATH: this folder


def write_vllm(reference: nn.Module, hf: Path, final: Path, widths: list[int], ids: list[int]) -> tuple[str, dict]:
    """The DeciLM folder for the per-layer export ``hf`` in ``final``, checked (see the module docstring);
    returns the weights file name and the record entries."""
    config = {**deci_config(json.loads((hf / "config.json").read_text()), widths), "auto_map": AUTO_MAP}
    linked_copy(hf, final, config, skip=(PROVENANCE_FILE, MANIFEST, "README.md"))  # finish() writes those
    shutil.copyfile(CONFIG_MODULE, final / CONFIG_MODULE.name)
    return "model.safetensors", {
        "vllm": {
            "architecture": config["architectures"][0],
            "serve": VLLM_COMMAND,
            "config_module": CONFIG_MODULE.name,
        },
        "check": check_vllm_folder(final, reference, ids),
    }


def _as_vllm_builds(folder: Path) -> nn.Module:
    """A Llama model shaped from the folder's DeciLM config as vLLM's class shapes it, weights loaded."""
    import transformers

    from .configuration_decilm import DeciLMConfig

    config = DeciLMConfig.from_pretrained(folder)
    hidden, heads = int(config.hidden_size), int(config.num_attention_heads)
    widths = [deci_width(b.ffn.ffn_mult, hidden) for b in config.block_configs]
    kv = {heads // int(b.attention.n_heads_in_group) for b in config.block_configs}
    if len(kv) != 1 or len(widths) != int(config.num_hidden_layers):
        raise UnsupportedModelError(
            f"{folder.name}: block_configs do not give one FFN width per layer and one KV count"
        )
    plain = {k: v for k, v in config.to_dict().items() if k not in ("block_configs", "auto_map", "model_type")}
    llama = transformers.LlamaConfig(**{**plain, "intermediate_size": max(widths), "num_key_value_heads": kv.pop()})
    model = transformers.LlamaForCausalLM(llama)
    for layer, width in zip(model.model.layers, widths):
        mlp = layer.mlp
        mlp.gate_proj, mlp.up_proj = nn.Linear(hidden, width, bias=False), nn.Linear(hidden, width, bias=False)
        mlp.down_proj = nn.Linear(width, hidden, bias=False)
    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(file))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a shape the config does not give
        raise UnsupportedModelError(f"{folder.name}: weights do not fit the DeciLM config: {exc}") from None
    tied = bool(llama.tie_word_embeddings)
    if unexpected or set(missing) - ({"lm_head.weight"} if tied else set()):
        raise UnsupportedModelError(f"{folder.name}: weights missing {missing} or unexpected {unexpected}")
    if tied:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()


def check_vllm_folder(folder: Path, reference: nn.Module, ids: list[int]) -> dict[str, Any]:
    """Raise unless the folder, read as vLLM reads it, gives the reference's logits on ``ids``."""
    model = _as_vllm_builds(folder)
    batch = torch.tensor([ids])
    with torch.no_grad():
        got, want = model(input_ids=batch).logits.float(), reference(input_ids=batch).logits.float()
    diff = float((got - want).abs().max())
    tol = TOLERANCE * max(1.0, float(want.abs().max()))
    if not diff <= tol:
        raise UnsupportedModelError(
            f"the DeciLM folder does not reproduce the per-layer export: max |logit diff| {diff:.3g} > {tol:.3g}"
        )
    return {
        "runtime": "the model vLLM's DeciLMForCausalLM builds from config.json, in transformers",
        "prompt_tokens": len(ids),
        "max_abs_diff": float(f"{diff:.3g}"),
        "summary": f"DeciLM config read as vLLM reads it reproduces the per-layer export's logits "
        f"on a {len(ids)}-token prompt (max diff {diff:.2g} <= {tol:.2g})",
    }
