"""Attention heads as units, one level up from FFN neurons: find, measure, reorder and cut them.

A *unit* is one key/value group: its key and value heads, the query heads that read them and
their columns of the output projection. For multi-head attention (BERT, GPT-2) a unit is one
head; for grouped-query attention (Llama family) a unit is one KV group with all of its query
heads. Ordering and cutting whole groups keeps every group's query-heads-per-KV-head ratio, so
``num_attention_heads`` / ``num_key_value_heads`` stays a ratio the config can say, and the cut
shrinks the K/V projections and the KV cache as well as Q and O (keeping every KV head and
dropping query heads inside groups would save neither).

Permuting units moves whole head blocks (rotary embeddings and per-head q/k norms act inside a
head, so they are unchanged); outputs are identical. ``HEAD_SPECS`` lists the families whose
attention modules read the head count from their weights' shapes (``view(..., -1, head_dim)``) so a
cut model runs without edits to its code; GPT-2's ``split_size`` is updated on the module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn

from ..errors import UnsupportedModelError
from .ffn import _neuron_sums, _norms, _saliency, _select_linear, is_projection, neuron_axis


@dataclass(frozen=True)
class HeadSpec:
    """Where one family's attention lives, relative to its layer module.

    ``attn``: the module holding the q/k/v projections (``q``, ``k``, ``v`` are relative to it);
    ``o``: the output projection, relative to the layer. ``fused_qkv``: ``q`` names one projection
    producing ``[q; k; v]`` (GPT-2 ``c_attn``). ``config_heads``: the config can say a cut head count
    (``num_attention_heads``, ``num_key_value_heads`` and an explicit ``head_dim``), so uniform cuts
    load in vanilla transformers; otherwise the head size is derived from ``hidden_size / heads``
    and cut models load through ``awncompress.load_pretrained``.
    """

    attn: str
    q: str
    o: str
    k: Optional[str] = None
    v: Optional[str] = None
    fused_qkv: bool = False
    config_heads: bool = False


BERT_HEADS = HeadSpec(attn="attention.self", q="query", k="key", v="value", o="attention.output.dense")
GPT2_HEADS = HeadSpec(attn="attn", q="c_attn", o="attn.c_proj", fused_qkv=True)
LLAMA_HEADS = HeadSpec(attn="self_attn", q="q_proj", k="k_proj", v="v_proj", o="self_attn.o_proj", config_heads=True)

# Families whose attention forward takes the head count from the projections' shapes. Not here:
# MPNet and DeBERTa (per-head relative position terms), OLMo-2 (q/k norms over all heads at once).
HEAD_SPECS: dict[str, HeadSpec] = {
    **{t: BERT_HEADS for t in ("bert", "roberta", "xlm-roberta", "camembert", "electra")},
    "gpt2": GPT2_HEADS,
    **{t: LLAMA_HEADS for t in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text")},
}

# Attributes attention modules keep of their head count or width; refreshed after a cut.
_COUNT_ATTRS = ("num_heads", "num_attention_heads")
_WIDTH_ATTRS = ("all_head_size", "split_size")


def head_spec_for(model: nn.Module) -> HeadSpec:
    """The head spec of ``model``'s family; UnsupportedModelError (naming the families) if none."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in HEAD_SPECS:
        raise UnsupportedModelError(
            f"attention-head cuts are not supported for model_type {model_type!r}; "
            f"supported: {', '.join(sorted(HEAD_SPECS))}"
        )
    return HEAD_SPECS[model_type]


@dataclass
class HeadBlock:
    """One layer's attention: its projections, its unit (KV group) layout, and its AWN wrapper."""

    layer: str
    spec: HeadSpec
    attn: nn.Module
    q: nn.Module
    k: nn.Module
    v: nn.Module
    o: nn.Module  # the vanilla output projection (inside the wrapper once converted)
    o_parent: nn.Module
    o_attr: str
    adaptive: Optional[nn.Module] = None

    @property
    def head_dim(self) -> int:
        """Size of one head."""
        value = getattr(self.attn, "head_dim", None) or getattr(self.attn, "attention_head_size", None)
        return int(value)

    def _rows(self, module: nn.Module) -> int:
        return int(module.weight.shape[neuron_axis(module, "in")])

    @property
    def q_dim(self) -> int:
        """Query heads × head size (the output projection's input width)."""
        return int(self.o.weight.shape[neuron_axis(self.o, "out")])

    @property
    def kv_dim(self) -> int:
        """Key (= value) heads × head size."""
        return self.q_dim if self.spec.fused_qkv else self._rows(self.k)

    @property
    def units(self) -> int:
        """Number of KV groups (= heads for multi-head attention)."""
        return self.kv_dim // self.head_dim

    @property
    def group(self) -> int:
        """Query heads per unit."""
        return self.q_dim // self.kv_dim

    @property
    def n_heads(self) -> int:
        """Query heads."""
        return self.q_dim // self.head_dim

    @property
    def unit_size(self) -> int:
        """Output-projection columns per unit."""
        return self.group * self.head_dim

    def _q_index(self, units: torch.Tensor) -> torch.Tensor:
        return (units.long().unsqueeze(1) * self.unit_size + torch.arange(self.unit_size)).flatten()

    def _kv_index(self, units: torch.Tensor) -> torch.Tensor:
        return (units.long().unsqueeze(1) * self.head_dim + torch.arange(self.head_dim)).flatten()

    def projections(self) -> list[nn.Module]:
        """The distinct q/k/v/o modules (one fused qkv module for GPT-2)."""
        seen: list[nn.Module] = []
        for m in (self.q, self.k, self.v, self.o):
            if all(m is not s for s in seen):
                seen.append(m)
        return seen

    def unit_out_norms(self) -> torch.Tensor:
        """Frobenius norm of each unit's block of output-projection columns: [units]."""
        cols = _norms(self.o.weight, neuron_axis(self.o, "out"))
        return cols.pow(2).view(self.units, self.unit_size).sum(1).sqrt()

    def channel_out_norms(self) -> torch.Tensor:
        """Norm of each output-projection column (one per context channel): [q_dim]."""
        return _norms(self.o.weight, neuron_axis(self.o, "out"))

    def unit_saliency(self) -> torch.Tensor:
        """Σ |w · ∂L/∂w| over each unit's q, k and v rows and its output-projection columns, from the
        gradients the weights hold: [units]."""
        out = _neuron_sums(_saliency(self.o.weight), neuron_axis(self.o, "out"))
        if self.spec.fused_qkv:
            rows = _neuron_sums(_saliency(self.q.weight), neuron_axis(self.q, "in"))
            q, k, v = rows.split([self.q_dim, self.kv_dim, self.kv_dim])
        else:
            q, k, v = (_neuron_sums(_saliency(m.weight), neuron_axis(m, "in")) for m in (self.q, self.k, self.v))
        return sum(x.view(self.units, -1).sum(1) for x in (out, q, k, v))

    def unit_in_norms(self) -> torch.Tensor:
        """Frobenius norm of each unit's q, k and v rows together: [units]."""
        if self.spec.fused_qkv:
            rows = _norms(self.q.weight, neuron_axis(self.q, "in")).pow(2)
            q, k, v = rows.split([self.q_dim, self.kv_dim, self.kv_dim])
        else:
            q, k, v = (_norms(m.weight, neuron_axis(m, "in")).pow(2) for m in (self.q, self.k, self.v))
        return (q.view(self.units, -1).sum(1) + k.view(self.units, -1).sum(1) + v.view(self.units, -1).sum(1)).sqrt()

    @torch.no_grad()
    def select_(self, units: torch.Tensor) -> None:
        """Keep (and reorder) the KV groups ``units`` in place: a permutation leaves outputs unchanged,
        the first n indices cut the layer to n units."""
        units = units.long().cpu()
        q_rows, kv_rows = self._q_index(units), self._kv_index(units)
        if self.spec.fused_qkv:
            q_dim, kv_dim = self.q_dim, self.kv_dim
            _select_linear(self.q, torch.cat([q_rows, q_dim + kv_rows, q_dim + kv_dim + kv_rows]), "in")
        else:
            _select_linear(self.q, q_rows, "in")
            _select_linear(self.k, kv_rows, "in")
            _select_linear(self.v, kv_rows, "in")
        _select_linear(self.o, q_rows, "out")
        for attr in _COUNT_ATTRS:
            if isinstance(getattr(self.attn, attr, None), int):
                setattr(self.attn, attr, self.n_heads)
        for attr in _WIDTH_ATTRS:
            if isinstance(getattr(self.attn, attr, None), int):
                setattr(self.attn, attr, self.q_dim)

    def hook_context(self, fn: Callable[[torch.Tensor], None]) -> Any:
        """Call ``fn(ctx)`` with the attention context [..., q_dim] (the output projection's input) on
        every forward; returns a removable handle."""
        target = self.adaptive if self.adaptive is not None else self.o
        return target.register_forward_pre_hook(lambda _m, args: fn(args[0]))


def _block_at(modules: dict[str, nn.Module], layer: str, spec: HeadSpec) -> Optional[HeadBlock]:
    prefix = layer + "." if layer else ""
    attn = modules.get(prefix + spec.attn)
    o = modules.get(prefix + spec.o)
    if attn is None or o is None:
        return None
    q = modules.get(f"{prefix}{spec.attn}.{spec.q}")
    k = q if spec.fused_qkv else modules.get(f"{prefix}{spec.attn}.{spec.k}")
    v = q if spec.fused_qkv else modules.get(f"{prefix}{spec.attn}.{spec.v}")
    wrapper = o if getattr(o, "is_awn_wrapper", False) else None
    if wrapper is not None:
        o = wrapper.inner
    if not all(is_projection(m) for m in (q, k, v, o)):
        return None
    parent, _, attr = (prefix + spec.o).rpartition(".")
    return HeadBlock(layer, spec, attn, q, k, v, o, modules[parent], attr, wrapper)


def find_heads(model: nn.Module) -> list[HeadBlock]:
    """Every attention block of ``model`` in layer order (UnsupportedModelError for a family not in
    ``HEAD_SPECS``, or when none is found)."""
    spec = head_spec_for(model)
    modules = dict(model.named_modules())
    suffix = "." + spec.attn
    layers = [n[: -len(suffix)] for n in modules if n.endswith(suffix)]
    blocks = [b for b in (_block_at(modules, layer, spec) for layer in layers) if b is not None]
    if not blocks:
        raise UnsupportedModelError(
            f"no attention blocks {spec.attn}.{spec.q} / {spec.o} found in {type(model).__name__}"
        )
    return blocks


def has_head_spec(model: nn.Module) -> bool:
    """Whether attention heads of this model's family can be ordered and cut."""
    return getattr(getattr(model, "config", None), "model_type", None) in HEAD_SPECS


def layer_heads(model: nn.Module) -> list[int]:
    """Query heads of each layer."""
    return [b.n_heads for b in find_heads(model)]


def set_config_heads(config: Any, blocks: list[HeadBlock]) -> bool:
    """Write uniform head counts to a config that can say them (see ``HeadSpec.config_heads``).

    Returns whether the config now describes the cut model exactly (vanilla-loadable); the config is
    left alone when it cannot (heads differ between layers, or the family derives the head size).
    """
    if not blocks or not blocks[0].spec.config_heads or len({(b.n_heads, b.units) for b in blocks}) != 1:
        return False
    config.num_attention_heads = blocks[0].n_heads
    config.num_key_value_heads = blocks[0].units
    config.head_dim = blocks[0].head_dim
    return True
