"""Accuracy: the (optionally weighted) fraction of predictions equal to their reference label.

Shipped with awncompress so that evaluation works offline (``evaluate.load("accuracy")`` needs the
Hugging Face Hub); written from the definition, numpy only.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy = (number of correct predictions) / (number of predictions)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
    normalize (bool): if False, return the (weighted) number of correct predictions instead. Default True.
    sample_weight (list of float): optional per-example weights.
Returns:
    accuracy (float): in [0, 1] when normalize is True.
Example:
    >>> metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0])
    {'accuracy': 0.75}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    """Fraction of exact label matches."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        correct = np.asarray(predictions) == np.asarray(references)
        weights = np.ones(len(correct)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        hits = float(np.sum(weights * correct))
        if not normalize:
            return {"accuracy": hits}
        total = float(np.sum(weights))
        return {"accuracy": hits / total if total else 0.0}
