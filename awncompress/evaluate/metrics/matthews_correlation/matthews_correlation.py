"""Matthews correlation coefficient, binary and multiclass (Gorodkin's R_K generalisation).

Shipped with awncompress so that evaluation works offline (GLUE CoLA reports it); written from the
definition with numpy. A degenerate confusion matrix (one class only predicted or present) gives 0.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "MCC: correlation between predicted and true labels, in [-1, 1]; 0 is chance level."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
    sample_weight (list of float): optional per-example weights.
Returns:
    matthews_correlation (float): in [-1, 1].
Example:
    >>> metric.compute(predictions=[1, 1, 0, 0], references=[1, 0, 0, 0])
    {'matthews_correlation': 0.5773502691896258}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MatthewsCorrelation(evaluate.Metric):
    """Matthews correlation coefficient of classification predictions."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, sample_weight=None):
        pred, ref = np.asarray(predictions), np.asarray(references)
        weights = np.ones(len(ref)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        classes = np.union1d(pred, ref)
        # Confusion matrix C[true, predicted], weighted.
        confusion = np.zeros((len(classes), len(classes)))
        np.add.at(confusion, (np.searchsorted(classes, ref), np.searchsorted(classes, pred)), weights)
        true_counts, pred_counts = confusion.sum(axis=1), confusion.sum(axis=0)
        correct, total = np.trace(confusion), confusion.sum()
        cov_true_pred = correct * total - true_counts @ pred_counts
        cov_pred = total**2 - pred_counts @ pred_counts
        cov_true = total**2 - true_counts @ true_counts
        denominator = np.sqrt(cov_pred * cov_true)
        return {"matthews_correlation": float(cov_true_pred / denominator) if denominator else 0.0}
