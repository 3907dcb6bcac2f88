"""Benchmark 1 (and 3): MiniLM-L6 on Rotten Tomatoes, awn vs every baseline, 3 seeds.

    python bench/minilm_rotten_tomatoes.py --out bench/results/minilm [--seeds 0 1 2] [--set train.lr=1e-4 ...]

Seed 0 runs the whole `awncompress convert` pipeline on the demo recipe (fixed seeded split,
4,000 train / 2,000 test, max length 64): the dense stage, awn, awn-per-layer at equal FLOPs,
the static baselines, wina-dynamic and wina+finetune (same steps and KD loss, per width).
Seeds 1 and 2 start from seed 0's trained dense model (the same teacher, so the static baselines
are identical) and repeat awn and wina+finetune. Each seed writes its own report under OUT/seed-N;
bench/summarise.py turns them into BENCHMARKS.md tables.
"""

from __future__ import annotations

from harness import add_run_args, make_parser, parse, run_seeds

from awncompress.config import apply_overrides, load_recipe

ALL_METHODS = "awn,wina,activation,magnitude,random,wina-dynamic,finetune"
WIDTHS = "0.125,0.25,0.375,0.5,0.75"


def main() -> None:
    parser = add_run_args(make_parser(__doc__), [0, 1, 2])
    parser.add_argument("--latency-repeats", type=int, default=50)
    args = parse(parser)
    base = load_recipe("demo")

    def recipe_for(seed: int, first: bool):
        overrides = {
            "seed": seed,
            "export.widths": WIDTHS,
            "evaluate.latency_repeats": args.latency_repeats,
            **args.overrides,
        }
        if first:
            overrides.update({"evaluate.methods": ALL_METHODS, "export.per_layer": "true"})
        else:
            overrides.update(
                {"model": str(args.out / f"seed-{args.seeds[0]}" / "dense"), "evaluate.methods": "awn,finetune"}
            )
        return apply_overrides(base, overrides), None

    run_seeds(args.out, args.seeds, recipe_for)


if __name__ == "__main__":
    main()
