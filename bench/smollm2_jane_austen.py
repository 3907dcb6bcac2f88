"""Benchmark 2: SmolLM2-135M on Jane Austen, one AWN fine-tune against per-width fine-tunes (issue 13).

    python bench/smollm2_jane_austen.py --out bench/results/smollm2 [--seeds 0 1] [--set train.steps=60 ...]

The `smollm2` recipe with five export widths (25, 37.5, 50, 62.5 and 75 % of d_ff). Seed 0 runs
every method (awn, the static baselines, wina-dynamic and wina+finetune: the same steps, loss
and teacher at each width alone); seed 1 repeats awn and wina+finetune. The windows (64 tokens,
BOS first) and the Persuasion evaluation split are fixed by the recipe. Summarise with
``python bench/summarise.py OUT``.
"""

from __future__ import annotations

from harness import add_run_args, make_parser, parse, run_seeds

from awncompress.config import apply_overrides, load_recipe

WIDTHS = "0.25,0.375,0.5,0.625,0.75"
ALL_METHODS = "awn,wina,activation,magnitude,random,wina-dynamic,finetune"


def main() -> None:
    args = parse(add_run_args(make_parser(__doc__), [0, 1]))

    def recipe_for(seed: int, first: bool):
        return apply_overrides(
            load_recipe("smollm2"),
            {
                "seed": seed,
                "export.widths": WIDTHS,
                "evaluate.methods": ALL_METHODS if first else "awn,finetune",
                **args.overrides,
            },
        ), None

    run_seeds(args.out, args.seeds, recipe_for)


if __name__ == "__main__":
    main()
