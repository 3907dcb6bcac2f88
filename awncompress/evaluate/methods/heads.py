"""Methods over FLOP targets that cut attention heads as well as FFN neurons (``awn.heads``).

* ``awn-heads``: the flops-<t>/ export of each target, the (FFN width, heads) pair the learned
  profiles picked, loaded from disk;
* ``wina-heads``: the static baseline at the same pair: the trained dense model's neurons and
  heads ordered by their WINA scores once (no training), cut to each export's widths and heads;
* ``finetune-heads`` (rows ``<scorer>-heads+finetune``): that cut, fine-tuned at that pair alone;
* ``taylor-heads`` / ``fluctuation-heads`` and their ``+finetune`` twins: the peers' own orders.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import ClassVar, Iterator, Optional

from torch import nn

from ...checkpoint.load import check_safe_checkpoint, load_pretrained
from ...checkpoint.provenance import read_provenance
from ...errors import NotAnExportError
from ...model.head_cuts import order_heads_, truncate_heads_
from ...model.heads import layer_heads
from ...model.scorers import SCORERS
from ...model.surgery import layer_widths, order_, truncate_
from .base import Candidate, EvalContext, Method, register_method
from .finetune import FinetuneMethod, require_training, train_cut


class AwnHeadsMethod(Method):
    """The FFN+heads exports, one per FLOP target."""

    name = "awn-heads"
    axis: ClassVar[str] = "flops"
    requires = "awn.heads"
    auto = True

    def check(self, ctx: EvalContext) -> None:
        if not ctx.flop_dirs:
            raise NotAnExportError("awn-heads has no flops-<t>/ exports to evaluate (convert with --heads)")
        for folder in ctx.flop_dirs.values():
            check_safe_checkpoint(folder)
            if not read_provenance(folder).get("layer_heads"):
                raise NotAnExportError(f"{folder} records no attention heads; it is not an FFN+heads export")

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        folder = ctx.flop_dirs[fraction]
        model = load_pretrained(folder)
        yield Candidate(model, layer_widths(model), export=folder, heads=layer_heads(model))


class StaticHeadsMethod(Method):
    """Neurons and heads ordered by one scorer, no training, cut to the awn-heads export's shape."""

    axis: ClassVar[str] = "flops"
    requires = "awn.heads"
    auto = True

    def __init__(self, scorer: str) -> None:
        self.scorer = scorer
        self.name = f"{scorer}-heads"
        self.needs_calibration = True
        self.ordered: Optional[nn.Module] = None

    def check(self, ctx: EvalContext) -> None:
        AwnHeadsMethod().check(ctx)

    def prepare(self, ctx: EvalContext) -> None:
        self.ordered = copy.deepcopy(ctx.original)
        order_(self.ordered, self.scorer, ctx.calibration, seed=ctx.seed)
        order_heads_(self.ordered, self.scorer, ctx.calibration, seed=ctx.seed)

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        record = read_provenance(ctx.flop_dirs[fraction])
        model = copy.deepcopy(self.ordered)
        widths = truncate_(model, [int(w) for w in record["layer_widths"]])
        heads = truncate_heads_(model, [int(h) for h in record["layer_heads"]])
        yield Candidate(model, widths, heads=heads)


class FinetuneHeadsMethod(StaticHeadsMethod):
    """``<scorer>-heads+finetune``: the static cut at each target, then fine-tuned at that shape alone
    with the AWN fine-tune's budget and loss (a per-target fine-tune, the baseline AWN must match).

    Without ``scorer`` (``finetune-heads``) the cut follows the recipe's ``awn.scorer``; with one
    (``taylor-heads+finetune``, ``fluctuation-heads+finetune``) it is that peer's order."""

    trains = True
    needs_scorer = True
    auto = False

    def fine_tunes(self, widths: int, flop_targets: int) -> int:
        return flop_targets

    def __init__(self, scorer: Optional[str] = None) -> None:
        super().__init__(scorer or "wina")
        self.fixed = scorer
        self.name = f"{scorer}-heads+finetune" if scorer else "finetune-heads"

    def label(self, ctx: EvalContext) -> str:
        return f"{self.fixed or ctx.scorer}-heads+finetune"

    def check(self, ctx: EvalContext) -> None:
        require_training(self.name, ctx)
        if self.needs_scorer:
            FinetuneMethod().check(ctx)
        super().check(ctx)

    def prepare(self, ctx: EvalContext) -> None:
        self.scorer = self.fixed or ctx.scorer
        super().prepare(ctx)
        self.ordered.requires_grad_(True)  # the original stays the frozen teacher

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        with super().at_width(ctx, fraction) as cand:
            train_cut(ctx, cand.model, f"{self.label(ctx)} {fraction:g}")
            yield cand


register_method("awn-heads", AwnHeadsMethod, style=dict(color="C1", marker="D", linewidth=2.6, zorder=7))
register_method("wina-heads", lambda: StaticHeadsMethod("wina"), style=dict(color="C9", marker="P"))
register_method("finetune-heads", FinetuneHeadsMethod)


class PeerFinetuneHeadsMethod(FinetuneHeadsMethod):
    """A peer's cut at each target fine-tuned alone; its order is its own, not ``awn.scorer``."""

    needs_scorer = False


class PeerHeadsMethod(StaticHeadsMethod):
    """A peer's own order of neurons and heads (LLM-Pruner's taylor, FLAP's fluctuation) at the
    awn-heads exports' (FFN width, heads) pairs; evaluated when asked for, not added by awn.heads."""

    auto = False


# Each peer that scores heads gets a static row and its per-target fine-tuned twin, as the FFN peers do.
for _scorer in [s for s in SCORERS.values() if s.scores_heads and not s.default]:
    register_method(f"{_scorer.name}-heads", lambda n=_scorer.name: PeerHeadsMethod(n), style=_scorer.style)
    register_method(f"{_scorer.name}-heads+finetune", lambda n=_scorer.name: PeerFinetuneHeadsMethod(n))
