"""The seed loop every benchmark driver shares: run each seed's recipe into OUT/seed-N, time it,
and record the wall times in OUT/timings.json."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from awncompress.config.recipe import Recipe
from awncompress.run.convert import run_convert


def run_seeds(
    out: Path,
    seeds: list[int],
    recipe_for: Callable[[int, bool], tuple[Recipe, Optional[float]]],
    label: str = "",
    **extra: object,
) -> dict[int, float]:
    """Run ``recipe_for(seed, first)`` (a recipe and a --budget or None) for each seed; return the wall
    seconds per seed, also written with ``extra`` to ``out/timings.json``.

    A seed whose ``seed-N/report.json`` exists is kept, not rerun (delete the folder to rerun it), so a
    later seed can be added to a finished one: its timing stays in ``timings.json``.
    """
    record = out / "timings.json"
    earlier = json.loads(record.read_text())["wall_s_per_seed"] if record.is_file() else {}
    timings: dict[int, float] = {int(k): v for k, v in earlier.items()}
    for seed in seeds:
        if (out / f"seed-{seed}" / "report.json").is_file():
            print(f"{label}seed {seed}: kept ({out / f'seed-{seed}'} is finished)", flush=True)
            continue
        recipe, budget = recipe_for(seed, seed == seeds[0])
        began = time.perf_counter()
        run_convert(recipe, out / f"seed-{seed}", overwrite=True, budget=budget)
        timings[seed] = round(time.perf_counter() - began, 1)
        print(f"{label}seed {seed}: {timings[seed]} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"wall_s_per_seed": timings, "total_s": sum(timings.values()), **extra}, indent=2))
    return timings


def seed_args(doc: str, seeds: list[int], dense: bool = False) -> tuple[argparse.Namespace, dict[str, str]]:
    """The arguments every driver takes (--out, --seeds, repeatable --set KEY=VALUE; with ``dense``,
    --dense PATH: every seed starts from that trained dense model) and the --set pairs; torch is held
    to the 2 threads the benchmarks are measured with."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="recipe override KEY=VALUE")
    if dense:
        parser.add_argument("--dense", type=Path, help="a trained dense model every seed starts from (the teacher)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    return args, dict(kv.split("=", 1) for kv in args.sets)
