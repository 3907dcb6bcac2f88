"""The seed loop every benchmark driver shares: run each seed's recipe into OUT/seed-N, time it,
and record the wall times in OUT/timings.json."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional

from awncompress.pipeline import run_convert
from awncompress.recipes import Recipe


def run_seeds(out: Path, seeds: list[int], recipe_for: Callable[[int, bool], tuple[Recipe, Optional[float]]],
              label: str = "", **extra: object) -> dict[int, float]:
    """Run ``recipe_for(seed, first)`` (a recipe and a --budget or None) for each seed; return the wall
    seconds per seed, also written with ``extra`` to ``out/timings.json``."""
    timings: dict[int, float] = {}
    for seed in seeds:
        recipe, budget = recipe_for(seed, seed == seeds[0])
        began = time.perf_counter()
        run_convert(recipe, out / f"seed-{seed}", overwrite=True, budget=budget)
        timings[seed] = round(time.perf_counter() - began, 1)
        print(f"{label}seed {seed}: {timings[seed]} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timings.json").write_text(json.dumps({"wall_s_per_seed": timings, "total_s": sum(timings.values()), **extra}, indent=2))
    return timings
