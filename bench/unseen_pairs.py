"""Benchmark 4: defaults on model/data pairs they were not tuned on (issue 12).

    python bench/unseen_pairs.py --pair mpnet-rt --budget 90 --out bench/results/unseen
    python bench/unseen_pairs.py --pair minilm-20ng --budget 60 --out bench/results/unseen [--seeds 0 1]

No recipe: the run gets awncompress's defaults for any model, and only the data, the widths, a
--budget and the evaluated methods (to add the per-width fine-tune baseline) are given:

* ``mpnet-rt``: all-mpnet-base-v2 (MPNet, 12 layers, FFN 3072; a second encoder) on Rotten Tomatoes;
* ``minilm-20ng``: MiniLM-L6 on 20 Newsgroups (20 topics; a second data set).

Seed 0 runs the whole pipeline (dense stage, awn, every static baseline, wina-dynamic and
wina+finetune). Seed 1 repeats awn and wina+finetune from seed 0's trained dense model (the same
teacher), at the step count and on the evaluation examples seed 0's budget gave. Each seed writes OUT/<pair>/seed-N;
summarise with ``python bench/summarise.py OUT/<pair>``. ``--set KEY=VALUE`` (repeatable) overrides
every seed's recipe (seed 1 still takes seed 0's steps and evaluation examples).
"""

from __future__ import annotations

from harness import add_run_args, make_parser, parse, run_seeds

from awncompress.config import apply_overrides, default_recipe, load_recipe

PAIRS = {
    "mpnet-rt": ("builtin:mpnet", "builtin:rotten-tomatoes"),
    "minilm-20ng": ("builtin:minilm", "builtin:20newsgroups"),
}
WIDTHS = "0.125,0.25,0.375,0.5,0.75"
ALL_METHODS = "awn,wina,activation,magnitude,random,wina-dynamic,finetune"


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--pair", choices=sorted(PAIRS), required=True)
    parser.add_argument("--budget", type=float, required=True, help="minutes for seed 0's whole run")
    args = parse(add_run_args(parser, [0, 1], out_help="the folder each pair's seeds go to (OUT/<pair>/seed-N)"))
    model, data = PAIRS[args.pair]
    root = args.out / args.pair

    def recipe_for(seed: int, first: bool):
        overrides = {"data.train": data, "export.widths": WIDTHS, "seed": seed, **args.overrides}
        if first:
            return apply_overrides(default_recipe(model), {**overrides, "evaluate.methods": ALL_METHODS}), args.budget
        ran = load_recipe(root / f"seed-{args.seeds[0]}" / "recipe.yaml")
        return apply_overrides(
            default_recipe(str(root / f"seed-{args.seeds[0]}" / "dense")),
            {
                **overrides,
                "evaluate.methods": "awn,finetune",
                "train.steps": ran.train.steps,
                "data.max_eval_examples": ran.data.max_eval_examples,
            },
        ), None

    run_seeds(root, args.seeds, recipe_for, label=f"{args.pair} ", budget_min=args.budget)


if __name__ == "__main__":
    main()
