"""Narrow width passes: a training pass at width t computes only the first t neurons of each FFN.

AWN training truncates an FFN by zeroing the scales past t (``AdaptiveProfile.live_scale``): the
masked pass still computes, and back-propagates through, every neuron, and throws the rest away.
In a narrow pass the up (and gate) projections of a dense or fused FFN produce only the first t
neurons and the down wrapper consumes only those, so a 12.5 % pass costs about what a 12.5 % model
costs. The function and the gradients are the masked pass's (zero past t either way);
:func:`narrowing_agrees` checks that on the model at hand before training, so a family whose FFN
does something else with its hidden neurons keeps the masked passes.

Left masked: mixture-of-experts blocks (their kernels take whole parameters), attention-head units,
and projections whose ``forward`` something else already replaced (accelerate's offload hooks).
"""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional, Sequence

import torch
from torch import nn

from ..errors import first_line
from .adaptive import AdaptiveProfile
from .families import find_ffns
from .ffn import is_projection, produce_first

log = logging.getLogger("awncompress")

# Per AWN unit: the projections producing its neurons, each with whether it is fused ([gate; up]);
# None where the unit's passes stay masked.
Narrowing = list[Optional[list[tuple[nn.Module, bool]]]]

_TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-6}  # half precision: 5e-2


def plan_narrowing(model: nn.Module, units: Sequence[AdaptiveProfile]) -> Narrowing:
    """For each of ``units`` (``awn_units(model)`` order), the projections a narrow pass slices."""
    blocks = {id(b.adaptive): b for b in find_ffns(model) if b.adaptive is not None} if units else {}
    narrowing: Narrowing = []
    for unit in units:
        block = blocks.get(id(unit))
        producers = [m for m in (block.up, block.gate) if m is not None] if block is not None else []
        # Head units have no FFN block; experts' kernels take whole parameters.
        if (
            block is None
            or block.kind == "experts"
            or any(not is_projection(m) or "forward" in vars(m) or hasattr(m, "_hf_hook") for m in producers)
        ):
            narrowing.append(None)
            continue
        narrowing.append([(m, block.kind == "fused" and m is block.up) for m in producers])
    return narrowing


def _rows(module: nn.Module, width: int, full: int, fused: bool) -> Any:
    if not fused:
        return slice(0, width)
    first = torch.arange(width, device=module.weight.device)
    return torch.cat([first, first + full])  # the gate half and the up half


@contextmanager
def width_pass(
    units: Sequence[AdaptiveProfile], plan: Optional[Sequence[int]], narrowing: Optional[Narrowing] = None
) -> Iterator[None]:
    """Within the block, each unit is truncated to its width in ``plan`` (None: full width); units
    that ``narrowing`` covers compute only the neurons they keep (None: every pass masked)."""
    replaced: list[nn.Module] = []
    try:
        for i, (unit, width) in enumerate(zip(units, plan or [None] * len(units))):
            unit.truncate_to = width
            producers = narrowing[i] if narrowing else None
            if width is None or producers is None or width >= unit.width:
                continue
            for module, fused in producers:
                module.forward = functools.partial(produce_first, module, rows=_rows(module, width, unit.width, fused))
                replaced.append(module)
        yield
    finally:
        for module in replaced:
            del module.forward
        for unit in units:
            unit.truncate_to = None


@torch.no_grad()
def narrowing_agrees(
    model: nn.Module, units: Sequence[AdaptiveProfile], narrowing: Narrowing, inputs: Mapping[str, torch.Tensor]
) -> bool:
    """Whether narrow passes give the masked passes' logits on ``inputs`` (eval mode, every unit at a
    quarter of its width); a model whose FFN code does not allow them says why in the log."""
    plan = [max(1, unit.width // 4) for unit in units]
    was_training = model.training
    model.eval()
    try:
        with width_pass(units, plan):
            masked = model(**inputs).logits
        with width_pass(units, plan, narrowing):
            narrow = model(**inputs).logits
    except (RuntimeError, ValueError) as err:
        log.warning(
            "width passes stay masked: this model's FFN code fails when it produces fewer neurons (%s)",
            first_line(err),
        )
        return False
    finally:
        model.train(was_training)
    tolerance = _TOLERANCE.get(masked.dtype, 5e-2) * (1.0 + float(masked.abs().max()))
    if narrow.shape != masked.shape or not bool((narrow - masked).abs().max() <= tolerance):
        log.warning("width passes stay masked: computing only the kept neurons changed this model's outputs")
        return False
    return True
