"""Tuning sweep for benchmark 1: AWN fine-tune configs on MiniLM-L6 / Rotten Tomatoes.

    python bench/tune_minilm.py --dense out/demo/dense --out bench/results/tune_minilm.jsonl \
        [--seeds 0 1] [--set KEY=VALUE ...] --config train.lr=1e-4 --config train.kd_weight=1.0 ...

Every config starts from one dense fine-tuned model (the demo recipe's dense stage, saved as
DENSE/), so every config has the same teacher and split. Each config × seed is one `awncompress
convert` run of the demo recipe with the config's overrides, through the package (``run_convert``:
the derived settings, the dry pass, the stage chain), evaluating awn only, at the demo's export
widths and at full width, without latency; its output goes to a temporary folder (``--runs DIR``
keeps it). One JSON line per config and seed in OUT: overrides, seed, train_s, steps, accuracy
(per width), active_widths, rates.

Changed when the script moved onto the package's stage chain (issue 26); it used to repeat the
stages in memory:
* the run is exactly what ``convert`` runs: its derived settings, its teacher (the cached logit
  table over the examples the fine-tune draws, at the recipe's evaluation batch size) and
  ``train.checkpoint_every: 0``; the widths are scored on the exports reloaded from disk;
* ``train_s`` is the AWN fine-tune's seconds plus the teacher's logit table, as the run's costs
  record them (the old figure timed the same two, around the script's own teacher);
* ``--seeds`` (``--seed`` still works) takes several seeds, ``--set`` applies to every config, and a
  ``--config`` separated by commas keeps a list value whole (``train.sample_from=0.125,0.5``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from harness import add_sweep_args, convert_run, make_parser, method_values, parse, sweep

from awncompress.config import apply_overrides, load_recipe

WIDTHS = (0.125, 0.25, 0.375, 0.5, 0.75)  # the demo's export widths


def tune_overrides(dense: str, seed: int) -> dict:
    """What every config runs with: the dense model, awn alone at the export widths and at full width."""
    return {
        "model": dense,
        "seed": seed,
        "export.widths": ",".join(f"{w:g}" for w in (*WIDTHS, 1.0)),
        "evaluate.methods": "awn",
        "evaluate.latency_repeats": 0,
        "train.checkpoint_every": 0,
    }


def run(
    dense: str, overrides: dict, seed: int, sets: Optional[dict] = None, runs: Optional[Path] = None, name: str = "run"
) -> dict:
    """One config: a convert run of the demo recipe with ``sets`` and ``overrides``; its JSON line."""
    recipe = apply_overrides(load_recipe("demo"), {**tune_overrides(dense, seed), **(sets or {}), **overrides})
    with convert_run(recipe, runs, name) as result:
        accuracy = method_values(result.report)
        costs = result.costs
        return {
            "overrides": overrides,
            "seed": seed,
            "train_s": round(costs["awn_seconds"] + (costs["teacher_logits_seconds"] or 0.0), 1),
            "steps": result.awn.steps,
            "accuracy": {"1.0": accuracy.pop("1"), **accuracy} if "1" in accuracy else accuracy,
            "active_widths": result.profile["active_widths"],
            "rates": result.profile["normalised_rates"],
        }


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--dense", type=Path, required=True, help="the trained dense model every config starts from")
    args = parse(add_sweep_args(parser, [0]))

    def run_one(overrides: dict, seed: int, name: str) -> dict:
        return run(str(args.dense), overrides, seed, args.overrides, args.runs, name)

    sweep(args.out, args.configs, args.seeds, run_one)


if __name__ == "__main__":
    main()
