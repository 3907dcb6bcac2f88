"""CPU latency of a heads run's exports against their FLOP ratios, timed on an otherwise idle machine.

    python bench/latency_heads.py bench/results/heads/seed-0 [--repeats 100]

Loads nested/ at full width (the dense model's shape), every width-<w>/ and every flops-<t>/ export of one convert output and times them
round-robin (batch 8 × 64 tokens, the report's setting; see awncompress.latency), then prints each
one's FLOP ratio (from the report) beside its latency ratio, and writes OUT/latency_idle.json. The
report's own latency column can be taken while other jobs share the cores; this one is meant to be
run alone.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from awncompress import load_pretrained
from awncompress.latency import LatencyConfig, time_round_robin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(2)
    report = json.loads((args.out / "report.json").read_text())
    ratios = {Path(r["export"]).name: r["flops_ratio"] for r in report["rows"] if r.get("export")}
    models = {"dense": load_pretrained(args.out / "nested")}  # full width: the dense model's shape
    for name in sorted(ratios):
        models[name] = load_pretrained(args.out / name)
    timings = time_round_robin(models, LatencyConfig(repeats=args.repeats))
    base = timings["dense"]["median_ms"]
    rows = [{"export": k, "flops_ratio": ratios.get(k, 1.0), "latency_ms": t["median_ms"],
             "latency_ratio": round(t["median_ms"] / base, 4)} for k, t in timings.items()]
    for r in rows:
        print(f"{r['export']:>14}  FLOPs x{r['flops_ratio']:.3f}  latency x{r['latency_ratio']:.3f}  ({r['latency_ms']:.2f} ms)")
    (args.out / "latency_idle.json").write_text(json.dumps({"config": vars(LatencyConfig(repeats=args.repeats)), "rows": rows},
                                                           indent=2) + "\n")


if __name__ == "__main__":
    main()
