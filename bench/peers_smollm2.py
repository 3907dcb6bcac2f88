"""Benchmark 7b (issue 28): SmolLM2-135M on Jane Austen, awn against the pruning tools users know.

    python bench/peers_smollm2.py --out bench/results/peers-smollm2 [--seeds 0 1]
    python bench/peers_smollm2.py --out OUT --text wikitext:wikitext-2-raw-v1:test --window 128   # online

The ``smollm2`` recipe (30 AWN steps, five export widths 25 to 75 % of d_ff) with every method of
``bench/peers_minilm.py``: awn's one fine-tune; the static cuts wina, wanda-sp, taylor, fluctuation
and flap; and each of them fine-tuned per width with the same steps, KD loss and teacher (the dense
model itself: SmolLM2 needs no dense stage), plus minitron.

Perplexity is over windows of ``--window`` tokens (default the recipe's 64; the LLM-Pruner and FLAP
papers report 128 and 2048) of ``--text`` (default the recipe's held-out Jane Austen windows; any
local text file or Hub dataset id the recipe's ``data.eval`` accepts). The report names both
(``perplexity`` in report.json). Summarise with ``python bench/summarise.py OUT``.
"""

from __future__ import annotations

import argparse
import functools

from harness import add_run_args, make_parser, parse, run_seeds
from peers_minilm import FFN_METHODS

from awncompress.config import Recipe, apply_overrides, load_recipe


def parser() -> argparse.ArgumentParser:
    out = add_run_args(make_parser(__doc__), [0, 1])
    out.add_argument("--text", help="the evaluation text: a local file or a Hub dataset id (data.eval)")
    out.add_argument("--window", type=int, help="tokens per perplexity window (data.max_length)")
    return out


def recipe_for(args: argparse.Namespace, seed: int, first: bool) -> tuple[Recipe, None]:
    """The smollm2 recipe for one seed with every peer, over ``--text`` in ``--window``-token windows."""
    overrides = {"seed": seed, "evaluate.methods": FFN_METHODS}
    if args.text:
        overrides["data.eval"] = args.text
    if args.window:
        overrides["data.max_length"] = str(args.window)
    return apply_overrides(load_recipe("smollm2"), {**overrides, **args.overrides}), None


def main() -> None:
    args = parse(parser())
    run_seeds(args.out, args.seeds, functools.partial(recipe_for, args), label="peers ")


if __name__ == "__main__":
    main()
