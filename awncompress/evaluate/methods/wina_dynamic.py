"""``wina-dynamic``: WINA's per-token top-k on every FFN, as a masked dense model.

For every token, the ``k`` hidden neurons of largest ``|h_j|·||W_down[:, j]||`` are kept and the
rest zeroed. FLOPs are counted on the active neurons only, so its rows are ``theoretical``: no
kernel here skips the masked neurons, and a masked dense model runs at dense speed, so it is not
timed either.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence, Union

import torch
from torch import nn

from ...errors import UnknownMethodError, WidthError
from ...model.families import find_ffns
from ...model.surgery import full_widths, resolve_widths
from .base import Candidate, EvalContext, Method, register_method


def _top_k_hook(k: int, norms: torch.Tensor):
    def hook(_module: nn.Module, args: tuple):
        h = args[0]
        scores = h.detach().abs() * norms.to(device=h.device, dtype=h.dtype)
        keep = scores.topk(k, dim=-1, sorted=False).indices
        return (torch.zeros_like(h).scatter(-1, keep, h.gather(-1, keep)), *args[1:])

    return hook


@contextmanager
def dynamic_wina(model: nn.Module, fraction: Union[float, int, Sequence[int]]) -> Iterator[list[int]]:
    """Per-token WINA top-k on every FFN of ``model`` while the context is open; yields the per-layer k.

    ``fraction``: a fraction of d_ff, an int number of neurons, or one int per layer (same rounding
    as ``truncate_``). At k = d_ff no hook is installed, so the model is exactly the dense one.
    """
    blocks = find_ffns(model)
    if any(b.kind == "experts" for b in blocks):
        raise UnknownMethodError("wina-dynamic has no per-token masks for mixture-of-experts blocks")
    ks = resolve_widths(list(fraction) if isinstance(fraction, tuple) else fraction, full_widths(blocks), len(blocks))
    handles = []
    try:
        for block, k in zip(blocks, ks):
            if k > block.width:
                raise WidthError(f"layer {block.layer} has {block.width} neurons; cannot keep {k} active")
            if k < block.width:
                handles.append(block.down.register_forward_pre_hook(_top_k_hook(k, block.out_norms())))
        yield ks
    finally:
        for handle in handles:
            handle.remove()


class WinaDynamicMethod(Method):
    """The dense model with the top-k masks on, at the same per-layer counts as the static cuts."""

    name = "wina-dynamic"
    theoretical = True

    def check(self, ctx: EvalContext) -> None:
        if any(b.kind == "experts" for b in find_ffns(ctx.original)):
            raise UnknownMethodError(
                "wina-dynamic has no per-token masks for mixture-of-experts blocks; leave it out of "
                "evaluate.methods for this model"
            )

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        with dynamic_wina(ctx.original, ctx.layer_plan[fraction]) as ks:
            yield Candidate(ctx.original, ks)


register_method(
    "wina-dynamic",
    WinaDynamicMethod,
    default=True,
    style=dict(color="C0", marker="D", linestyle="--", markerfacecolor="white"),
)
