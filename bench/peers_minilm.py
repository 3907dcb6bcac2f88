"""Benchmark 7 (issue 28): MiniLM-L6 on Rotten Tomatoes, awn against the pruning tools users know.

    python bench/peers_minilm.py --out bench/results/peers-minilm --dense out/demo/dense [--seeds 0 1 2]
    python bench/peers_minilm.py --flops --out bench/results/peers-minilm-flops --dense out/demo/dense

Every seed starts from the same trained dense model (``--dense``: the demo run's ``dense/``, 81.40 %;
without it seed 0 trains one with the demo recipe and later seeds reuse it), so the static cuts share
one teacher and the paired differences compare methods, not teachers.

FFN widths 12.5 to 75 % (default): awn's one fine-tune; the static cuts wina, wanda-sp, taylor
(LLM-Pruner's first-order Taylor), fluctuation (FLAP's metric as an order) and flap (FLAP with its
adaptive widths and bias compensation, matched on total FFN neurons); and each of those fine-tuned
per width with the same steps, KD loss and teacher (``finetune`` = wina+finetune, ``<peer>+finetune``,
and ``minitron``: activation importance, a uniform cut, KD).

``--flops``: awn with heads (``awn.heads``) at FLOP targets 0.25, 0.3, 0.4 against the head-capable
peers at the same (FFN width, heads) pair: wina-heads, taylor-heads, fluctuation-heads (static) and
finetune-heads (wina-heads fine-tuned per target), taylor-heads+finetune and fluctuation-heads+finetune
(the peers' cuts fine-tuned per target the same way).

Summarise with ``python bench/summarise.py OUT``; torch-pruning's rows come from
``bench/torch_pruning_peer.py``.
"""

from __future__ import annotations

import argparse
import functools

from harness import add_run_args, make_parser, parse, run_seeds

from awncompress.config import Recipe, apply_overrides, load_recipe

WIDTHS = "0.125,0.25,0.375,0.5,0.75"
FFN_METHODS = (
    "awn,wina,wanda-sp,taylor,fluctuation,flap,"
    "finetune,wanda-sp+finetune,taylor+finetune,fluctuation+finetune,flap+finetune,minitron"
)
TARGETS = "0.25,0.3,0.4"
HEAD_WIDTHS = "0.125,0.25,0.5"
HEAD_METHODS = (
    "awn,wina,awn-heads,wina-heads,taylor-heads,fluctuation-heads,"
    "finetune-heads,taylor-heads+finetune,fluctuation-heads+finetune"
)


def parser() -> argparse.ArgumentParser:
    out = add_run_args(make_parser(__doc__), [0, 1, 2], dense=True)
    out.add_argument("--flops", action="store_true", help="heads and FFN at FLOP targets 0.25, 0.3, 0.4")
    return out


def recipe_for(args: argparse.Namespace, seed: int, first: bool) -> tuple[Recipe, None]:
    """The demo recipe for one seed: every seed from ``--dense`` (or from the first seed's dense model)."""
    overrides = {"seed": seed, "evaluate.latency_repeats": 20}
    if args.flops:
        overrides.update({"awn.heads": "true", "export.flops": TARGETS, "export.widths": HEAD_WIDTHS})
        overrides["evaluate.methods"] = HEAD_METHODS
    else:
        overrides.update({"export.widths": WIDTHS, "evaluate.methods": FFN_METHODS})
    if args.dense is not None or not first:
        overrides["model"] = str(args.dense or args.out / f"seed-{args.seeds[0]}" / "dense")
    return apply_overrides(load_recipe("demo"), {**overrides, **args.overrides}), None


def main() -> None:
    args = parse(parser())
    run_seeds(args.out, args.seeds, functools.partial(recipe_for, args), label="peers ")


if __name__ == "__main__":
    main()
