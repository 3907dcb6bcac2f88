"""Evaluation metrics that work offline.

``evaluate.load("accuracy")`` fetches its script from the Hugging Face Hub; awncompress ships its
own implementations of the metrics it reports (one ``evaluate.Metric`` module per folder here) and
loads them by path, so evaluation needs no network. Any other name goes to ``evaluate.load`` as
usual, which works for users who are online.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import evaluate

from ...errors import MetricError

__all__ = ["LOCAL_METRICS", "load_metric", "compute_metric", "higher_is_better", "is_percent_metric", "is_shipped"]

_HERE = Path(__file__).resolve().parent
LOCAL_METRICS: tuple[str, ...] = ("accuracy", "f1", "matthews_correlation", "spearmanr", "perplexity")
# Metrics where a smaller number is a better model; everything else is taken to be higher-is-better.
_LOWER_IS_BETTER = frozenset({"perplexity", "loss", "wer", "cer", "ter", "mse", "mae", "rmse", "mape"})
# Higher-is-better metrics on [0, 1] that read best as percentages.
_PERCENT = frozenset({"accuracy", "f1", "precision", "recall", "matthews_correlation", "spearmanr", "exact_match"})


def _local_name(name: str) -> str | None:
    key = name.strip().lower()
    return key if key in LOCAL_METRICS else None


def is_shipped(name: str) -> bool:
    """Whether ``name`` is one of the metrics awncompress ships (loading it runs no outside code)."""
    return _local_name(name) is not None


def load_metric(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """The shipped module for a local metric name, else ``evaluate.load(name, **kwargs)``.

    Raises ``MetricError`` (one line: it needs the Hub, and which metrics are local) when a
    non-local metric cannot be loaded, e.g. offline.
    """
    local = _local_name(name)
    if local is not None:
        return evaluate.load(str(_HERE / local), **kwargs)
    if name.endswith(".py") or "/" in name and Path(name).parent.exists():
        if not Path(name).exists():
            raise MetricError(f"metric script {name} not found")
    try:
        return evaluate.load(name, **kwargs)
    except Exception as exc:  # evaluate raises many types offline (ConnectionError, FileNotFoundError, ...)
        raise MetricError(
            f"metric {name!r} is not shipped with awncompress and loading it needs the Hugging Face Hub "
            f"({type(exc).__name__}); local metrics: {', '.join(LOCAL_METRICS)}"
        ) from exc


@functools.lru_cache(maxsize=None)
def _cached(name: str) -> evaluate.EvaluationModule:
    # Loading copies the script into the modules cache and imports it: do it once per process.
    return load_metric(name)


def compute_metric(name: str, predictions: Any, references: Any, **kwargs: Any) -> float:
    """The headline number of metric ``name`` (e.g. accuracy, f1, perplexity) as a float.

    The headline is the result key named like the metric, or the only key; a metric returning several
    numbers under other names, or a non-scalar (e.g. per-class F1), raises ``MetricError``.
    """
    result = _cached(name.strip().lower() if _local_name(name) else name).compute(
        predictions=predictions, references=references, **kwargs
    )
    key = name.strip().lower().rsplit("/", 1)[-1]
    if key in result:
        value = result[key]
    elif len(result) == 1:
        (value,) = result.values()
    else:
        raise MetricError(f"metric {name!r} returned several numbers {sorted(result)}; none is named {key!r}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise MetricError(f"metric {name!r} did not return a single number: {value!r}") from exc


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` means a better model (False for perplexity, losses, error rates)."""
    key = name.strip().lower().rsplit("/", 1)[-1]
    return key not in _LOWER_IS_BETTER and not key.endswith("_loss")


def is_percent_metric(name: str) -> bool:
    """Whether metric ``name`` is a fraction in [0, 1] that reports show as a percentage (accuracy, F1...)."""
    return name.strip().lower().rsplit("/", 1)[-1] in _PERCENT
