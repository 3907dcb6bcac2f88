"""The harness every bench/ driver shares, so a driver holds only what it measures.

* Arguments: :func:`make_parser` (the docstring as help), :func:`add_run_args` (``--out``, ``--seeds``,
  repeatable ``--set KEY=VALUE`` recipe overrides), :func:`add_sweep_args` (those plus repeatable
  ``--config`` and ``--runs`` for a sweep) and :func:`parse`, which holds torch to the 2 threads the
  benchmarks are measured with and turns ``--set`` / ``--config`` into override dicts.
* The seed loop, :func:`run_seeds`: one ``awncompress convert`` run per seed into OUT/seed-N, timed,
  the times in OUT/timings.json.
* The sweep loop, :func:`sweep`: one JSON line per config and seed, appended to a JSONL file.
* :func:`convert_run`: one convert run through the package (``run_convert``: checks, derived
  settings, dry pass, the stage chain, evaluation and report) into a kept or a temporary folder.
* :func:`reevaluate_copy`: more methods on a finished run, evaluated in a temporary copy of it, their
  report files written elsewhere (``bench/summarise.py`` pairs them with the run's).
* :func:`append_jsonl` (print and append one JSON line) and :func:`method_values` (a method's metric
  per width, from a report).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import torch
import transformers

from awncompress.checkpoint.layout import REPORT_FILES
from awncompress.config.recipe import Recipe
from awncompress.run.chain import ConvertResult
from awncompress.run.convert import run_convert
from awncompress.run.reevaluate import reevaluate

THREADS = 2  # the CPU benchmarks are measured on 2 threads


def make_parser(doc: Optional[str]) -> argparse.ArgumentParser:
    """A parser whose help is the driver's docstring, laid out as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_run_args(
    parser: argparse.ArgumentParser,
    seeds: Sequence[int],
    *,
    out_help: str = "the folder each seed's run goes to (OUT/seed-N)",
    dense: bool = False,
) -> argparse.ArgumentParser:
    """``--out``, ``--seeds`` (``--seed`` too), repeatable ``--set KEY=VALUE``; with ``dense``,
    ``--dense PATH``: a trained dense model every run starts from (the teacher)."""
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument(
        "--seeds", "--seed", dest="seeds", type=int, nargs="+", default=list(seeds), metavar="N", help="seeds, in turn"
    )
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="recipe override, repeatable"
    )
    if dense:
        parser.add_argument("--dense", type=Path, help="a trained dense model every run starts from (the teacher)")
    return parser


def add_sweep_args(
    parser: argparse.ArgumentParser, seeds: Sequence[int] = (0,), *, dense: bool = False
) -> argparse.ArgumentParser:
    """:func:`add_run_args` for a sweep (``--out`` is a JSONL file) plus repeatable ``--config`` (one
    config's overrides, on top of every ``--set``) and ``--runs DIR`` (keep each run's output folder)."""
    add_run_args(parser, seeds, out_help="the JSONL file each config's line is appended to", dense=dense)
    parser.add_argument(
        "--config",
        dest="configs",
        action="append",
        default=[],
        help="one config's recipe overrides KEY=VALUE, separated by ';' or ',' (a ',' followed by no KEY= "
        "belongs to a list value): train.lr=1e-4,train.kd_weight=1 or train.sample_from=0.125,0.5;train.steps=40; "
        "repeat for more configs (none: one config, the recipe as it is)",
    )
    parser.add_argument(
        "--runs", type=Path, help="keep each run's convert output in RUNS/config-<i>-seed-<s> (default: removed)"
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse, hold torch to :data:`THREADS` threads, and give ``args.overrides`` (the ``--set`` pairs)
    and ``args.configs`` (one override dict per ``--config``; ``[{}]`` without any) where those exist."""
    args = parser.parse_args(argv)
    if hasattr(args, "sets"):
        try:
            args.overrides = parse_sets(args.sets)
            if hasattr(args, "configs"):
                args.configs = [parse_config(spec) for spec in args.configs] or [{}]
        except ValueError as exc:
            parser.error(str(exc))
    torch.set_num_threads(THREADS)
    return args


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` as a dict; a later key wins."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{pair!r} is not KEY=VALUE")
        out[key.strip()] = value
    return out


def parse_config(spec: str) -> dict[str, str]:
    """One ``--config``: KEY=VALUE pairs separated by ';', or by ',' where no ';' is given; a ','
    piece without '=' continues the previous value (``train.sample_from=0.125,0.5`` is one pair)."""
    if ";" in spec:
        return parse_sets([p for p in spec.split(";") if p.strip()])
    pairs: list[str] = []
    for piece in spec.split(","):
        if "=" in piece or not pairs:
            pairs.append(piece)
        else:
            pairs[-1] += "," + piece
    return parse_sets([p for p in pairs if p.strip()])


def append_jsonl(path: Path, record: dict) -> None:
    """Print ``record`` as one JSON line and append it to ``path``."""
    line = json.dumps(record)
    print(line, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(line + "\n")


def sweep(out: Path, configs: Sequence[dict], seeds: Sequence[int], run_one: Callable[[dict, int, str], dict]) -> None:
    """For each config (outer) and seed, ``run_one(overrides, seed, name)``: one JSON line each in
    ``out``, written as soon as it is measured, so a sweep stopped half way keeps what it finished.
    ``name`` ("config-<i>-seed-<s>") names the run's folder under ``--runs``."""
    for i, overrides in enumerate(configs):
        for seed in seeds:
            append_jsonl(out, run_one(dict(overrides), seed, f"config-{i}-seed-{seed}"))


@contextmanager
def convert_run(recipe: Recipe, runs: Optional[Path] = None, name: str = "run") -> Iterator[ConvertResult]:
    """Run ``recipe`` as ``awncompress convert`` does (quietly) into ``runs/name``, kept, or into a
    temporary folder that is removed when the block ends; yields the run's result, its report
    (``result.report``, what report.json holds), profile and stage costs."""
    transformers.utils.logging.disable_progress_bar()  # a bar per export shard: noise in a sweep's log
    if runs is not None:
        yield run_convert(recipe, runs / name, overwrite=True, quiet=True)
        return
    with tempfile.TemporaryDirectory(prefix="awn-bench-") as tmp:
        yield run_convert(recipe, Path(tmp) / name, quiet=True)


def method_values(report: dict, method: str = "awn", digits: Optional[int] = None) -> dict[str, float]:
    """{width as "0.125": metric value} of one method's rows in a report (``digits``: rounded)."""
    return {
        f"{row['width_fraction']:g}": row["value"] if digits is None else round(row["value"], digits)
        for row in report["rows"]
        if row["method"] == method
    }


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


def reevaluate_copy(
    run: Path, out: Path, methods: Sequence[str], prepare: Optional[Callable[[Path], object]] = None, **named
) -> None:
    """Evaluate ``methods`` on a temporary copy of the finished run ``run`` (``prepare(copy)`` first, e.g.
    writing exports the run lacks) through ``awncompress evaluate``'s code path, and write the report
    files to ``out``; ``named``: what a user would name on that command line (model, train_data)."""
    with tempfile.TemporaryDirectory(prefix="awn-bench-") as tmp:
        copy_run = Path(tmp) / "run"
        shutil.copytree(run, copy_run)
        if prepare is not None:
            prepare(copy_run)
        reevaluate(copy_run, methods=list(methods), **named)
        out.mkdir(parents=True, exist_ok=True)
        for name in REPORT_FILES:
            if (copy_run / name).is_file():
                shutil.copy2(copy_run / name, out / name)
