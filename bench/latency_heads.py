"""CPU latency of a heads run's exports against their FLOP ratios, timed on an otherwise idle machine.

    python bench/latency_heads.py bench/results/heads/seed-0 [--repeats 100]

Loads the dense reference (nested/ at full width, else dense/, else --dense), every width-<w>/ and
every flops-<t>/ export of one convert output that is on disk, and times them
round-robin (batch 8 × 64 tokens, the report's setting; see awncompress.evaluate.latency), then prints each
one's FLOP ratio (from the report) beside its latency ratio, and writes OUT/latency_idle.json. The
report's own latency column can be taken while other jobs share the cores; this one is meant to be
run alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from harness import make_parser, parse

from awncompress import load_pretrained
from awncompress.checkpoint.provenance import PROVENANCE_FILE
from awncompress.evaluate.latency import LatencyConfig, time_round_robin
from awncompress.run.bundle import load_model


def reference(out: Path, dense: Path | None) -> Path:
    """The full-width model to divide by: nested/ (loads at full width), the run's dense/, or ``dense``."""
    for folder in (out / "nested", out / "dense", dense):
        if folder is not None and folder.is_dir():
            return folder
    raise SystemExit(f"{out} has neither nested/ nor dense/: name the dense model with --dense")


def load_reference(folder: Path, task: str) -> torch.nn.Module:
    """An export through its own loader; the run's dense/ (a vanilla transformers folder) through transformers."""
    if (folder / PROVENANCE_FILE).is_file():
        return load_pretrained(folder)
    return load_model(str(folder), task)[0]


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument(
        "--dense",
        type=Path,
        help="the dense model, where OUT has neither nested/ nor dense/ (a later seed started from seed 0's)",
    )
    args = parse(parser)
    report = json.loads((args.out / "report.json").read_text())
    ratios = {
        Path(r["export"]).name: r["flops_ratio"]
        for r in report["rows"]
        if r.get("export") and (args.out / Path(r["export"]).name).is_dir()
    }
    models = {"dense": load_reference(reference(args.out, args.dense), report["task"])}
    for name in sorted(ratios):
        models[name] = load_pretrained(args.out / name)
    timings = time_round_robin(models, LatencyConfig(repeats=args.repeats))
    base = timings["dense"]["median_ms"]
    rows = [
        {
            "export": k,
            "flops_ratio": ratios.get(k, 1.0),
            "latency_ms": t["median_ms"],
            "latency_ratio": round(t["median_ms"] / base, 4),
        }
        for k, t in timings.items()
    ]
    for r in rows:
        print(
            f"{r['export']:>14}  FLOPs x{r['flops_ratio']:.3f}  latency x{r['latency_ratio']:.3f}  "
            f"({r['latency_ms']:.2f} ms)"
        )
    (args.out / "latency_idle.json").write_text(
        json.dumps({"config": vars(LatencyConfig(repeats=args.repeats)), "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
