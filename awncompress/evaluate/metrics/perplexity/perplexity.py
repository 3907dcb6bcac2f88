"""Perplexity from per-sequence losses that the caller already computed.

Unlike the Hub's "perplexity" (which loads a model by name and runs it), this one only aggregates:
``predictions`` are per-sequence *summed* token negative log-likelihoods (nats), ``references`` the
per-sequence token counts, and the result is exp(total NLL / total tokens), i.e. token-weighted,
not an average of per-sequence perplexities. That lets awncompress evaluate any in-memory model.
"""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Perplexity = exp(sum of token NLLs / number of tokens), from per-sequence sums."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of float): per-sequence summed token negative log-likelihood, in nats.
    references (list of int): per-sequence number of scored tokens.
Returns:
    perplexity (float): >= 1 for a proper model; lower is better.
Example:
    >>> metric.compute(predictions=[2.0, 4.0], references=[2, 4])
    {'perplexity': 2.718281828459045}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    """Token-weighted perplexity from summed NLLs and token counts."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        tokens = int(np.sum(references))
        if tokens <= 0:
            raise ValueError("perplexity needs at least one scored token (references sum to 0)")
        mean_nll = float(np.sum(predictions)) / tokens
        # A diverged model's mean NLL can exceed what exp() can represent: its perplexity is infinite.
        return {"perplexity": math.exp(mean_nll) if mean_nll < 709.0 else math.inf}
