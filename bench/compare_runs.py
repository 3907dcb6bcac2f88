"""Paired gaps between two sets of runs of one method (say, two settings over the same seeds).

    python bench/compare_runs.py --a out/s0-new out/s1-new --b out/s0-old out/s1-old [--method awn]
    python bench/compare_runs.py --a cut/s0 cut/s1 --method awn-flap --b out/s0 out/s1 --method-b awn

The i-th run of --a is paired with the i-th of --b: they must have scored the same evaluation
examples (the same seed's sample). Per width: the mean paired gap a − b and ± 2 SE, pooled over the
pairs as ``summarise.py`` pools seeds; * marks a gap beyond 2 SE. A classifier's gap is in points of
accuracy, a causal LM's in percent of perplexity (100 × the per-window NLL gap; negative: a is lower).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from summarise import _paired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", type=Path, nargs="+", required=True, help="run folders (each with report.json)")
    parser.add_argument("--b", type=Path, nargs="+", required=True, help="as many run folders, in the same order")
    parser.add_argument("--method", default="awn", help="the method of --a's rows (and of --b's, without --method-b)")
    parser.add_argument("--method-b", help="the method of --b's rows, where it differs (two cuts of the same runs)")
    args = parser.parse_args()
    if len(args.a) != len(args.b):
        parser.error(f"--a names {len(args.a)} runs and --b {len(args.b)}; pair them one to one")
    missing = [str(f) for f in (*args.a, *args.b) if not (f / "report.json").is_file()]
    if missing:
        parser.error(f"no report.json in {', '.join(missing)}")
    pairs: dict[int, dict] = {}
    for i, (a, b) in enumerate(zip(args.a, args.b)):
        report_a, report_b = (json.loads((f / "report.json").read_text()) for f in (a, b))
        name = "per_example_nll" if report_a.get("per_example_nll") else "per_example_correct"
        bits_a, bits_b = report_a.get(name) or {}, report_b.get(name) or {}
        if not bits_b:
            parser.error(f"{b} has no {name} to pair with {a}'s")
        if bits_a.get("dense") != bits_b.get("dense"):
            parser.error(f"{a} and {b} scored different evaluation examples (their dense rows differ)")
        pairs[i] = {name: {**{f"a:{k}": v for k, v in bits_a.items()}, **{f"b:{k}": v for k, v in bits_b.items()}}}
    first = next(iter(pairs[0].values()))
    widths = sorted({k.split("@")[1] for k in first if k.startswith(f"a:{args.method}@")}, key=float)
    for w in widths:
        gap = _paired(pairs, f"a:{args.method}@{w}", f"b:{args.method_b or args.method}@{w}")
        if gap is not None:
            mean, se = gap
            print(f"{float(w):.3g}: {mean:+.2f} ± {2 * se:.2f}{'*' if abs(mean) > 2 * se else ''}")


if __name__ == "__main__":
    main()
