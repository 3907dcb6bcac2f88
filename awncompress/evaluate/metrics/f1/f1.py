"""F1 score, binary by default, with micro / macro / weighted / per-class averages.

Shipped with awncompress so that evaluation works offline; written from the definition with numpy,
following scikit-learn's conventions (a class with no true and no predicted examples scores 0).
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "F1 = 2·TP / (2·TP + FP + FN), the harmonic mean of precision and recall."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
    labels (list of int): the classes to score for the multiclass averages (default: all seen).
    pos_label (int): the positive class when average="binary". Default 1.
    average (str or None): "binary" (default), "micro", "macro", "weighted", or None for one score per class.
    sample_weight (list of float): optional per-example weights.
Returns:
    f1 (float, or a list of floats when average is None).
Example:
    >>> metric.compute(predictions=[1, 1, 0, 0], references=[1, 0, 1, 0])
    {'f1': 0.5}
"""
_AVERAGES = ("binary", "micro", "macro", "weighted", None)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (no true and no predicted examples of that class)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    """F1 score of classification predictions."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None):
        if average not in _AVERAGES:
            raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
        pred, ref = np.asarray(predictions), np.asarray(references)
        weights = np.ones(len(ref)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        seen = np.union1d(pred, ref)
        if average == "binary":
            if len(seen) > 2:
                raise ValueError(f"average='binary' needs at most two classes, got {seen.tolist()}; pass average=")
            classes = np.asarray([pos_label])
        else:
            classes = seen if labels is None else np.asarray(labels)
        tp = np.array([np.sum(weights * ((pred == c) & (ref == c))) for c in classes])
        fp = np.array([np.sum(weights * ((pred == c) & (ref != c))) for c in classes])
        fn = np.array([np.sum(weights * ((pred != c) & (ref == c))) for c in classes])
        if average == "micro":
            return {"f1": float(_safe_divide(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum()))}
        per_class = _safe_divide(2 * tp, 2 * tp + fp + fn)
        if average == "binary":
            return {"f1": float(per_class[0])}
        if average is None:
            return {"f1": per_class.tolist()}
        if average == "macro":
            return {"f1": float(per_class.mean()) if len(per_class) else 0.0}
        support = tp + fn  # weighted: by how many true examples each class has
        return {"f1": float(_safe_divide(np.sum(per_class * support), support.sum()))}
