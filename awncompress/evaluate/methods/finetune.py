"""``finetune`` (rows named ``<scorer>+finetune``): truncate by the recipe's scorer, then fine-tune
that width alone with the same step budget, batch, learning rate and loss (KD from the same
teacher) as the AWN fine-tune, so a gap between the two is the method, not the distillation."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, Optional

from torch import nn

from ...errors import UnknownMethodError
from ...model.scorers import SCORERS
from ...model.surgery import layer_widths, order_, truncate_
from ...train.finetune import finetune
from .base import Candidate, EvalContext, Method, make_method, register_method


class FinetuneMethod(Method):
    """One fine-tune per width, each from the ordered dense model."""

    name = "finetune"
    trains = True
    needs_scorer = True

    def __init__(self) -> None:
        self.ordered: Optional[nn.Module] = None

    def fine_tunes(self, widths: int, flop_targets: int) -> int:
        return widths

    def scorer(self, ctx: EvalContext) -> str:
        """The order neurons are cut in: the recipe's ``awn.scorer``."""
        return ctx.scorer

    def label(self, ctx: EvalContext) -> str:
        return f"{ctx.scorer}+finetune"

    def check(self, ctx: EvalContext) -> None:
        require_training(self.name, ctx)
        if self.needs_scorer and ctx.scorer == "none":
            raise UnknownMethodError(
                "method 'finetune' orders neurons by awn.scorer before cutting; awn.scorer is 'none'"
            )

    def prepare(self, ctx: EvalContext) -> None:
        self.ordered = copy.deepcopy(ctx.original).requires_grad_(True)  # the original stays the frozen teacher
        order_(self.ordered, self.scorer(ctx), ctx.calibration, seed=ctx.seed)

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        model = copy.deepcopy(self.ordered)
        truncate_(model, float(fraction), multiple=ctx.multiple)
        train_cut(ctx, model, f"{self.label(ctx)} {fraction:g}")
        yield Candidate(model, layer_widths(model))


def require_training(name: str, ctx: EvalContext) -> None:
    """UnknownMethodError unless the evaluation carries what a method that fine-tunes needs."""
    if ctx.training is None:
        raise UnknownMethodError(
            f"method {name!r} needs training data and a training config "
            "(it runs inside `awncompress convert` / `awncompress evaluate`)"
        )


def train_cut(ctx: EvalContext, model: nn.Module, desc: str) -> None:
    """Fine-tune a cut model alone with the AWN fine-tune's budget, batch, learning rate and loss."""
    kit = ctx.training
    cfg = kit.config
    teacher = kit.teacher if cfg.kd_weight > 0 or cfg.kd_hidden_weight > 0 else None
    finetune(
        model,
        kit.train_set,
        kit.collate,
        cfg,
        num_examples=kit.num_examples,
        teacher=teacher,
        seed=ctx.seed,
        quiet=ctx.quiet,
        desc=desc,
        alone=True,  # evaluation runs on the main process only
    )


class FinetunedMethod(Method):
    """``<base>+finetune``: a no-training method's cut at each width (a peer's order, or FLAP's widths
    and bias), then the same per-width fine-tune as ``finetune``."""

    trains = True

    def __init__(self, base: Method) -> None:
        self.base = base
        self.name = f"{base.name}+finetune"
        self.needs_calibration = base.needs_calibration

    def fine_tunes(self, widths: int, flop_targets: int) -> int:
        return widths

    def check(self, ctx: EvalContext) -> None:
        require_training(self.name, ctx)
        self.base.check(ctx)

    def prepare(self, ctx: EvalContext) -> None:
        self.base.prepare(ctx)

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        with self.base.at_width(ctx, fraction) as cand:
            model = cand.model.requires_grad_(True)  # a copy: the original stays the frozen teacher
            train_cut(ctx, model, f"{self.name} {fraction:g}")
            yield Candidate(model, layer_widths(model))


register_method("finetune", FinetuneMethod)
# Each peer that is not a default baseline gets its fine-tuned twin (a default scorer's is `finetune`).
for _base in [s.name for s in SCORERS.values() if not s.default] + ["flap"]:
    register_method(f"{_base}+finetune", lambda b=_base: FinetunedMethod(make_method(b)))
