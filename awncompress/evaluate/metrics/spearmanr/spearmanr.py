"""Spearman rank correlation: the Pearson correlation of the ranks (ties get their average rank).

Shipped with awncompress so that evaluation works offline (GLUE STS-B reports it); written from the
definition with numpy, without scipy, so no p-value. Constant inputs give NaN, as in scipy.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Spearman's rho between predictions and references, in [-1, 1]."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of float): predicted scores.
    references (list of float): true scores.
Returns:
    spearmanr (float): in [-1, 1]; NaN if either input is constant.
Example:
    >>> metric.compute(predictions=[1, 2, 3, 4], references=[10, 20, 40, 30])
    {'spearmanr': 0.8}
"""


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values, in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Spearmanr(evaluate.Metric):
    """Spearman rank correlation of regression predictions."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions, references):
        x = _average_ranks(np.asarray(predictions, dtype=float))
        y = _average_ranks(np.asarray(references, dtype=float))
        x, y = x - x.mean(), y - y.mean()
        denominator = np.sqrt((x @ x) * (y @ y))
        return {"spearmanr": float(x @ y / denominator) if denominator else float("nan")}
