"""Reading a report record (see evaluate/matrix.py): its metric, methods, widths and rows, and how values read.

Shared by the report files (report.py) and the curve (plot.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from ..evaluate.metrics import is_percent_metric

ABS_TOLERANCE = 0.01  # one point on a [0, 1] metric, for higher-is-better metrics
REL_TOLERANCE = 0.01  # one per cent, relative, for lower-is-better metrics (perplexity)


def metric_name(record: dict) -> str:
    """The record's metric name."""
    return record["metric"]["name"]


def higher(record: dict) -> bool:
    """Whether a larger metric value is better."""
    return bool(record["metric"].get("higher_is_better", True))


def percent(record: dict) -> bool:
    """Whether values show as percentages (a higher-is-better metric on [0, 1])."""
    return higher(record) and is_percent_metric(metric_name(record))


def fmt_value(record: dict, value: Optional[float]) -> str:
    """A metric value as the report shows it ("81.4" for accuracy, "73.52" for perplexity)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.1f}" if percent(record) else f"{value:.4g}"


def metric_label(record: dict) -> str:
    """The metric's axis / column label."""
    return f"{metric_name(record)} (%)" if percent(record) else metric_name(record)


def fmt_ratio(x: Optional[float]) -> str:
    """A ratio with three decimals, or a dash."""
    return "—" if x is None else f"{x:.3f}"


def fmt_ms(x: Optional[float]) -> str:
    """Milliseconds with two decimals, or a dash."""
    return "—" if x is None else f"{x:.2f}"


def short_model(name: Any) -> str:
    """A local absolute path shows as its last folder name; Hub ids ("org/name") stay as they are."""
    text = str(name)
    return Path(text).name or text if Path(text).is_absolute() else text


def pct(w: float) -> str:
    """A width fraction as a percentage: 0.125 -> "12.5%", 0.5 -> "50%"."""
    return f"{100 * float(w):.4g}%"


def fmt_width(w: Any) -> str:
    """An intermediate size: one number, or the range of a per-layer list."""
    if isinstance(w, list):
        return f"{min(w)}–{max(w)} (per layer)" if len(set(w)) > 1 else str(w[0])
    return str(w)


def methods(record: dict) -> list[str]:
    """The row labels, in the order they first appear."""
    seen: list[str] = []
    for row in record["rows"]:
        if row["method"] not in seen:
            seen.append(row["method"])
    return seen


def on_flops_axis(row: dict) -> bool:
    """Whether a row is a point at a FLOP target (FFN width and heads cut together) rather than a width."""
    return row.get("flops_target") is not None


def width_methods(record: dict) -> list[str]:
    """The row labels evaluated at FFN width fractions."""
    return [m for m in methods(record) if any(r["method"] == m and not on_flops_axis(r) for r in record["rows"])]


def flop_methods(record: dict) -> list[str]:
    """The row labels evaluated at FLOP targets (with heads)."""
    return [m for m in methods(record) if any(r["method"] == m and on_flops_axis(r) for r in record["rows"])]


def widths(record: dict) -> list[float]:
    """The evaluated width fractions, ascending."""
    return sorted({float(r["width_fraction"]) for r in record["rows"] if not on_flops_axis(r)})


def targets(record: dict) -> list[float]:
    """The evaluated FLOP targets, ascending."""
    return sorted({float(r["flops_target"]) for r in record["rows"] if on_flops_axis(r)})


def row(record: dict, method: str, width: float) -> Optional[dict]:
    """The row of ``method`` at ``width`` (None if it was not evaluated)."""
    for r in record["rows"]:
        if r["method"] == method and not on_flops_axis(r) and math.isclose(float(r["width_fraction"]), width):
            return r
    return None


def target_row(record: dict, method: str, target: float) -> Optional[dict]:
    """The row of ``method`` at FLOP target ``target`` (None if it was not evaluated)."""
    for r in record["rows"]:
        if r["method"] == method and on_flops_axis(r) and math.isclose(float(r["flops_target"]), target):
            return r
    return None


def within(record: dict, value: Optional[float]) -> bool:
    """Whether ``value`` is within the headline's tolerance of dense (1 point, or 1 % for perplexity)."""
    dense = record["dense"]["value"]
    if value is None or dense is None:
        return False
    if higher(record):
        return value >= dense - ABS_TOLERANCE - 1e-12
    return value <= dense * (1 + REL_TOLERANCE) + 1e-12
