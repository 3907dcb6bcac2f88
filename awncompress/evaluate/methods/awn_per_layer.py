"""``awn-per-layer``: the per-layer export at the FFN FLOP budget of each width, from disk."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ...checkpoint.layout import per_layer_dir
from ...checkpoint.load import load_pretrained
from ...errors import NotAnExportError
from ...model.surgery import layer_widths
from .base import Candidate, EvalContext, Method, register_method


class AwnPerLayerMethod(Method):
    """Widths allocated per layer by the learned profiles (``convert --per-layer`` writes them)."""

    name = "awn-per-layer"
    requires = "export.per_layer"
    auto = True

    def check(self, ctx: EvalContext) -> None:
        if ctx.out is None:
            raise NotAnExportError("awn-per-layer reads the per-layer-<w>/ folders of a convert output; none was given")
        for w in ctx.widths:
            if not per_layer_dir(ctx.out, w).exists():
                raise NotAnExportError(
                    f"{per_layer_dir(ctx.out, w)} is missing: convert with --per-layer to write per-layer exports"
                )

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        folder = per_layer_dir(ctx.out, fraction)
        model = load_pretrained(folder)
        yield Candidate(model, layer_widths(model), export=folder)


register_method("awn-per-layer", AwnPerLayerMethod, style=dict(color="C1", marker="o", linestyle="--", zorder=5))
