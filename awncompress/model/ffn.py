"""One FFN block and the neuron-level operations every step uses: count, score norms, select, price.

Three layouts, one interface (neuron j is a hidden unit of the FFN):

* **dense**: separate Linear (or GPT-2 ``Conv1D``) projections: up [and gate] produce neuron j
  (row j), down consumes it (column j);
* **fused**: one Linear produces both halves, ``[gate; up]`` (Phi-3 ``gate_up_proj``, ModernBERT
  ``Wi``): neuron j is rows j and d_ff + j;
* **experts**: a mixture-of-experts block storing every expert as 3-D parameters
  ``gate_up_proj [E, 2·d_ff, h]`` and ``down_proj [E, h, d_ff]`` (Mixtral, Qwen-MoE, OLMoE in
  transformers 5): each expert has its own neurons, indexed ``[E, d_ff]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.nn.utils import parametrize
from transformers.pytorch_utils import Conv1D

from ..errors import UnsupportedModelError

# Set on a grown FFN's up projection: the width it had before growing (read by FFNBlock.base_width).
BASE_WIDTH_ATTR = "awn_base_width"


@dataclass(frozen=True)
class FFNSpec:
    """Names of one kind of FFN, relative to its layer module, and the config attribute of its width.

    Example (BERT): ``FFNSpec(up="intermediate.dense", down="output.dense")``; gated MLPs also name
    ``gate``. ``fused``: ``up`` produces ``[gate; up]`` (neuron j is rows j and d_ff + j).
    ``experts``: ``up``/``down`` name the 3-D parameters ``gate_up_proj`` / ``down_proj`` of a
    mixture-of-experts module. ``within``: only layers whose qualified name contains this (the
    encoder and decoder stacks of a seq2seq model have their own width attributes). Pass your own
    spec to ``AWNConfig(spec=...)`` for a model type awncompress does not know.
    """

    up: str
    down: str
    gate: Optional[str] = None
    d_ff_attr: str = "intermediate_size"
    fused: bool = False
    experts: bool = False
    within: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (for awncompress.json)."""
        return dataclasses.asdict(self)


def is_projection(module: Any) -> bool:
    """Whether ``module`` is a projection awncompress can slice (nn.Linear or GPT-2 Conv1D)."""
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


def _norms(weight: torch.Tensor, axis: int, p: int = 2) -> torch.Tensor:
    """L2 (or, with ``p=1``, L1) norm of each slice of ``weight`` along ``axis`` (one per neuron)."""
    w = weight.detach().float()
    dims = [d for d in range(w.dim()) if d != axis]
    return w.abs().sum(dim=dims) if p == 1 else w.pow(2).sum(dim=dims).sqrt()


def _saliency(weight: torch.Tensor) -> torch.Tensor:
    """|w · ∂L/∂w| element-wise (zeros where the weight holds no gradient)."""
    if weight.grad is None:
        return torch.zeros_like(weight, dtype=torch.float32)
    return (weight.detach().float() * weight.grad.float()).abs()


def _neuron_sums(values: torch.Tensor, axis: int) -> torch.Tensor:
    """Sum of ``values`` over every axis but the neuron axis."""
    return values.sum(dim=[d for d in range(values.dim()) if d != axis])


@torch.no_grad()
def _select_linear(module: nn.Module, index: torch.Tensor, role: str) -> None:
    axis = neuron_axis(module, role)
    idx = index.to(module.weight.device)
    module.weight = nn.Parameter(module.weight.index_select(axis, idx), module.weight.requires_grad)
    if role == "in" and module.bias is not None:
        module.bias = nn.Parameter(module.bias.index_select(0, idx), module.bias.requires_grad)
    n = len(index)
    if isinstance(module, Conv1D):
        setattr(module, "nf" if role == "in" else "nx", n)
    else:
        setattr(module, "out_features" if role == "in" else "in_features", n)


@dataclass
class FFNBlock:
    """One layer's FFN: its modules, where the down projection hangs, and the spec that found it.

    ``up``/``down`` are the projections (for experts: the experts module holding both parameters).
    ``adaptive`` is the AWN unit once converted (the wrapper around ``down``, or for experts the
    parametrization of ``down_proj``).
    """

    layer: str  # qualified name of the layer module, e.g. "bert.encoder.layer.3"
    spec: FFNSpec
    up: nn.Module
    down: nn.Module
    gate: Optional[nn.Module]
    down_parent: nn.Module
    down_attr: str
    adaptive: Optional[nn.Module] = None

    # ----------------------------------------------------------------------------- layout

    @property
    def kind(self) -> str:
        """ "experts", "fused" or "dense" (see the module docstring)."""
        return "experts" if self.spec.experts else "fused" if self.spec.fused else "dense"

    def _expert_param(self, which: str) -> torch.Tensor:
        attr = (self.spec.up if which == "up" else self.spec.down).rpartition(".")[2]
        if which == "down" and parametrize.is_parametrized(self.up, attr):
            return self.up.parametrizations[attr].original
        return getattr(self.up, attr)

    @property
    def width(self) -> int:
        """Current number of hidden neurons (per expert for experts)."""
        if self.kind == "experts":
            return int(self._expert_param("down").shape[-1])
        rows = int(self.up.weight.shape[neuron_axis(self.up, "in")])
        return rows // 2 if self.kind == "fused" else rows

    @property
    def base_width(self) -> int:
        """The width before the layer grew (``growth.py``; its width when it never did): width
        fractions stay fractions of it."""
        return int(getattr(self.up, BASE_WIDTH_ATTR, self.width))

    @property
    def experts(self) -> int:
        """Number of experts (1 for a dense FFN)."""
        return int(self._expert_param("down").shape[0]) if self.kind == "experts" else 1

    def modules(self) -> list[nn.Module]:
        """The modules holding this block's weights."""
        return [self.up] if self.kind == "experts" else [m for m in (self.up, self.gate, self.down) if m is not None]

    def parameters(self) -> list[torch.Tensor]:
        """The FFN weights (for the AWN weight prior): up/gate/down weights of this block."""
        if self.kind == "experts":
            return [self._expert_param("up"), self._expert_param("down")]
        return [m.weight for m in self.modules()]

    # ----------------------------------------------------------------------------- neurons

    def in_norms(self) -> torch.Tensor:
        """Norm of each neuron's input weights (up and gate rows together): [width] or [E, width]."""
        if self.kind == "experts":
            w = self._expert_param("up").detach().float()  # [E, 2I, h]
            return (w.pow(2).sum(-1).view(w.shape[0], 2, -1).sum(1)).sqrt()
        sq = _norms(self.up.weight, neuron_axis(self.up, "in")).pow(2)
        if self.kind == "fused":
            sq = sq.view(2, -1).sum(0)
        if self.gate is not None:
            sq = sq + _norms(self.gate.weight, neuron_axis(self.gate, "in")).pow(2)
        return sq.sqrt()

    def out_norms(self, p: int = 2) -> torch.Tensor:
        """L2 (or, with ``p=1``, L1) norm of each neuron's column of the down projection: [width] or [E, width]."""
        if self.kind == "experts":
            w = self._expert_param("down").detach().float()  # [E, h, I] → [E, I]
            return w.abs().sum(1) if p == 1 else w.pow(2).sum(1).sqrt()
        return _norms(self.down.weight, neuron_axis(self.down, "out"), p)

    def first_order_saliency(self) -> torch.Tensor:
        """Σ |w · ∂L/∂w| over each neuron's weights (its up and gate rows, its down column), from the
        gradients the weights hold: [width] or [E, width]. A weight without a gradient adds nothing."""
        if self.kind == "experts":
            up, down = (_saliency(self._expert_param(which)) for which in ("up", "down"))  # [E, 2I, h], [E, h, I]
            return up.sum(-1).view(up.shape[0], 2, -1).sum(1) + down.sum(1)
        total = _neuron_sums(_saliency(self.down.weight), neuron_axis(self.down, "out"))
        up = _neuron_sums(_saliency(self.up.weight), neuron_axis(self.up, "in"))
        total = total + (up.view(2, -1).sum(0) if self.kind == "fused" else up)
        if self.gate is not None:
            total = total + _neuron_sums(_saliency(self.gate.weight), neuron_axis(self.gate, "in"))
        return total

    @torch.no_grad()
    def select_(self, index: torch.Tensor) -> None:
        """Keep (and reorder) neurons ``index`` ([n], or [E, n] for experts) in place.

        A permutation leaves the function unchanged; the first n indices truncate.
        """
        if self.kind == "experts":
            self._select_experts(index)
            return
        index = index.long()
        width = self.width
        rows = torch.cat([index, index + width]) if self.kind == "fused" else index
        _select_linear(self.up, rows, "in")
        if self.gate is not None:
            _select_linear(self.gate, index, "in")
        _select_linear(self.down, index, "out")

    def _select_experts(self, index: torch.Tensor) -> None:
        if parametrize.is_parametrized(self.up):
            raise UnsupportedModelError("fold_ the model before selecting expert neurons")
        index = index.long().to(self._expert_param("down").device)
        if index.dim() == 1:
            index = index.unsqueeze(0).expand(self.experts, -1)
        width = self.width
        up_name, down_name = self.spec.up.rpartition(".")[2], self.spec.down.rpartition(".")[2]
        up, down = getattr(self.up, up_name), getattr(self.up, down_name)
        rows = torch.cat([index, index + width], dim=1)  # [E, 2n]: the gate and up halves
        new_up = torch.gather(up, 1, rows.unsqueeze(-1).expand(-1, -1, up.shape[-1]))
        new_down = torch.gather(down, 2, index.unsqueeze(1).expand(-1, down.shape[1], -1))
        setattr(self.up, up_name, nn.Parameter(new_up.contiguous(), up.requires_grad))
        setattr(self.up, down_name, nn.Parameter(new_down.contiguous(), down.requires_grad))
        if hasattr(self.up, "intermediate_dim"):
            self.up.intermediate_dim = index.shape[1]

    def flops(self, tokens: int, width: Optional[int] = None, top_k: int = 1) -> int:
        """Matmul FLOPs of one application over ``tokens`` tokens (at ``width`` neurons if given).

        Experts: each token runs through ``top_k`` experts.
        """
        width = self.width if width is None else width
        if self.kind == "experts":
            hidden = int(self._expert_param("down").shape[1])
            return 2 * tokens * top_k * 3 * hidden * width
        per_neuron = sum(int(m.weight.numel()) for m in self.modules()) // self.width
        return 2 * tokens * per_neuron * width

    # ----------------------------------------------------------------------------- activations

    def hook_hidden(self, fn: Callable[[torch.Tensor], None]) -> Any:
        """Call ``fn(h)`` with the hidden activations [..., width] (the input of the down projection) on
        every forward; returns a removable handle. Dense and fused blocks (experts: see
        :meth:`hook_expert_hidden`)."""
        if self.kind == "experts":
            raise UnsupportedModelError("experts have no down projection module; use hook_expert_hidden")
        target = self.adaptive if self.adaptive is not None else self.down
        return target.register_forward_pre_hook(lambda _m, args: fn(args[0]))

    def hook_expert_hidden(self, fn: Callable[[int, torch.Tensor, torch.Tensor], None]) -> Any:
        """Call ``fn(expert, token_index, h)`` for every expert on every forward (experts only).

        ``h`` [tokens routed to the expert, width] is recomputed from the expert's weights, as the
        experts kernels compute it (``act(gate) * up``); ``token_index`` says which rows of the
        flattened input they are.
        """

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            top_k_index = args[1] if len(args) > 1 else kwargs["top_k_index"]
            up = self._expert_param("up")
            width = self.width
            for expert in range(self.experts):
                tokens = (top_k_index == expert).any(-1).nonzero().flatten()
                if tokens.numel() == 0:
                    continue
                gate_up = nn.functional.linear(hidden[tokens], up[expert])
                h = module.act_fn(gate_up[:, :width]) * gate_up[:, width:]
                fn(expert, tokens, h)

        return self.up.register_forward_pre_hook(hook, with_kwargs=True)


# ----------------------------------------------------------------------------- narrow passes


def _linear_weight(module: nn.Module) -> torch.Tensor:
    """The weight as nn.Linear lays it out, [out, in] (GPT-2's Conv1D stores it transposed)."""
    return module.weight.t() if isinstance(module, Conv1D) else module.weight


def produce_first(module: nn.Module, x: torch.Tensor, rows: Any) -> torch.Tensor:
    """``module(x)`` restricted to the output neurons ``rows`` (a slice, or an index tensor for the
    two halves of a fused projection): the up/gate projection of a width pass that keeps only
    those neurons computes nothing else, forward or backward."""
    bias = module.bias[rows] if module.bias is not None else None
    return nn.functional.linear(x, _linear_weight(module)[rows], bias)


def consume_first(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``module`` (a down projection) applied to the first ``h.shape[-1]`` of its input neurons."""
    return nn.functional.linear(h, _linear_weight(module)[:, : h.shape[-1]], module.bias)
