"""What one model is worth on one data set: its metric, FLOPs per example and sizes.

Latency is in latency.py; the methods that produce the models are in methods/; evaluation.py runs
them all and assembles the report record.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.tasks import default_metric, is_lm_task
from ..data.tokenized import example_lengths, length_order
from ..errors import DataError, MetricError
from ..model.flops import count_flops
from ..model.scoring import model_inputs
from .latency import device_of
from .metrics import compute_metric


def _first_item(dataset: Any) -> Optional[Mapping]:
    try:
        return dataset[0] if len(dataset) else None
    except (TypeError, KeyError, IndexError):
        return next(iter(dataset), None)


def check_eval_data(dataset: Any) -> None:
    """Raise DataError unless ``dataset`` is non-empty and its items carry ``labels``."""
    if dataset is None:
        raise DataError("no evaluation data given")
    first = _first_item(dataset)
    if first is None:
        raise DataError("the evaluation data is empty")
    if not isinstance(first, Mapping) or "input_ids" not in first:
        raise DataError(
            f"evaluation items must be dicts with input_ids/attention_mask/labels, got {type(first).__name__}"
        )
    if "labels" not in first:
        keys = ", ".join(sorted(first))
        raise DataError(
            f"the evaluation data has no labels (item keys: {keys}); a metric needs labeled data "
            "(for causal-lm the labels are the input ids)"
        )


def _lm_scores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[list[float], list[int]]:
    """Per-sequence summed next-token NLL and scored-token counts (labels -100 ignored)."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    nll = nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100, reduction="none"
    ).view(shift_labels.shape)
    return nll.double().sum(1).tolist(), (shift_labels != -100).sum(1).tolist()


def _predictions(
    model: nn.Module, dataset: Any, collate: Optional[Callable], lm: bool, batch_size: int, order: Sequence[int]
) -> tuple[list, list]:
    device = device_of(model)
    predictions: list = []
    references: list = []
    for batch in DataLoader(dataset, batch_size=batch_size, sampler=order, collate_fn=collate):
        if "labels" not in batch:
            raise DataError("an evaluation batch has no labels (check the collate function)")
        labels = batch["labels"].to(device)
        out = model(**model_inputs(batch, device))
        logits = out.logits if hasattr(out, "logits") else out[0]
        if lm:
            nll, counts = _lm_scores(logits, labels)
            predictions += nll
            references += counts
        else:
            # One output: a regression logit (e.g. for spearmanr); else the argmax class.
            predictions += (logits[..., 0].float() if logits.shape[-1] == 1 else logits.argmax(-1)).tolist()
            references += labels.tolist()
    return predictions, references


@torch.inference_mode()
def evaluate_model(
    model: nn.Module,
    dataset: Any,
    collate: Optional[Callable],
    task: str,
    metric: Optional[str] = None,
    batch_size: int = 32,
    device: Optional[Union[str, torch.device]] = None,
    correct: Optional[list] = None,
) -> float:
    """The metric of ``model`` on ``dataset`` (items: dicts of input_ids / attention_mask / labels).

    Classification: predictions are the argmax of the logits (the logit itself when there is one
    output, for regression metrics such as spearmanr). Causal LM: per-sequence summed next-token
    NLL and token counts, which the offline ``perplexity`` metric turns into token-weighted
    perplexity. ``metric`` defaults to the task's. ``correct``: receives one value per example in
    dataset order, for paired tests: 1/0 for classification, each window's mean next-token NLL (nats)
    for a causal LM. Batches are length-sorted (less padding); the
    metric does not depend on the order.

    Raises DataError for data without labels, MetricError for a metric that cannot be loaded offline.
    """
    metric = metric or default_metric(task)
    lm = is_lm_task(task)
    check_eval_data(dataset)
    if device is not None:
        model.to(device)
    was_training = model.training
    model.eval()
    order = length_order(dataset)
    try:
        predictions, references = _predictions(model, dataset, collate, lm, batch_size, order)
    finally:
        model.train(was_training)
    if correct is not None:
        per_example: list = [0] * len(order)
        for position, index in enumerate(order):
            p, r = predictions[position], references[position]
            per_example[index] = (p / max(1, r)) if lm else int(p == r)
        correct.extend(per_example)
    try:
        return compute_metric(metric, predictions, references)
    except MetricError:
        raise
    except (ValueError, TypeError) as exc:  # e.g. a classification metric fed regression outputs
        raise MetricError(f"metric {metric!r} could not score the {task} predictions: {exc}") from exc


def length_counts(dataset: Any) -> Counter:
    """How many examples have each token count (see :func:`awncompress.data.example_lengths`)."""
    return Counter(example_lengths(dataset))


def flops_per_example(model: nn.Module, lengths: Mapping[int, int], ffn_widths: Optional[Sequence[int]] = None) -> dict:
    """Mean FLOPs per example over examples of the given lengths ({length: count}).

    Returns {"flops", "ffn_flops", "ffn_share", "flops_source"}; each distinct length is counted once.
    """
    total = ffn = n = 0
    source = "formula"
    for length, count in lengths.items():
        if length <= 0:
            continue
        fc = count_flops(model, int(length), ffn_widths=ffn_widths)
        total += fc.total * count
        ffn += fc.ffn * count
        n += count
        source = fc.source
    if n == 0:
        raise DataError("the evaluation data holds no tokens")
    mean_total, mean_ffn = total / n, ffn / n
    return {
        "flops": int(round(mean_total)),
        "ffn_flops": int(round(mean_ffn)),
        "ffn_share": round(mean_ffn / mean_total, 6) if mean_total else 0.0,
        "flops_source": source,
    }


def count_params(model: nn.Module) -> int:
    """Number of parameters (tied weights once)."""
    return sum(p.numel() for p in model.parameters())


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the parameters in memory (tied weights once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def checkpoint_bytes(folder: Union[str, Path]) -> int:
    """Bytes of the safetensors files in an export folder."""
    return sum(f.stat().st_size for f in Path(folder).glob("*.safetensors"))
