"""Evaluation: dynamic WINA masks, baselines at full width, awn rows from disk, FLOPs, latency, bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import collate, make_batches, make_dataset
from zoo import make_model

from awncompress import AWNConfig, convert_, export_nested, export_uniform, fold_, load_pretrained, profile_summary
from awncompress.checkpoint.layout import annotate_exports, export_dirs_for, find_exports
from awncompress.errors import DataError, MetricError, NotAnExportError, UnknownMethodError
from awncompress.evaluate.latency import LatencyConfig, device_name, measure_latency
from awncompress.evaluate.matrix import evaluate_methods
from awncompress.evaluate.measure import evaluate_model, flops_per_example, length_counts
from awncompress.evaluate.methods import dynamic_wina
from awncompress.model.flops import count_flops

FAST = LatencyConfig(batch_size=1, seq_len=8, warmup=1, repeats=2)


def _folded(family: str = "bert"):
    model = make_model(family)
    original = copy.deepcopy(model)
    convert_(model, AWNConfig(), calibration=make_batches())
    return original, fold_(model)


# ------------------------------------------------------------------------------------------- dynamic WINA


@pytest.mark.parametrize("family", ["bert", "llama", "gpt2"])
def test_dynamic_wina_keeps_exactly_k_neurons_per_token(family):
    model = make_model(family)
    batch = make_batches()[0]
    with torch.no_grad():
        dense = model(**batch).logits
    from awncompress.model.families import find_ffns

    seen = []
    with dynamic_wina(model, 0.25) as ks:
        assert ks == [16, 16]
        handles = [
            b.down.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
            for b in find_ffns(model)
        ]
        with torch.no_grad():
            masked = model(**batch).logits
        for h in handles:
            h.remove()
    assert len(seen) == 2
    for h in seen:
        assert ((h != 0).sum(-1) == 16).all()
    assert not torch.allclose(masked, dense, atol=1e-4)
    with torch.no_grad():  # hooks removed on exit
        assert torch.equal(model(**batch).logits, dense)
    with dynamic_wina(model, 1.0):
        with torch.no_grad():
            assert torch.equal(model(**batch).logits, dense)


def test_dynamic_wina_keeps_the_largest_weighted_activations():
    model = make_model("bert")
    from awncompress.model.families import find_ffns

    block = find_ffns(model)[0]
    norms = block.down.weight.detach().norm(dim=0)
    h = torch.randn(1, 3, 64)
    with dynamic_wina(model, 8):
        (masked,) = block.down._forward_pre_hooks[next(iter(block.down._forward_pre_hooks))](block.down, (h,))
    top = (h.abs() * norms).topk(8, dim=-1).indices
    assert torch.equal(masked.gather(-1, top), h.gather(-1, top))
    assert int((masked != 0).sum()) == 3 * 8


# ------------------------------------------------------------------------------------------- metric


def test_perplexity_matches_the_models_own_loss():
    model = make_model("gpt2")
    items = [
        {"input_ids": list(range(5, 15)), "attention_mask": [1] * 10, "labels": list(range(5, 15))} for _ in range(3)
    ]
    ppl = evaluate_model(model, items, collate, "causal-lm")
    batch = collate(items)
    with torch.no_grad():
        loss = model(**batch).loss
    assert ppl == pytest.approx(math.exp(float(loss)), rel=1e-5)


def test_each_windows_nll_is_its_own_loss_for_paired_tests():
    model = make_model("gpt2")
    items = [
        {"input_ids": list(range(5 + i, 15 + i)), "attention_mask": [1] * 10, "labels": list(range(5 + i, 15 + i))}
        for i in range(3)
    ]
    per_window: list = []
    ppl = evaluate_model(model, items, collate, "causal-lm", correct=per_window)
    with torch.no_grad():
        want = [float(model(**collate([it])).loss) for it in items]  # in dataset order
    assert per_window == pytest.approx(want, rel=1e-5)
    assert ppl == pytest.approx(math.exp(sum(want) / 3), rel=1e-5)  # equal windows: the mean NLL


def test_accuracy_is_the_argmax_agreement():
    model = make_model("bert")
    items = make_dataset(10)
    acc = evaluate_model(model, items, collate, "text-classification", batch_size=4)
    with torch.no_grad():
        preds = [
            int(model(**{k: v for k, v in collate([it]).items() if k != "labels"}).logits.argmax()) for it in items
        ]
    assert acc == pytest.approx(sum(p == it["labels"] for p, it in zip(preds, items)) / len(items))


def test_flops_at_real_token_counts():
    model = make_model("bert")
    items = make_dataset(12)
    lengths = length_counts(items)
    assert sum(lengths.values()) == 12 and min(lengths) == 4 and max(lengths) == 12
    got = flops_per_example(model, lengths)
    expected = sum(count_flops(model, len(it["input_ids"])).total for it in items) / len(items)
    assert got["flops"] == round(expected)
    assert 0 < got["ffn_share"] < 1


def test_latency_and_device():
    model = make_model("roberta")  # positions are offset by the padding index: seq_len is capped
    lat = measure_latency(model, LatencyConfig(batch_size=2, seq_len=500, warmup=1, repeats=5))
    assert lat["p10_ms"] <= lat["median_ms"] <= lat["p90_ms"] and lat["seq_len"] <= 62
    dev = device_name("cpu")
    assert dev["type"] == "cpu" and dev["name"] and dev["threads"] >= 1


# ------------------------------------------------------------------------------------------- methods


@pytest.mark.parametrize("family,task", [("bert", "text-classification"), ("llama", "causal-lm")])
def test_baselines_at_full_width_equal_dense(family, task):
    model = make_model(family)
    items = make_dataset(9, "lm" if task == "causal-lm" else "cls")
    record = evaluate_methods(
        model,
        None,
        items,
        collate,
        task,
        methods=["wina", "activation", "magnitude", "random", "wina-dynamic"],
        widths=[1.0],
        calibration=make_batches(),
        latency=None,
    )
    dense = record["dense"]["value"]
    assert len(record["rows"]) == 5
    for row in record["rows"]:
        assert row["value"] == pytest.approx(dense, rel=1e-5), row["method"]
        assert row["flops_ratio"] == pytest.approx(1.0) and row["latency_ms"] is None
    assert record["metric"] == {
        "name": "accuracy" if task != "causal-lm" else "perplexity",
        "higher_is_better": task != "causal-lm",
    }


def test_awn_rows_are_reloaded_from_disk(tmp_path):
    original, folded = _folded("bert")
    items = make_dataset(12)
    dirs = {w: export_uniform(folded, tmp_path / f"width-{w:g}", w) for w in (0.25, 0.5, 0.75)}
    seen = []

    def finetuned(width: float):  # stands in for a "<score>+finetune" baseline
        seen.append(width)
        model = copy.deepcopy(original)
        from awncompress import truncate_

        truncate_(model, width)
        return model

    record = evaluate_methods(
        original,
        dirs,
        items,
        collate,
        methods=["awn", "wina", "wina-dynamic", ("wina+finetune", finetuned)],
        calibration=make_batches(),
        latency=FAST,
        model_name="tiny-bert",
        data="synthetic",
        seed=3,
    )
    assert seen == [0.25, 0.5, 0.75]
    awn = [r for r in record["rows"] if r["method"] == "awn"]
    assert [r["width_fraction"] for r in awn] == [0.25, 0.5, 0.75]
    for row in awn:
        folder = dirs[row["width_fraction"]]
        assert row["export"] == str(folder)
        assert row["value"] == evaluate_model(load_pretrained(folder), items, collate, "text-classification")
        assert row["checkpoint_bytes"] == (folder / "model.safetensors").stat().st_size
        assert row["intermediate_size"] == int(64 * row["width_fraction"]) and not row["theoretical"]
    for method in ("awn", "wina", "wina-dynamic", "wina+finetune"):
        rows = [r for r in record["rows"] if r["method"] == method]
        ratios = [r["flops_ratio"] for r in rows]
        assert len(rows) == 3 and ratios == sorted(ratios) and ratios[-1] < 1.0, method
        if method == "wina-dynamic":  # a masked dense model: timing it would not measure the method
            assert all(r["latency_ms"] is None and r["latency_ratio"] is None for r in rows)
        else:
            assert all(r["latency_ms"] > 0 and r["latency_ratio"] > 0 for r in rows)
    dyn = [r for r in record["rows"] if r["method"] == "wina-dynamic"]
    static = [r for r in record["rows"] if r["method"] == "wina"]
    assert all(d["theoretical"] and d["params"] == record["dense"]["params"] for d in dyn)
    assert [d["flops"] for d in dyn] == [s["flops"] for s in static]  # active neurons only
    assert record["model"] == "tiny-bert" and record["seed"] == 3 and record["data"] == "synthetic"
    assert set(record["costs"]) == {"awn", "wina", "wina-dynamic", "wina+finetune", "latency"}
    assert {"torch", "transformers", "awncompress"} <= set(record["versions"])
    assert annotate_exports(record) == [dirs[w] for w in (0.25, 0.5, 0.75)]
    card = (dirs[0.5] / "README.md").read_text()
    assert "FLOPs vs dense" in card and "synthetic" in card


def test_exports_on_disk_width_folders_win_over_the_nested_slice(tmp_path):
    model = make_model("gpt2")
    original = copy.deepcopy(model)
    convert_(model, AWNConfig(), calibration=make_batches())
    profile = profile_summary(model)
    fold_(model)
    out = tmp_path / "out"
    export_nested(model, out / "nested", widths=[0.25, 0.5], profile=profile)
    export_uniform(model, out / "width-0.5", 0.5)
    nested, width_dirs = find_exports(out)
    dirs = export_dirs_for([0.25, 0.5], {"nested": nested, **{f"{w:g}": p for w, p in width_dirs.items()}})
    assert dirs == {0.25: out / "nested", 0.5: out / "width-0.5"}
    items = make_dataset(6, "lm")
    record = evaluate_methods(
        original, dirs, items, collate, methods=["awn", "magnitude"], latency=None, profile=profile
    )
    assert record["task"] == "causal-lm" and record["metric"]["name"] == "perplexity"
    awn = {r["width_fraction"]: r for r in record["rows"] if r["method"] == "awn"}
    assert awn[0.5]["export"] == str(out / "width-0.5")
    assert awn[0.25]["export"] == str(out / "nested") and awn[0.25]["checkpoint_bytes"] is None
    expected = evaluate_model(load_pretrained(out / "nested", width=0.25), items, collate, "causal-lm")
    assert awn[0.25]["value"] == pytest.approx(expected)
    assert record["profile"]["active_widths"] == profile["active_widths"]


# ------------------------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors(tmp_path):
    original, folded = _folded("bert")
    items = make_dataset(6)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotAnExportError, match="not an awncompress output"):
        find_exports(tmp_path / "empty")
    with pytest.raises(NotAnExportError):
        evaluate_methods(original, {0.5: tmp_path / "empty"}, items, collate, methods=["awn"], latency=None)
    folder = export_uniform(folded, tmp_path / "out" / "width-0.5", 0.5)
    with pytest.raises(NotAnExportError, match="0.25"):
        evaluate_methods(original, {0.5: folder}, items, collate, methods=["awn"], widths=[0.25, 0.5])
    with pytest.raises(DataError, match="no labels"):
        evaluate_methods(original, {0.5: folder}, make_dataset(6, labels=False), collate, methods=["awn"])
    with pytest.raises(DataError, match="empty"):
        evaluate_model(original, [], collate, "text-classification")
    with pytest.raises(MetricError, match="not shipped"):
        evaluate_methods(original, {0.5: folder}, items, collate, metric="no_such_metric_xyz", methods=["awn"])
    with pytest.raises(DataError, match="calibration"):
        evaluate_methods(original, {0.5: folder}, items, collate, methods=["wina"])
    with pytest.raises(UnknownMethodError, match="unknown evaluation method"):
        evaluate_methods(original, {0.5: folder}, items, collate, methods=["no-such-method"])


def test_per_example_correctness_is_in_dataset_order():

    model = make_model("bert")
    items = [{"input_ids": list(range(2, 2 + n)), "attention_mask": [1] * n, "labels": n % 3} for n in (9, 3, 6, 4, 8)]

    def collate(batch):
        longest = max(len(b["input_ids"]) for b in batch)

        def pad(xs):
            return xs + [0] * (longest - len(xs))

        return {
            "input_ids": torch.tensor([pad(b["input_ids"]) for b in batch]),
            "attention_mask": torch.tensor([pad(b["attention_mask"]) for b in batch]),
            "labels": torch.tensor([b["labels"] for b in batch]),
        }

    hits: list[int] = []
    acc = evaluate_model(model, items, collate, "text-classification", batch_size=2, correct=hits)
    with torch.no_grad():
        expected = [int(model(**collate([it])).logits.argmax(-1).item() == it["labels"]) for it in items]
    assert hits == expected and acc == pytest.approx(sum(expected) / len(expected))


# ------------------------------------------------------------------------------------------- latency


def test_rows_of_one_shape_share_one_round_robin_timing():
    model = make_model("bert")
    record = evaluate_methods(
        model,
        None,
        make_dataset(6),
        collate,
        methods=["wina", "magnitude", "random"],
        widths=[0.5, 1.0],
        calibration=make_batches(),
        latency=FAST,
    )
    by = {(r["method"], r["width_fraction"]): r for r in record["rows"]}
    assert by[("wina", 0.5)]["latency_ms"] == by[("magnitude", 0.5)]["latency_ms"] == by[("random", 0.5)]["latency_ms"]
    assert (
        by[("wina", 1.0)]["latency_ms"] == record["dense"]["latency_ms"] and by[("wina", 1.0)]["latency_ratio"] == 1.0
    )
    assert record["latency_config"]["schedule"] == "round-robin" and record["latency_config"]["shapes"] == 2


def test_round_robin_interleaves_the_models():
    from types import SimpleNamespace

    from awncompress.evaluate.latency import time_round_robin

    calls: list[str] = []

    class Stub(torch.nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name, self.config = name, SimpleNamespace(vocab_size=10)
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask):
            calls.append(self.name)

    out = time_round_robin(
        {"a": Stub("a"), "b": Stub("b"), "c": Stub("c")}, LatencyConfig(batch_size=1, seq_len=4, warmup=1, repeats=3)
    )
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # one pass each per round, order rotating
    assert set(out) == {"a", "b", "c"} and all(v["repeats"] == 3 for v in out.values())
