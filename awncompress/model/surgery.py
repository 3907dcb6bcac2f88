"""In-place surgery on a Hugging Face model: order → wrap (convert_), fold back, truncate.

Every step here leaves the model's function unchanged except ``truncate_``, which drops the last
neurons of each FFN on purpose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence, Union

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConversionError, WidthError
from .adaptive import AdaptiveExperts, AdaptiveFFN, AdaptiveHeads, head_units, rate_for_quantile
from .families import FFNBlock, SpecLike, attach_spec, find_ffns, set_config_widths, specs_for
from .head_cuts import order_heads_
from .heads import find_heads
from .scorers import get_scorer
from .scoring import order_from_scores, score_neurons

Width = Union[int, float]
Widths = Union[int, float, Sequence[int]]


@dataclass
class AWNConfig:
    """How to turn a pretrained model's FFNs into adaptive-width blocks.

    Attributes:
        scorer: initial neuron order: "wina", "activation", "magnitude", "random", or "none" to keep
            the pretrained order.
        k: quantile of the profile that defines a layer's active width.
        init_rate: initial normalised rate λ·d_ff; None gives -ln(1-k), whose k-quantile is d_ff.
        rate_prior_mean / rate_prior_std: Gaussian prior on λ·d_ff (a mean above the initial rate
            pulls widths down; rate_for_quantile(0.5, k) ≈ 4.6 centres the quantile at half width).
        weight_prior_std: Gaussian prior on FFN weights.
        spec: the FFN module names, for a model type awncompress does not know.
        seed: seed of the random scorer.
        heads: also order the attention heads (KV groups in grouped-query models) with the same
            scorer and give each layer's heads their own learned profile (see heads.py).
    """

    scorer: str = "fluctuation"
    k: float = 0.9
    init_rate: Optional[float] = None
    rate_prior_mean: float = rate_for_quantile(0.5, 0.9)
    rate_prior_std: float = 1.0
    weight_prior_std: float = 1.0
    spec: Optional[SpecLike] = None
    seed: int = 0
    heads: bool = False


def _blocks(model: nn.Module, spec: Optional[SpecLike]) -> list[FFNBlock]:
    """The FFN blocks of ``model``; a spec given here is recorded on the model for later steps."""
    if spec is not None:
        attach_spec(model, spec)
    return find_ffns(model)


def full_widths(blocks: Sequence[FFNBlock]) -> list[int]:
    """Each block's full width: the widest block of its kind (a fraction of it is a width), as it was
    before any layer grew."""
    widest: dict = {}
    for b in blocks:
        widest[b.spec] = max(widest.get(b.spec, 0), b.base_width)
    return [widest[b.spec] for b in blocks]


def order_(
    model: nn.Module,
    scorer: str = AWNConfig.scorer,
    batches: Optional[Iterable[Mapping[str, torch.Tensor]]] = None,
    spec: Optional[SpecLike] = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Permute every FFN's neurons by decreasing importance (function unchanged).

    Returns the permutation applied to each layer (new position i holds old neuron perm[i]; for
    mixture-of-experts blocks one row per expert).
    """
    get_scorer(scorer)
    blocks = _blocks(model, spec)
    scores = score_neurons(model, blocks, scorer, batches, seed)
    perms = [order_from_scores(s) for s in scores]
    for block, perm in zip(blocks, perms):
        block.select_(perm)
    return perms


def _wrap(block: FFNBlock, d_ff: int, config: "AWNConfig") -> None:
    if block.kind == "experts":
        down = getattr(block.up, block.down_attr)
        unit = AdaptiveExperts(down, d_ff=d_ff, k=config.k, init_rate=config.init_rate)
        parametrize.register_parametrization(block.up, block.down_attr, unit)
    else:
        setattr(
            block.down_parent,
            block.down_attr,
            AdaptiveFFN(block.down, d_ff=d_ff, k=config.k, init_rate=config.init_rate),
        )


def convert_(
    model: nn.Module,
    config: Optional[AWNConfig] = None,
    calibration: Optional[Iterable[Mapping[str, torch.Tensor]]] = None,
) -> nn.Module:
    """Turn every FFN of ``model`` into an adaptive-width block, in place; outputs are unchanged.

    Neurons are first ordered by ``config.scorer`` on the ``calibration`` batches (dicts of
    input_ids / attention_mask ...), then each down projection is wrapped in an AdaptiveFFN (for
    mixture-of-experts blocks, the experts' ``down_proj`` gets an AdaptiveExperts parametrization).

    Example:
        >>> convert_(model, AWNConfig(scorer="wina"), calibration=batches)
        >>> fold_(model); truncate_(model, 0.5)
    """
    config = config or AWNConfig()
    if config.scorer != "none":
        get_scorer(config.scorer)
    blocks = _blocks(model, specs_for(model, config.spec))
    if any(b.adaptive is not None for b in blocks):
        raise ConversionError("model is already converted (it has AWN blocks); fold_ it first")
    head_blocks = find_heads(model) if config.heads else []  # an unsupported family fails before any change
    if any(b.adaptive is not None for b in head_blocks):
        raise ConversionError("model's heads are already converted; fold_ it first")
    if config.heads and calibration is not None and not isinstance(calibration, (list, tuple)):
        calibration = list(calibration)  # read twice: neurons, then heads
    if config.scorer != "none":
        order_(model, config.scorer, calibration, seed=config.seed)
        if config.heads:
            order_heads_(model, config.scorer, calibration, seed=config.seed)
    for block, d_ff in zip(blocks, full_widths(blocks)):
        _wrap(block, d_ff, config)
    for head in find_heads(model) if config.heads else []:
        setattr(
            head.o_parent,
            head.o_attr,
            AdaptiveHeads(head.o, head.units, head.unit_size, k=config.k, init_rate=config.init_rate),
        )
    return model


def fold_(model: nn.Module) -> nn.Module:
    """Fold each AWN block's scales into its down projection (and each head profile's into the output
    projection) and remove the wrappers, in place.

    The result is a vanilla transformers model computing what the adaptive one did at full width.
    """
    blocks = [b for b in find_ffns(model) if b.adaptive is not None]
    if not blocks:
        raise ConversionError("model has no AWN blocks to fold")
    for head in find_heads(model) if head_units(model) else []:
        setattr(head.o_parent, head.o_attr, head.adaptive.fold())
    for block in blocks:
        if block.kind == "experts":
            block.adaptive.truncate_to = None
            parametrize.remove_parametrizations(block.up, block.down_attr, leave_parametrized=True)
        else:
            setattr(block.down_parent, block.down_attr, block.adaptive.fold())
    return model


def width_from_fraction(fraction: float, d_ff: int, multiple: Optional[int] = None) -> int:
    """Neurons kept for a fraction of d_ff, rounded to ``multiple`` (never below one multiple)."""
    if multiple and multiple > d_ff:
        raise WidthError(f"rounding to a multiple of {multiple} is more than the FFN width {d_ff}")
    return round_width(fraction * d_ff, d_ff, multiple)


def round_width(width: float, d_ff: int, multiple: Optional[int] = None) -> int:
    """``width`` neurons rounded to ``multiple`` (never below one multiple, never above d_ff), or to
    the nearest whole neuron (at least one) without one."""
    if multiple:
        return int(min(d_ff, max(multiple, multiple * round(width / multiple))))
    return int(max(1, round(width)))


def resolve_widths(
    widths: Widths,
    d_ff: Union[int, Sequence[int]],
    n_layers: int,
    multiple: Optional[int] = None,
    caps: Optional[Sequence[int]] = None,
) -> list[int]:
    """Per-layer integer widths from an int, a fraction of d_ff, or a per-layer list of ints.

    ``d_ff``: the full width, or one per layer (FFNs of several kinds). ``caps``: the most neurons
    each layer has, where a layer grew past its full width (a per-layer list may reach them). Raises
    WidthError for a width ≤ 0 or above the full width (or cap), a non-integer per-layer entry, a
    per-layer list of the wrong length, or one int for FFNs of different full widths.
    """
    full = [int(d_ff)] * n_layers if isinstance(d_ff, int) else [int(d) for d in d_ff]
    caps = [max(int(c), f) for c, f in zip(caps, full)] if caps is not None else full
    if isinstance(widths, bool):
        raise WidthError(f"width must be a number, got {widths!r}")
    if isinstance(widths, (list, tuple)):
        if len(widths) != n_layers:
            raise WidthError(f"got {len(widths)} per-layer widths for a model with {n_layers} FFN layers")
        for i, (w, d) in enumerate(zip(widths, caps)):
            if isinstance(w, bool) or not isinstance(w, int):
                raise WidthError(f"per-layer width {i} must be an integer number of neurons, got {w!r}")
            if not 0 < w <= d:
                raise WidthError(f"per-layer width {i} = {w} is outside 1..{d}")
        return [int(w) for w in widths]
    if isinstance(widths, int):
        if len(set(full)) > 1:
            raise WidthError(
                f"one width in neurons is ambiguous for FFNs of full widths {sorted(set(full))}; "
                "give a fraction or one width per layer"
            )
        if not 0 < widths <= full[0]:
            raise WidthError(f"width {widths} is outside 1..{full[0]} (d_ff = {full[0]})")
        return [widths] * n_layers
    if isinstance(widths, float):
        if not (math.isfinite(widths) and 0.0 < widths <= 1.0):
            raise WidthError(f"width fraction {widths} must be in (0, 1]")
        return [width_from_fraction(widths, d, multiple) for d in full]
    raise WidthError(f"width must be an int, a fraction in (0, 1] or a list of ints, got {type(widths).__name__}")


def truncate_(
    model: nn.Module,
    widths: Widths,
    multiple: Optional[int] = None,
    spec: Optional[SpecLike] = None,
) -> list[int]:
    """Keep the first neurons of every FFN, in place; returns the per-layer widths.

    ``widths``: an int (neurons, every layer), a float fraction of each FFN's full width
    (optionally rounded to ``multiple``), or one int per layer. Each kind of FFN's largest width is
    written to the config attribute vanilla transformers reads (``intermediate_size``, GPT-2
    ``n_inner``, DistilBERT ``hidden_dim``, ...): exact for a uniform width, an upper bound for
    per-layer widths (which vanilla configs cannot say). The model must be folded (vanilla):
    neurons are taken in index order; every expert of a mixture-of-experts block keeps the same count.
    """
    blocks = _blocks(model, spec)
    if any(b.adaptive is not None for b in blocks):
        raise ConversionError("fold_ the model before truncating it")
    resolved = resolve_widths(widths, full_widths(blocks), len(blocks), multiple, [b.width for b in blocks])
    for block, w in zip(blocks, resolved):
        if w > block.width:
            raise WidthError(f"layer {block.layer} has {block.width} neurons; cannot keep {w}")
        block.select_(torch.arange(w))
    if hasattr(model, "config"):
        set_config_widths(model.config, blocks)
    return resolved


def layer_widths(model: nn.Module, spec: Optional[SpecLike] = None) -> list[int]:
    """Current number of neurons of each FFN layer (per expert for mixture-of-experts blocks)."""
    return [b.width for b in _blocks(model, spec)]
