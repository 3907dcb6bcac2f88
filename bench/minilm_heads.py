"""Benchmark 5 (issue 14): MiniLM-L6 on Rotten Tomatoes with attention heads cut as well as FFN neurons.

    python bench/minilm_heads.py --out bench/results/heads [--seeds 0 1 2]
    python bench/minilm_heads.py --out bench/results/heads --seeds 2 --dense bench/results/heads/seed-0/dense

Benchmark 1's recipe and split (the demo recipe) with ``awn.heads: true``: one AWN fine-tune learns a
profile over each layer's FFN neurons and one over its heads; ``flops-<t>/`` exports at the FLOP
targets below FFN-only's floor (MiniLM at 12.5 % FFN width still costs 0.425 of its FLOPs) carry the
(FFN width, heads) pair the profiles pick. Rows: awn-heads; wina-heads, the static WINA
neuron+head cut at the same pair; wina-heads+finetune, that cut fine-tuned at that pair alone with
the same steps and KD loss; and the FFN-only awn and wina rows at FFN widths, from the same run.
Seed 0 trains the dense model; later seeds start from it (the same teacher), or every seed starts
from ``--dense``. Summarise with
``python bench/summarise.py OUT``.
"""

from __future__ import annotations

from harness import add_run_args, make_parser, parse, run_seeds

from awncompress.config import apply_overrides, load_recipe

TARGETS = "0.25,0.3,0.4"
WIDTHS = "0.125,0.25,0.5"


def main() -> None:
    args = parse(add_run_args(make_parser(__doc__), [0, 1, 2], dense=True))
    base = load_recipe("demo")

    def recipe_for(seed: int, first: bool):
        overrides = {
            "seed": seed,
            "awn.heads": "true",
            "export.flops": TARGETS,
            "export.widths": WIDTHS,
            "evaluate.methods": "awn,wina,finetune-heads",
            **args.overrides,
        }
        if args.dense is not None or not first:
            overrides["model"] = str(args.dense or args.out / f"seed-{args.seeds[0]}" / "dense")
        return apply_overrides(base, overrides), None

    run_seeds(args.out, args.seeds, recipe_for, label="heads ")


if __name__ == "__main__":
    main()
