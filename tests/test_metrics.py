"""The offline metric modules on hand-computed examples, and the loader's behaviour offline."""

from __future__ import annotations

import math
from pathlib import Path

import evaluate
import pytest

import awncompress.evaluate.metrics as metrics
from awncompress.errors import AwnError, MetricError
from awncompress.evaluate.metrics import LOCAL_METRICS, compute_metric, higher_is_better, load_metric


@pytest.fixture(scope="module")
def loaded() -> dict[str, evaluate.EvaluationModule]:
    return {name: load_metric(name) for name in LOCAL_METRICS}


def test_every_local_metric_is_a_shipped_module(loaded: dict[str, evaluate.EvaluationModule]) -> None:
    root = Path(metrics.__file__).parent
    for name in LOCAL_METRICS:
        assert (root / name / f"{name}.py").is_file()
        assert isinstance(loaded[name], evaluate.Metric)


def test_accuracy(loaded: dict[str, evaluate.EvaluationModule]) -> None:
    acc = loaded["accuracy"]
    assert acc.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0]) == {"accuracy": 0.75}
    assert acc.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0], normalize=False) == {"accuracy": 3.0}
    # Weights 1,1,2,0: correct weight 1+1+0 out of 4.
    weighted = acc.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0], sample_weight=[1, 1, 2, 0])
    assert weighted["accuracy"] == pytest.approx(0.5)


def test_f1_binary(loaded: dict[str, evaluate.EvaluationModule]) -> None:
    f1 = loaded["f1"]
    # TP=1, FP=1, FN=1 → 2/(2+1+1).
    assert f1.compute(predictions=[1, 1, 0, 0], references=[1, 0, 1, 0])["f1"] == pytest.approx(0.5)
    # pos_label=0: TP=2, FP=1, FN=0 → 4/5.
    assert f1.compute(predictions=[0, 0, 0, 1], references=[0, 1, 0, 1], pos_label=0)["f1"] == pytest.approx(0.8)
    # No positive anywhere: 0 rather than a division by zero.
    assert f1.compute(predictions=[0, 0], references=[0, 0])["f1"] == 0.0
    with pytest.raises(ValueError, match="binary"):
        f1.compute(predictions=[0, 1, 2], references=[0, 1, 2])


def test_f1_multiclass_averages(loaded: dict[str, evaluate.EvaluationModule]) -> None:
    f1 = loaded["f1"]
    refs, preds = [0, 0, 0, 1, 2, 2], [0, 0, 1, 1, 1, 2]
    # Per class: 0 → TP2 FP0 FN1 = 4/5; 1 → TP1 FP2 FN0 = 1/2; 2 → TP1 FP0 FN1 = 2/3. Supports 3, 1, 2.
    per_class = [0.8, 0.5, 2 / 3]
    assert f1.compute(predictions=preds, references=refs, average=None)["f1"] == pytest.approx(per_class)
    assert f1.compute(predictions=preds, references=refs, average="macro")["f1"] == pytest.approx(sum(per_class) / 3)
    assert f1.compute(predictions=preds, references=refs, average="micro")["f1"] == pytest.approx(4 / 6)
    weighted = (3 * 0.8 + 1 * 0.5 + 2 * 2 / 3) / 6
    assert f1.compute(predictions=preds, references=refs, average="weighted")["f1"] == pytest.approx(weighted)


def test_matthews_correlation(loaded: dict[str, evaluate.EvaluationModule]) -> None:
    mcc = loaded["matthews_correlation"]

    def value(preds: list[int], refs: list[int]) -> float:
        return mcc.compute(predictions=preds, references=refs)["matthews_correlation"]

    # TP=1 FP=1 TN=2 FN=0: (1·2 − 1·0) / sqrt(2·1·3·2).
    assert value([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(2 / math.sqrt(12))
    assert value([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert value([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert value([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0  # constant prediction: defined as 0
    # Multiclass: true counts (3,1,2), predicted (2,3,1), 4 correct of 6:
    # (4·6 − 11) / sqrt((36 − 14)·(36 − 14)) = 13/22.
    assert value([0, 0, 1, 1, 1, 2], [0, 0, 0, 1, 2, 2]) == pytest.approx(13 / 22)


def test_spearmanr(loaded: dict[str, evaluate.EvaluationModule]) -> None:
    rho = loaded["spearmanr"]

    def value(preds: list[float], refs: list[float]) -> float:
        return rho.compute(predictions=preds, references=refs)["spearmanr"]

    assert value([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)  # 1 − 6·2/(4·15)
    assert value([0.1, 0.5, 0.9], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    # Ties take the average rank: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4) → 4.5 / sqrt(4.5·5).
    assert value([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert math.isnan(value([1, 1, 1], [1, 2, 3]))


def test_perplexity_is_token_weighted(loaded: dict[str, evaluate.EvaluationModule]) -> None:
    ppl = loaded["perplexity"]
    assert ppl.compute(predictions=[2.0, 4.0], references=[2, 4])["perplexity"] == pytest.approx(math.e)
    # exp(10/4), not the mean of exp(1/1) and exp(9/3).
    assert ppl.compute(predictions=[1.0, 9.0], references=[1, 3])["perplexity"] == pytest.approx(math.exp(2.5))
    with pytest.raises(ValueError, match="token"):
        ppl.compute(predictions=[0.0], references=[0])


def test_compute_metric_returns_the_headline() -> None:
    assert compute_metric("accuracy", [0, 1, 1, 0], [0, 1, 0, 0]) == 0.75
    assert compute_metric("F1", [1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.5)
    assert compute_metric("f1", [0, 0, 1, 2], [0, 1, 1, 2], average="macro") == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert compute_metric("perplexity", [2.0, 4.0], [2, 4]) == pytest.approx(math.e)
    perfect = compute_metric("matthews_correlation", [1, 0, 1, 0], [1, 0, 1, 0])
    assert perfect == 1.0 and type(perfect) is float  # a plain float for the report, not a numpy scalar
    assert compute_metric("matthews_correlation", [1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(2 / math.sqrt(12))
    with pytest.raises(MetricError, match="single number"):
        compute_metric("f1", [0, 1, 2], [0, 1, 2], average=None)


def test_higher_is_better() -> None:
    assert all(higher_is_better(name) for name in LOCAL_METRICS if name != "perplexity")
    assert not higher_is_better("perplexity")
    assert not higher_is_better("wer") and not higher_is_better("eval_loss")


def test_unknown_metric_offline_names_the_local_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def offline_load(path: str, **kwargs: object) -> evaluate.EvaluationModule:
        # Stands in for evaluate.load when the Hub cannot be reached, so no network is attempted.
        asked.append(path)
        raise ConnectionError("Couldn't reach 'bleu' on the Hub")

    monkeypatch.setattr(metrics.evaluate, "load", offline_load)
    with pytest.raises(MetricError) as info:
        load_metric("bleu")
    assert asked == ["bleu"]
    message = str(info.value)
    assert "\n" not in message and "Hugging Face Hub" in message
    assert all(name in message for name in LOCAL_METRICS)
    assert isinstance(info.value, AwnError) and isinstance(info.value, ValueError)
