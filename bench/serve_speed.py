"""Benchmark (issue 27): speed where the exports are served, against the FLOP and weight-byte ratios.

    python bench/serve_speed.py RUN/nested --format onnx --out bench/results/serve-speed/minilm-onnx
    python bench/serve_speed.py RUN/nested --format gguf --quant f16 --learned --multiple 256 \
        --out bench/results/serve-speed/smollm2-gguf-f16

RUN/nested is a finished convert run's nested checkpoint (``awncompress convert demo`` for MiniLM,
``awncompress convert smollm2`` for SmolLM2). Every width (default 12.5 to 75 %) and full width (the
reference, "dense": the dense model's shapes) is exported with ``awncompress export --format F`` into
``--work`` (each file checked in its engine as it is written), then timed in that engine with the
package's ``served_speed`` (evaluate/served_speed.py): onnxruntime latency at batch 1 and 32 × 64
tokens; llama.cpp prompt processing (512 tokens) and generation (128 tokens) in tokens/s. Median of
``--repeats`` runs (default 7) per measure, the files interleaved round-robin, the process pinned to
``--threads`` cores (default 2: this machine's) and the engines given that many threads.

Writes OUT/served.json (the report's ``served`` entry: config and rows) and OUT/served.md (the table:
speed-up beside 1 / FLOP ratio and 1 / weight-byte ratio). Time it on an idle machine.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from harness import make_parser, parse
from typer.testing import CliRunner

from awncompress.checkpoint.load import load_pretrained
from awncompress.cli import app
from awncompress.evaluate.served_speed import ServedSpeedConfig, served_speed
from awncompress.report.markdown import speed_table

WIDTHS = "1.0,0.125,0.25,0.375,0.5,0.75"


def parser():
    out = make_parser(__doc__)
    out.add_argument("nested", type=Path, help="a convert run's nested/ folder")
    out.add_argument("--format", choices=["onnx", "gguf"], required=True)
    out.add_argument("--quant", default=None, help="GGUF: f16 (default), f32, q8_0 or q4_k_m")
    out.add_argument("--widths", default=WIDTHS, help=f"widths to time (default {WIDTHS}; 1.0: the reference)")
    out.add_argument("--learned", action="store_true", help="also the learned per-layer export (GGUF: DECI)")
    out.add_argument("--multiple", type=int, default=None, help="round widths to a multiple of this (k-quants: 256)")
    out.add_argument("--repeats", type=int, default=7)
    out.add_argument("--threads", type=int, default=2)
    out.add_argument("--work", type=Path, default=None, help="where the exports go (default: a temporary folder)")
    out.add_argument("--out", type=Path, required=True)
    return out


def export(args, work: Path) -> dict[str, Path]:
    """The served exports of every width (and the learned per-layer widths), through the CLI."""
    cmd = ["export", str(args.nested), "--widths", args.widths, "--format", args.format, "--out", str(work)]
    cmd += ["--quant", args.quant] if args.quant else []
    cmd += ["--multiple", str(args.multiple)] if args.multiple else []
    cmd += ["--learned"] if args.learned else []
    result = CliRunner().invoke(app, cmd)
    if result.exit_code != 0:
        raise SystemExit(f"awncompress export failed: {result.output.strip()}")
    folders = sorted(p for p in work.iterdir() if (p / "awncompress.json").is_file())
    return {("dense" if p.name.startswith("width-1-") else p.name): p for p in folders}


def main() -> None:
    args = parse(parser())
    os.sched_setaffinity(0, set(range(args.threads)))
    cfg = ServedSpeedConfig(threads=args.threads, repeats=args.repeats)
    with tempfile.TemporaryDirectory(prefix="awn-serve-") as tmp:
        work = args.work or Path(tmp) / "served"
        folders = export(args, work)
        print("timing:", ", ".join(folders), flush=True)
        served = served_speed(load_pretrained(args.nested), folders, cfg)
    served["config"].update(nested=str(args.nested), format=args.format, quant=args.quant, multiple=args.multiple)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "served.json").write_text(json.dumps(served, indent=2))
    table = "\n".join(speed_table(served))
    (args.out / "served.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
