"""bench/peers_minilm.py and bench/peers_smollm2.py build recipes the package accepts: every method
name is registered, the head-capable peers come with awn.heads, the text and window reach the data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import peers_minilm  # noqa: E402
import peers_smollm2  # noqa: E402
from harness import parse  # noqa: E402

from awncompress.evaluate.methods import make_method  # noqa: E402

pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # parse() pins torch to 2 threads


@pytest.mark.parametrize("flops", [False, True])
def test_minilm_peers_recipe(tmp_path, flops):
    args = parse(peers_minilm.parser(), ["--out", str(tmp_path), "--dense", "/d"] + (["--flops"] if flops else []))
    recipe, budget = peers_minilm.recipe_for(args, 1, False)
    methods = list(recipe.evaluate.methods)
    assert budget is None and recipe.seed == 1 and recipe.model == "/d"
    assert {make_method(m).name for m in methods} == set(methods)
    if flops:
        assert recipe.awn.heads and [float(t) for t in recipe.export.flops] == [0.25, 0.3, 0.4]
        heads = {"taylor-heads", "fluctuation-heads", "finetune-heads"}
        assert heads | {"taylor-heads+finetune", "fluctuation-heads+finetune"} <= set(methods)
    else:
        assert [float(w) for w in recipe.export.widths] == [0.125, 0.25, 0.375, 0.5, 0.75]
        static = [m for m in methods if not make_method(m).trains and m != "awn"]
        assert static == ["wina", "wanda-sp", "taylor", "fluctuation", "flap"]
        twins = ["finetune"] + [f"{m}+finetune" for m in static[1:]]  # wina's twin is `finetune`
        assert [m for m in methods if make_method(m).trains] == twins + ["minitron"]


def test_minilm_later_seeds_start_from_the_first_seeds_dense_model(tmp_path):
    args = parse(peers_minilm.parser(), ["--out", str(tmp_path), "--seeds", "3", "4"])
    assert peers_minilm.recipe_for(args, 3, True)[0].model == "builtin:minilm"
    assert peers_minilm.recipe_for(args, 4, False)[0].model == str(tmp_path / "seed-3" / "dense")


def test_smollm2_peers_recipe_takes_the_text_and_window(tmp_path):
    text = tmp_path / "book.txt"
    args = parse(peers_smollm2.parser(), ["--out", str(tmp_path), "--text", str(text), "--window", "128"])
    recipe, _ = peers_smollm2.recipe_for(args, 0, True)
    assert recipe.task == "causal-lm" and recipe.data.eval == str(text) and recipe.data.max_length == 128
    assert "flap+finetune" in recipe.evaluate.methods and "minitron" in recipe.evaluate.methods
