"""Growing an FFN past its pretrained width (issue 31): new neurons after the learned order.

AWN's width is unbounded: a layer whose learned k-quantile passes the neurons it has gains some.
New neuron j's input weights (its up row, and its gate row in a gated FFN) come from ``init``; its
output weights (column j of the down projection) are zero, so the model computes exactly what it
did before growing. The new neurons sit after every existing one, where the layer's profile scales
them least, so the profile decides whether they survive an export.

``init="tiny"`` takes the input weights from TINY's expressivity bottleneck (Verbockhaven et al.,
2024, "Growing Tiny Networks: Spotting Expressivity Bottlenecks and Fixing Them Optimally", §3).
Over T tokens with FFN input x_t, hidden activations h_t (the down projection's input) and desired
update v_t = −∂L/∂y_t of the FFN output:

1. the best update of the existing down projection, δW* = argmin_δW Σ_t ‖v_t − δW h_t‖², explains
   part of v; the bottleneck is what it cannot, v⊥_t = v_t − δW* h_t;
2. with S = (1/T) Σ_t x_t x_tᵀ and N = (1/T) Σ_t x_t v⊥_tᵀ, the K neurons (α_k, ω_k) that most
   decrease the loss to first order (activation linearised) are α_k = √σ_k S^{-1/2} u_k and
   ω_k = √σ_k v_k, from the SVD S^{-1/2} N = Σ_k σ_k u_k v_kᵀ.

Here ω starts at zero (the function must not change when a layer grows); with α_k as TINY's, the
first gradient step on ω_k is along TINY's ω_k (−∂L/∂ω_k ∝ Nᵀ α_k = σ_k^{3/2} v_k). Each α_k is
rescaled to the mean norm of the layer's input rows, so a new neuron works in the same range of its
activation as the old ones. TINY's analysis is for ``act(α·x)``; a gated FFN's new neuron gets α as
its up row and a random gate row (a random half-space gate). ``init="random"`` draws every new
input row at random, at the same norms: the comparison the issue asks for.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..errors import UnsupportedModelError
from .families import find_ffns
from .ffn import BASE_WIDTH_ATTR, FFNBlock, neuron_axis

GROW_INITS: tuple[str, ...] = ("tiny", "random")
ROUND_TO = 8  # a layer grows by whole multiples of this many neurons (matmul-friendly widths)
_EPS = 1e-4  # ridge on the covariances, relative to their mean diagonal


class BottleneckStats:
    """Running sums over tokens of one FFN layer that TINY's solution needs (float64 on the CPU)."""

    def __init__(self) -> None:
        self.tokens = 0
        self.sums: dict[str, torch.Tensor] = {}

    def add(self, x: torch.Tensor, hidden: torch.Tensor, grad: torch.Tensor) -> None:
        """Add tokens: FFN inputs ``x`` [T, h], hidden activations [T, d], ∂L/∂y ``grad`` [T, h]."""
        x, hidden, goal = (t.detach().reshape(-1, t.shape[-1]).double().cpu() for t in (x, hidden, grad))
        goal = -goal
        for name, (a, b) in {
            "xx": (x, x),
            "xh": (x, hidden),
            "hh": (hidden, hidden),
            "hv": (hidden, goal),
            "xv": (x, goal),
        }.items():
            self.sums[name] = self.sums.get(name, 0) + a.T @ b
        self.tokens += x.shape[0]

    def directions(self, n: int) -> torch.Tensor:
        """TINY's input weights α_k of the ``n`` best new neurons, [min(n, rank), h] (see the module)."""
        if not self.tokens:
            raise ValueError("no tokens were added")
        s = {k: v / self.tokens for k, v in self.sums.items()}
        hh = _ridge(s["hh"])
        # Best update of the down projection: δW*ᵀ = (HᵀH)⁻¹ HᵀV; the bottleneck's N = XᵀV − XᵀH δW*ᵀ.
        n_matrix = s["xv"] - s["xh"] @ torch.linalg.solve(hh, s["hv"])
        eigvals, eigvecs = torch.linalg.eigh(_ridge(s["xx"]))
        inv_sqrt = eigvecs @ torch.diag(eigvals.clamp_min(1e-12).rsqrt()) @ eigvecs.T
        u, sigma, _ = torch.linalg.svd(inv_sqrt @ n_matrix)
        k = min(n, int(sigma.numel()))
        return ((inv_sqrt @ u[:, :k]) * sigma[:k].sqrt()).T.float()


def _ridge(matrix: torch.Tensor) -> torch.Tensor:
    scale = float(matrix.diagonal().mean()) or 1.0
    return matrix + _EPS * scale * torch.eye(matrix.shape[0], dtype=matrix.dtype)


def _row_weight(module: nn.Module) -> torch.Tensor:
    """The weight with one row per produced neuron ([out, in]; GPT-2's Conv1D stores it transposed)."""
    return module.weight.T if neuron_axis(module, "in") == 1 else module.weight


def _at_norm(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``rows`` rescaled to the mean row norm of ``like``."""
    target = like.detach().float().norm(dim=1).mean()
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12) * target


def new_input_rows(
    block: FFNBlock,
    n: int,
    init: str,
    generator: torch.Generator,
    directions: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Input rows of ``n`` new neurons, [n, h]: (up rows, gate rows or None).

    ``init`` "tiny": the up rows are ``directions`` (TINY's α_k, topped up at random when there are
    fewer than ``n``); "random": random rows. Gate rows are random. Every row has the mean norm of
    the layer's own rows of its kind.
    """
    up = _row_weight(block.up)
    if block.kind == "fused":
        gate_rows, up_rows = up[: block.width], up[block.width :]
    else:
        gate_rows, up_rows = (_row_weight(block.gate) if block.gate is not None else None), up
    hidden = up_rows.shape[1]
    fresh = torch.randn(n, hidden, generator=generator)
    if init == "tiny":
        given = directions[:n] if directions is not None else fresh[:0]
        fresh = torch.cat([given.float(), fresh[len(given) :]])
    rows_up = _at_norm(fresh, up_rows).to(up_rows.dtype)
    if gate_rows is None:
        return rows_up, None
    return rows_up, _at_norm(torch.randn(n, hidden, generator=generator), gate_rows).to(gate_rows.dtype)


def insert_slices(tensor: torch.Tensor, axis: int, at: int, new: torch.Tensor) -> torch.Tensor:
    """``tensor`` with ``new`` inserted along ``axis`` before index ``at`` (a parameter, or its Adam moments)."""
    data = tensor.detach()
    head, tail = data.narrow(axis, 0, at), data.narrow(axis, at, data.shape[axis] - at)
    return torch.cat([head, new.to(data.device, data.dtype), tail], dim=axis)


# (old parameter, new parameter, axis, index where the new slices were inserted, how many)
Growth = list[tuple[nn.Parameter, nn.Parameter, int, int, int]]


def _insert(module: nn.Module, name: str, axis: int, at: int, new: torch.Tensor, changes: Growth) -> None:
    old = getattr(module, name)
    grown = nn.Parameter(insert_slices(old, axis, at, new), requires_grad=old.requires_grad)
    setattr(module, name, grown)
    changes.append((old, grown, axis, at, new.shape[axis]))


def _set_count(module: nn.Module, role: str) -> None:
    """The module's feature count after its weight changed size (Linear, or GPT-2's Conv1D)."""
    n = int(module.weight.shape[neuron_axis(module, role)])
    if hasattr(module, "nf"):
        setattr(module, "nf" if role == "in" else "nx", n)
    else:
        setattr(module, "out_features" if role == "in" else "in_features", n)


@torch.no_grad()
def grow_(block: FFNBlock, up_rows: torch.Tensor, gate_rows: Optional[torch.Tensor] = None) -> Growth:
    """Append ``len(up_rows)`` neurons to a dense or fused FFN, in place, with zero output weights.

    The model computes exactly what it did. The block remembers its width before any growth
    (``base_width``: what width fractions stay relative to). Returns every replaced parameter with
    where its new slices went, for the optimizer's state.
    """
    if block.kind == "experts":
        raise UnsupportedModelError("growth is for dense and fused FFNs; mixture-of-experts layers cannot grow")
    n, width = int(up_rows.shape[0]), block.width
    if not hasattr(block.up, BASE_WIDTH_ATTR):
        setattr(block.up, BASE_WIDTH_ATTR, width)
    changes: Growth = []
    up_axis = neuron_axis(block.up, "in")
    as_stored = lambda rows, m: rows.T if neuron_axis(m, "in") == 1 else rows  # noqa: E731
    if block.kind == "fused":  # [gate; up]: new gate rows end the first half, new up rows the second
        _insert(block.up, "weight", up_axis, 2 * width, as_stored(up_rows, block.up), changes)
        _insert(block.up, "weight", up_axis, width, as_stored(gate_rows, block.up), changes)
    else:
        _insert(block.up, "weight", up_axis, width, as_stored(up_rows, block.up), changes)
        if block.gate is not None:
            _insert(
                block.gate, "weight", neuron_axis(block.gate, "in"), width, as_stored(gate_rows, block.gate), changes
            )
    for module in (block.up, block.gate):
        if module is not None and module.bias is not None:
            for at in (2 * width, width) if block.kind == "fused" and module is block.up else (width,):
                _insert(module, "bias", 0, at, module.bias.new_zeros(n), changes)
    down_axis = neuron_axis(block.down, "out")
    shape = list(block.down.weight.shape)
    shape[down_axis] = n
    _insert(block.down, "weight", down_axis, width, block.down.weight.new_zeros(shape), changes)
    for module, role in ((block.up, "in"), (block.gate, "in"), (block.down, "out")):
        if module is not None:
            _set_count(module, role)
    return changes


def grown_width(width: int, quantile: float, base: int, cap: float) -> int:
    """The width a layer grows to when its learned ``quantile`` (real-valued) passes its ``width``:
    the quantile rounded up to ``ROUND_TO``, at most ``cap`` × its ``base`` width (``width`` when it
    does not grow)."""
    limit = int(cap * base)
    if quantile <= width or width >= limit:
        return width
    return min(limit, width + ROUND_TO * -(-(int(quantile) + 1 - width) // ROUND_TO))


def grow_to_(model: nn.Module, widths: list[int]) -> None:
    """Grow each FFN layer of ``model`` narrower than ``widths`` to it, in place, the new neurons random
    with zero output: for when only the shape matters (timing a grown shape) or a checkpoint's
    weights replace them (resuming a grown run)."""
    generator = torch.Generator().manual_seed(0)
    for block, width in zip(find_ffns(model), widths):
        if width > block.width:
            grow_(block, *new_input_rows(block, width - block.width, "random", generator))


def mark_base_widths(model: nn.Module, widths: list[int]) -> None:
    """Record each FFN layer's pretrained width on a model loaded from a grown export, so that width
    fractions stay fractions of it (``FFNBlock.base_width``)."""
    for block, width in zip(find_ffns(model), widths):
        setattr(block.up, BASE_WIDTH_ATTR, int(width))


def check_growable(model: nn.Module) -> None:
    """UnsupportedModelError, before anything runs, when ``model`` has FFNs that cannot grow."""
    if any(b.kind == "experts" for b in find_ffns(model)):
        raise UnsupportedModelError(
            f"awn.grow: {type(model).__name__} has mixture-of-experts FFNs, which cannot grow; leave --grow off"
        )
