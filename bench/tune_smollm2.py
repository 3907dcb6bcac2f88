"""Tuning runs for the SmolLM2 benchmark: one AWN fine-tune (and, if asked, per-width fine-tunes
with the same settings), perplexity at every width, one JSON line per config.

    python bench/tune_smollm2.py --out bench/results/tune_smollm2.jsonl [--seeds 0] [--set KEY=VALUE ...] \
        --config "train.kd_hidden_weight=1.0" --config "train.steps=60;train.lr=1e-4" [--finetune 0.25,0.5 [--no-awn]]

Each config × seed runs the `smollm2` recipe (SmolLM2-135M on Jane Austen, the benchmark's windows)
with the config's overrides through the package: the AWN run is one `awncompress convert` run
(``run_convert``: derived settings, dry pass, the stage chain) that evaluates awn alone at WIDTHS,
without latency, into a temporary folder (``--runs DIR`` keeps it); the per-width fine-tunes of
``--finetune`` are the package's ``finetune`` method (the ``<scorer>+finetune`` rows of a report),
run by its evaluation matrix at each of those widths from the dense model, with the AWN run's
settings (its recorded recipe) and the convert run's teacher. JSON line fields: overrides, seed,
dense, awn_s, active_widths, awn@<w>, ft_s@<w>, ft@<w> (perplexities rounded to 2 places).

Changed when the script moved onto the package (issue 26); it used to repeat the stages in memory:
* the runs are exactly what ``convert`` runs (derived settings, teacher, ``train.checkpoint_every:
  0``); awn's widths are scored on the exports reloaded from disk;
* ``ft_s@<w>`` now includes ordering the dense model's neurons by ``awn.scorer`` (a few seconds);
* ``seed`` is recorded; ``--seeds`` sweeps seeds, ``--set`` applies to every config, and a
  ``--config`` without ';' may separate its keys by ',' (a list value stays whole).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from harness import add_sweep_args, convert_run, make_parser, method_values, parse, sweep

from awncompress.config import Recipe, apply_overrides, load_recipe
from awncompress.config.settings import read_settings
from awncompress.data.tokenized import load_task_data
from awncompress.evaluate.matrix import evaluate_methods
from awncompress.evaluate.methods import TrainingKit
from awncompress.run.bundle import calibration_batches, load_model, run_teacher
from awncompress.run.derive import derive_defaults, fit_max_length

WIDTHS = (0.25, 0.375, 0.5, 0.625, 0.75)


def tune_overrides(seed: int) -> dict:
    """What every config runs with: awn alone at WIDTHS, no latency, no fine-tune checkpoints."""
    return {
        "seed": seed,
        "export.widths": ",".join(f"{w:g}" for w in WIDTHS),
        "evaluate.methods": "awn",
        "evaluate.latency_repeats": 0,
        "train.checkpoint_every": 0,
    }


def per_width_finetunes(recipe: Recipe, widths: Sequence[float]) -> dict:
    """The package's ``finetune`` method at each width, from the dense model ``recipe`` names, with its
    settings derived as a convert run derives them; the dense perplexity and ft_s@<w> / ft@<w>."""
    model, tokenizer, head_trained = load_model(recipe.model, recipe.task)
    recipe = fit_max_length(recipe, model)
    data = load_task_data(read_settings(recipe).data, tokenizer)
    settings = read_settings(derive_defaults(recipe, model, data, head_trained))
    recipe = settings.recipe
    original = model.eval().requires_grad_(False)
    kit = TrainingKit(
        data.train,
        data.collate,
        data.num_train_examples,
        settings.per_width,
        run_teacher(original, settings, data, quiet=True),
    )
    calibration = calibration_batches(data, settings.calibration_batches, settings.train.batch_size)
    record: dict = {}
    for w in widths:  # one evaluation per width, so each width's seconds are its own
        report = evaluate_methods(
            original,
            {},
            data.eval,
            data.collate,
            task=recipe.task,
            metric=recipe.resolved_metric,
            methods=["finetune"],
            widths=[w],
            calibration=calibration,
            latency=None,
            batch_size=recipe.evaluate.batch_size,
            seed=recipe.seed,
            scorer=recipe.awn.scorer,
            multiple=recipe.export.multiple,
            training=kit,
            quiet=True,
        )
        record.setdefault("dense", round(report["dense"]["value"], 2))
        label = f"{recipe.awn.scorer}+finetune"
        record[f"ft_s@{w:g}"] = round(report["costs"][label]["prepare_s"], 1)
        record[f"ft@{w:g}"] = method_values(report, label, digits=2)[f"{w:g}"]
    return record


def run(
    overrides: dict,
    finetune_widths: Sequence[float],
    awn: bool = True,
    seed: int = 0,
    sets: Optional[dict] = None,
    runs: Optional[Path] = None,
    name: str = "run",
) -> dict:
    """One config: the AWN run (unless not ``awn``) and the per-width fine-tunes; its JSON line."""
    recipe = apply_overrides(load_recipe("smollm2"), {**tune_overrides(seed), **(sets or {}), **overrides})
    record: dict = {"overrides": overrides, "seed": seed}
    if awn:
        with convert_run(recipe, runs, name) as result:
            record["dense"] = round(result.report["dense"]["value"], 2)
            record["awn_s"] = round(result.costs["awn_seconds"], 1)
            record["active_widths"] = result.profile["active_widths"]
            record.update({f"awn@{w}": v for w, v in method_values(result.report, digits=2).items()})
            recipe = load_recipe(str(result.out / "recipe.yaml"))  # what the run ran, derived values included
    if finetune_widths:
        ft = per_width_finetunes(recipe, finetune_widths)
        dense = ft.pop("dense")
        record.setdefault("dense", dense)  # the AWN run's, when there was one: the same model and windows
        record.update(ft)
    return record


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--no-awn", action="store_true", help="run only the --finetune widths")
    parser.add_argument(
        "--finetune", default="", help="widths to fine-tune alone with the same settings, e.g. 0.25,0.5"
    )
    args = parse(add_sweep_args(parser, [0]))
    widths = [float(w) for w in args.finetune.split(",") if w]
    if args.no_awn and not widths:
        parser.error("--no-awn runs only the --finetune widths: name some")

    def run_one(overrides: dict, seed: int, name: str) -> dict:
        return run(overrides, widths, not args.no_awn, seed, args.overrides, args.runs, name)

    sweep(args.out, args.configs, args.seeds, run_one)


if __name__ == "__main__":
    main()
