"""``awn``: the fine-tuned, folded model, reloaded from its export folder on disk at every width."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ...checkpoint.layout import match_export, width_key
from ...checkpoint.load import check_safe_checkpoint, load_pretrained
from ...checkpoint.provenance import read_provenance
from ...errors import NotAnExportError
from ...model.surgery import layer_widths
from .base import Candidate, EvalContext, Method, register_method


class AwnMethod(Method):
    """A uniform or per-layer folder is loaded as it is; a nested folder is sliced to the width."""

    name = "awn"

    def check(self, ctx: EvalContext) -> None:
        missing = [w for w in ctx.widths if match_export(w, ctx.export_dirs) is None]
        if missing:
            have = ", ".join(width_key(w) for w in sorted(ctx.export_dirs)) or "none"
            raise NotAnExportError(
                f"no awn export on disk for width(s) {', '.join(map(width_key, missing))}; exported widths: {have}"
            )
        for w in ctx.widths:
            folder = match_export(w, ctx.export_dirs)
            check_safe_checkpoint(folder)
            read_provenance(folder)  # NotAnExportError for a folder that is not an export

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        folder = match_export(fraction, ctx.export_dirs)
        nested = read_provenance(folder)["format"] == "nested"
        model = load_pretrained(folder, width=float(fraction) if nested else None)
        yield Candidate(model, layer_widths(model), export=folder)


register_method("awn", AwnMethod, default=True, style=dict(color="C3", marker="o", linewidth=2.6, zorder=6))
