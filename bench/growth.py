"""Issue 31: growth past the pretrained width against capped per-layer and uniform widths, at equal FFN FLOPs.

    python bench/growth.py --recipe demo --out bench/results/growth-minilm --seeds 0 1 2
    python bench/growth.py --recipe smollm2 --out bench/results/growth-smollm2 --seeds 0 1
    python bench/growth.py --recipe demo --out OUT --init random     # new neurons drawn at random
    python bench/summarise.py OUT

Per seed, the recipe runs twice with ``--per-layer`` at FFN widths 25, 50 and 75 %, awn rows only: as it
is (each layer capped at its pretrained width) and with ``--grow`` (a layer whose learned quantile
passes its width grows, up to 2 ×; new neurons by TINY's bottleneck, or ``--init random``). Each run
gives uniform ``awn`` rows and learned per-layer ``awn-per-layer`` rows at the same FFN FLOPs. The
grown run's rows are renamed ``awn+grow`` and ``awn-per-layer+grow`` and joined to the capped run's in
OUT/seed-N/report.json, so ``summarise.py`` pairs every method with every other on the same examples.
Both runs of a seed train the same dense model (the teacher): the joined report checks it.
"""

from __future__ import annotations

import argparse
import json
import time

from harness import add_run_args, make_parser, parse, run_convert

from awncompress.config import apply_overrides, load_recipe

WIDTHS = "0.25,0.5,0.75"  # 75 %: where a layer's learned share can pass its pretrained width
ARMS = {"capped": {}, "grown": {"awn.grow": "true"}}
SUFFIX = "+grow"


def parser() -> argparse.ArgumentParser:
    out = add_run_args(make_parser(__doc__), [0, 1, 2])
    out.add_argument("--recipe", default="demo", help="a recipe name or file (demo: MiniLM on Rotten Tomatoes)")
    out.add_argument("--init", choices=["tiny", "random"], default="tiny", help="the new neurons' input weights")
    return out


def joined(capped: dict, grown: dict) -> dict:
    """``capped``'s report with ``grown``'s rows (and per-example results, costs) renamed ``<method>+grow``."""
    if capped["dense"]["value"] != grown["dense"]["value"] or capped["num_eval_examples"] != grown["num_eval_examples"]:
        raise SystemExit("the capped and grown runs did not evaluate the same dense model on the same examples")
    out = dict(capped)
    out["rows"] = capped["rows"] + [{**r, "method": r["method"] + SUFFIX} for r in grown["rows"]]
    for name in ("per_example_correct", "per_example_nll"):  # 1/0 per example, or NLL per window
        per_example = {**(capped.get(name) or {})}
        for key, values in (grown.get(name) or {}).items():
            method, at, width = key.partition("@")
            if at:  # "dense" is the capped run's too
                per_example[f"{method}{SUFFIX}@{width}"] = values
        out[name] = per_example or None
    out["growth"] = {"grown_widths": (grown.get("profile") or {}).get("grown_widths"), "profile": grown.get("profile")}
    return out


def main() -> None:
    args = parse(parser())
    timings: dict[str, float] = {}
    for seed in args.seeds:
        reports = {}
        for arm, overrides in ARMS.items():
            folder = args.out / arm / f"seed-{seed}"
            if not (folder / "report.json").is_file():
                sets = {"seed": seed, "export.widths": WIDTHS, "export.per_layer": "true"}
                sets.update({"evaluate.methods": "awn,awn-per-layer", "awn.grow_init": args.init})
                recipe = apply_overrides(load_recipe(args.recipe), {**sets, **overrides, **args.overrides})
                began = time.perf_counter()
                run_convert(recipe, folder, overwrite=True)
                timings[f"{arm}-{seed}"] = round(time.perf_counter() - began, 1)
                print(f"growth {arm} seed {seed}: {timings[f'{arm}-{seed}']} s", flush=True)
            reports[arm] = json.loads((folder / "report.json").read_text())
        target = args.out / f"seed-{seed}"
        target.mkdir(parents=True, exist_ok=True)
        (target / "report.json").write_text(json.dumps(joined(reports["capped"], reports["grown"]), indent=1))
    record = args.out / "timings.json"
    earlier = json.loads(record.read_text()) if record.is_file() else {}
    record.write_text(json.dumps({**earlier, **timings}, indent=2))


if __name__ == "__main__":
    main()
