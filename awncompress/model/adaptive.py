"""The AWN importance profile and the adaptive wrapper around an FFN's down projection.

Neuron j (0-based) of a layer with rate λ gets mass ``p(j) = exp(-λ j) (1 - exp(-λ))``, a
discretised exponential. Hidden activations are rescaled by ``s_j = p(j) / p(0) = exp(-λ j)`` so
that neuron 0 keeps its scale; at wrap time the down projection's columns are divided by the
initial ``s_j``, so the wrapped model computes exactly what the original did.

λ is stored as ``softplus(raw_rate) / d_ff``: in units of the layer width the rate is O(1), so a
brief fine-tune with Adam can move it across the whole width range (a raw λ ≈ 1e-3 could move by
at most lr × steps).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ConversionError, WidthError
from .families import find_ffns, neuron_axis
from .ffn import consume_first
from .heads import find_heads, has_head_spec


def rate_for_quantile(width_fraction: float, k: float) -> float:
    """Normalised rate λ·d_ff whose k-quantile width is ``width_fraction`` of d_ff."""
    return -math.log(1.0 - k) / width_fraction


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class AdaptiveProfile(nn.Module):
    """The learned rate of one FFN and the profile math (shared by both ways of applying it).

    ``truncate_to`` (set by the trainer each step in stochastic mode) zeroes neurons past a width.
    Subclasses say how many neurons there are (``width``) and where the scales act.
    """

    def __init__(self, d_ff: int, k: float, init_rate: Optional[float], device: torch.device):
        super().__init__()
        if not 0.0 < k < 1.0:
            raise ConfigError(f"quantile k must be in (0, 1), got {k}")
        self.d_ff = int(d_ff)
        self.k = float(k)
        rate0 = rate_for_quantile(1.0, k) if init_rate is None else float(init_rate)
        if rate0 <= 0:
            raise ConfigError(f"initial rate must be > 0, got {rate0}")
        self.raw_rate = nn.Parameter(torch.tensor(_softplus_inverse(rate0), dtype=torch.float32, device=device))
        self.truncate_to: Optional[int] = None

    @property
    def width(self) -> int:
        """Number of neurons the profile spans."""
        raise NotImplementedError

    def width_at(self, fraction: float) -> int:
        """Neurons for a ``fraction`` of the width the unit was wrapped at (a grown unit's fractions stay
        fractions of its pretrained width), at least one, at most the unit's width."""
        return max(1, min(self.width, round(fraction * self.initial_width)))

    def normalised_rate(self) -> torch.Tensor:
        """λ·d_ff, the rate in units of the layer width (differentiable)."""
        return F.softplus(self.raw_rate)

    def rate(self) -> torch.Tensor:
        """λ, the per-neuron decay rate of the profile (differentiable)."""
        return self.normalised_rate() / self.d_ff

    def scale(self, n: int) -> torch.Tensor:
        """``s_j = exp(-λ j)`` for the first ``n`` neurons (differentiable in λ)."""
        j = torch.arange(n, device=self.raw_rate.device, dtype=torch.float32)
        return torch.exp(-self.rate() * j)

    def live_scale(self, n: int) -> torch.Tensor:
        """The scales as training applies them: zero past ``truncate_to``."""
        s = self.scale(n)
        if self.truncate_to is not None and self.truncate_to < n:
            s = s * (torch.arange(n, device=s.device) < self.truncate_to)
        return s

    def profile(self) -> torch.Tensor:
        """``p(j)``, the probability mass of each neuron index (sums to ~k-or-more over d_ff)."""
        lam = self.rate()
        return self.scale(self.d_ff) * (-torch.expm1(-lam))

    def active_width(self, k: Optional[float] = None) -> int:
        """k-quantile width ``ceil(-ln(1-k)/λ)``, capped at the current width."""
        k = self.k if k is None else k
        lam = float(self.rate().detach())
        return max(1, min(self.width, math.ceil(-math.log(1.0 - k) / lam)))

    def sample_width(self, generator: Optional[torch.Generator] = None) -> int:
        """Draw a truncation width from the profile, restricted to [1, width] (inverse CDF)."""
        lam = float(self.rate().detach())
        u = float(torch.rand((), generator=generator))
        total = -math.expm1(-lam * self.width)  # mass of the first `width` neurons
        index = math.floor(-math.log1p(-u * total) / lam)
        return max(1, min(self.width, index + 1))

    def extra_repr(self) -> str:
        rate = float(self.normalised_rate().detach())
        return f"d_ff={self.d_ff}, k={self.k}, rate·d_ff={rate:.3f}, active_width={self.active_width()}"


class AdaptiveFFN(AdaptiveProfile):
    """Wraps a down projection (nn.Linear or GPT-2 Conv1D) and rescales the neurons it consumes."""

    is_awn_wrapper = True

    def __init__(self, inner: nn.Module, d_ff: int, k: float = 0.9, init_rate: Optional[float] = None):
        super().__init__(d_ff, k, init_rate, inner.weight.device)
        self.inner = inner
        self.initial_width = self.width
        with torch.no_grad():
            self._scale_inner_(1.0 / self.scale(self.width).to(inner.weight.dtype))

    @property
    def width(self) -> int:
        """Number of neurons the wrapped projection consumes."""
        return int(self.inner.weight.shape[neuron_axis(self.inner, "out")])

    @property
    def weight(self) -> torch.Tensor:
        """The wrapped projection's weight: model code that reads ``down.weight`` (its dtype, say) still can."""
        return self.inner.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        scaled = hidden * self.live_scale(hidden.shape[-1]).to(hidden.dtype)
        if hidden.shape[-1] < self.width:  # a narrow width pass (narrow.py): only the first neurons were produced
            return consume_first(self.inner, scaled)
        return self.inner(scaled)

    @torch.no_grad()
    def _scale_inner_(self, factors: torch.Tensor) -> None:
        axis = neuron_axis(self.inner, "out")
        shape = [1, 1]
        shape[axis] = -1
        self.inner.weight.mul_(factors.to(self.inner.weight.dtype).view(shape))

    @torch.no_grad()
    def fold(self) -> nn.Module:
        """Fold the current scales into the down projection and return it (a vanilla module)."""
        self._scale_inner_(self.scale(self.width))
        return self.inner


class AdaptiveHeads(AdaptiveFFN):
    """Wraps an attention output projection: the profile runs over units (KV groups, or heads), and
    unit u's scale multiplies its ``unit_size`` context columns (a head's whole output is scaled).

    ``d_ff`` is the number of units (the rate is in units of the layer's head count).
    """

    def __init__(self, inner: nn.Module, units: int, unit_size: int, k: float = 0.9, init_rate: Optional[float] = None):
        object.__setattr__(self, "unit_size", int(unit_size))  # read by ``width`` during AdaptiveFFN.__init__
        super().__init__(inner, d_ff=units, k=k, init_rate=init_rate)

    @property
    def width(self) -> int:
        """Number of units the wrapped projection consumes."""
        return int(self.inner.weight.shape[neuron_axis(self.inner, "out")]) // self.unit_size

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        scale = self.live_scale(hidden.shape[-1] // self.unit_size).repeat_interleave(self.unit_size)
        return self.inner(hidden * scale.to(hidden.dtype))

    @torch.no_grad()
    def _scale_inner_(self, factors: torch.Tensor) -> None:
        super()._scale_inner_(factors.repeat_interleave(self.unit_size))


class AdaptiveExperts(AdaptiveProfile):
    """A parametrization of a mixture-of-experts ``down_proj`` [E, h, d_ff]: every expert's neuron j
    is scaled by ``s_j`` (the same profile for all experts of a layer; each expert keeps its own order).

    Scaling column j of the down weight is scaling neuron j's activation, so the experts' kernels
    run unchanged. ``right_inverse`` divides by the initial scales, so wrapping changes nothing.
    """

    def __init__(self, down: torch.Tensor, d_ff: int, k: float = 0.9, init_rate: Optional[float] = None):
        super().__init__(d_ff, k, init_rate, down.device)
        self.n_neurons = int(down.shape[-1])
        self.initial_width = self.n_neurons

    @property
    def width(self) -> int:
        """Neurons per expert."""
        return self.n_neurons

    def forward(self, down: torch.Tensor) -> torch.Tensor:
        return down * self.live_scale(down.shape[-1]).to(down.dtype)

    def right_inverse(self, down: torch.Tensor) -> torch.Tensor:
        return down / self.scale(down.shape[-1]).detach().to(down.dtype)


def adaptive_modules(model: nn.Module) -> list[AdaptiveProfile]:
    """The AWN units (wrappers and expert parametrizations) of a converted model, in layer order."""
    return [b.adaptive for b in find_ffns(model) if b.adaptive is not None] if _has_adaptive(model) else []


def head_units(model: nn.Module) -> list[AdaptiveHeads]:
    """The AWN head profiles of a model converted with heads, in layer order (else [])."""
    if not (has_head_spec(model) and any(isinstance(m, AdaptiveHeads) for m in model.modules())):
        return []
    return [b.adaptive for b in find_heads(model) if b.adaptive is not None]


def awn_units(model: nn.Module) -> list[AdaptiveProfile]:
    """Every AWN profile training samples widths for: the FFN units, then the head units."""
    return [*adaptive_modules(model), *head_units(model)]


def _has_adaptive(model: nn.Module) -> bool:
    return any(isinstance(m, AdaptiveProfile) for m in model.modules())


def profile_summary(model: nn.Module) -> dict[str, list]:
    """Per-layer learned profile of a converted model: normalised rates and k-quantile widths."""
    wrappers, heads = adaptive_modules(model), head_units(model)
    summary = {
        "k": wrappers[0].k if wrappers else None,
        "normalised_rates": [round(float(w.normalised_rate().detach()), 6) for w in wrappers],
        "active_widths": [w.active_width() for w in wrappers],
    }
    if any(w.width > w.initial_width for w in wrappers):  # layers grew (growth.py): how many neurons each has
        summary["grown_widths"] = [w.width for w in wrappers]
    if heads:
        summary["head_rates"] = [round(float(w.normalised_rate().detach()), 6) for w in heads]
        summary["active_units"] = [w.active_width() for w in heads]
    return summary


def widths_for_budget(
    normalised_rates: list[float],
    d_ff: Union[int, Sequence[int]],
    fraction: float,
    caps: Optional[Sequence[int]] = None,
) -> list[int]:
    """Per-layer widths spending ``fraction`` of the full FFN FLOPs, allocated by the learned profiles.

    Every layer takes the same quantile q of its own profile, ``ceil(-ln(1-q) · d_ff / (λ·d_ff))``:
    a layer whose importance decays fast gets fewer neurons. FFN FLOPs are proportional to the
    summed widths, so q is found by bisection as the largest one whose widths sum to at most
    ``fraction`` of the summed full widths. ``d_ff``: one full width, or one per layer. ``caps``: the
    most neurons each layer has, where layers grew past their full width (default: the full widths).
    """
    if not 0.0 < fraction <= 1.0:
        raise WidthError(f"FLOP budget must be a fraction in (0, 1], got {fraction}")
    full = [int(d_ff)] * len(normalised_rates) if isinstance(d_ff, int) else [int(d) for d in d_ff]
    most = [max(int(c), d) for c, d in zip(caps, full)] if caps is not None else full
    budget = max(len(full), round(fraction * sum(full)))

    def widths(c: float) -> list[int]:
        return [max(1, min(m, math.ceil(c * d / r))) for r, d, m in zip(normalised_rates, full, most)]

    # c = -ln(1-q); at hi every layer has all its neurons
    lo, hi = 0.0, max(r * m / d for r, d, m in zip(normalised_rates, full, most)) * 2.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sum(widths(mid)) <= budget else (lo, mid)
    return widths(lo)


def awn_prior(
    model: nn.Module,
    rate_mean: float,
    rate_std: float,
    weight_std: float,
    size_weight: float = 0.0,
) -> torch.Tensor:
    """Negative log prior of the AWN terms, up to constants (the caller divides by N).

    A Gaussian on each profile's normalised rate, FFN and (when converted with heads) attention
    (mean ``rate_mean``; a mean above the initial rate pulls widths down) plus a Gaussian on the FFN weights,
    which makes large weights on down-weighted neurons expensive. FFN weights = every parameter of the FFN modules
    wrapped or feeding a wrapper (up, gate, down).

    ``size_weight`` adds a Nimble-style size cost (Radhakrishnan et al. 2025: one trainable weight sets a
    layer's size under a size-dependent loss): ``size_weight`` × each FFN profile's k-quantile width in units
    of its pretrained width, ``-ln(1-k) / (λ·d_ff)``. It charges every neuron the same, where the Gaussian
    on the rate pulls towards one width; with ``rate_std`` large it replaces that pull.
    """
    wrappers = awn_units(model)
    if not wrappers:
        raise ConversionError("model has no AWN blocks: call convert_ first")
    device = wrappers[0].raw_rate.device
    rate_term = torch.zeros((), device=device)
    for w in wrappers:
        rate_term = rate_term + (w.normalised_rate() - rate_mean) ** 2 / (2 * rate_std**2)
    if size_weight:
        for w in adaptive_modules(model):
            rate_term = rate_term + size_weight * -math.log(1.0 - w.k) / w.normalised_rate()
    weight_term = torch.zeros((), device=device)
    for block in find_ffns(model):
        for weight in block.parameters():
            # Under FSDP2 a weight is a DTensor: each rank adds its own shard (the term's gradient is
            # per element, so the shards' sums make the whole one).
            weight = weight.to_local() if hasattr(weight, "to_local") else weight
            weight_term = weight_term + weight.float().pow(2).sum() / (2 * weight_std**2)
    return rate_term + weight_term
