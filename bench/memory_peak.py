"""Issue 30: resident memory of a whole convert run against its plan, and during the AWN fine-tune
in bytes per parameter.

    python bench/memory_peak.py [--recipe demo] [--set KEY=VALUE ...] [--out bench/results/memory-peak.md]

Runs ``awncompress convert RECIPE --plan`` (the plan's peak memory), then the run itself under
``/usr/bin/time -v`` (its peak RSS), sampling the process's RSS every 0.2 s and attributing each
sample to the stage whose progress bar was last drawn (dense head, teacher logits, awn fine-tune, the
per-width fine-tunes of evaluation). The run writes into a temporary folder. Bytes per parameter
during the AWN fine-tune are given whole and above the process itself (Python with torch,
transformers and datasets imported, no model), which a small model's run pays whatever its size.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import make_parser

# A progress bar's label → the stage its samples count for (every "<method>+finetune <width>" bar is one stage).
STAGES = {
    "dense head": "dense head",
    "teacher logits": "teacher logits",
    "awn fine-tune": "awn fine-tune",
    "+finetune": "per-width fine-tunes",
    "exports": "exports",
}
GIB = 2**30


def _rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its children (0 once gone)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        found = re.search(r"VmRSS:\s+(\d+) kB", text)
        total += int(found.group(1)) * 1024 if found else 0
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


_IMPORTED = (
    "import re, pathlib, awncompress.run.convert, awncompress.cli; "
    "print(re.search(r'VmRSS:\\s+(\\d+)', pathlib.Path('/proc/self/status').read_text()).group(1))"
)


def process_bytes() -> int:
    """Resident bytes of a process that has imported awncompress (torch, transformers, datasets)
    and holds no model: what a run holds whatever its model's size."""
    done = subprocess.run([sys.executable, "-c", _IMPORTED], capture_output=True, text=True, check=True)
    return int(done.stdout.strip()) * 1024


def planned_peak(recipe: str, sets: list[str]) -> float:
    """GiB the plan says the run will peak at (``--plan`` runs the dry pass; it writes nothing)."""
    cmd = [sys.executable, "-m", "awncompress", "convert", recipe, "--plan", *sets]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(re.search(r"peak memory ~([\d.]+) GiB", done.stdout + done.stderr).group(1))


def measured(recipe: str, sets: list[str], out: Path) -> dict:
    """Peak RSS of the run (``/usr/bin/time -v``) and the peak of each stage (sampled)."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "awncompress", "convert", recipe, "--out", str(out), *sets]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, bufsize=1)
    stage = {"name": "load, score, wrap"}
    peaks: dict[str, int] = {}
    lines: list[str] = []

    def sample() -> None:
        while proc.poll() is None:
            peaks[stage["name"]] = max(peaks.get(stage["name"], 0), _rss(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tail = ""
    for chunk in iter(lambda: proc.stderr.read(256), ""):
        lines.append(chunk)
        seen = tail + chunk  # a label split between two reads is still found
        last = max(STAGES, key=seen.rfind)
        if seen.rfind(last) >= 0:
            stage["name"] = STAGES[last]
        tail = seen[-64:]
    proc.wait()
    sampler.join()
    text = "".join(lines)
    if proc.returncode != 0:
        raise SystemExit(f"error: the run failed: {text.strip().splitlines()[-1:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) * 1024
    return {"peak_rss": peak, "stages": peaks}


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--recipe", default="demo")
    parser.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE")
    parser.add_argument("--params", type=float, required=True, help="the model's parameters (e.g. 22.7e6)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/memory-peak.md"))
    args = parser.parse_args()
    sets = [x for kv in args.sets for x in ("--set", kv)]
    plan = planned_peak(args.recipe, sets)
    with tempfile.TemporaryDirectory() as tmp:
        run = measured(args.recipe, sets, Path(tmp) / "run")
    finetune = max((v for k, v in run["stages"].items() if "awn fine-tune" in k), default=0)
    imported = process_bytes()
    row = {
        "recipe": args.recipe,
        "sets": args.sets,
        "plan_gib": plan,
        "peak_gib": round(run["peak_rss"] / GIB, 2),
        "ratio": round(run["peak_rss"] / GIB / plan, 2),
        "finetune_bytes_per_param": round(finetune / args.params),
        "process_gib": round(imported / GIB, 2),
        "finetune_bytes_per_param_above_process": round((finetune - imported) / args.params),
        "stages_gib": {k: round(v / GIB, 2) for k, v in run["stages"].items()},
    }
    print(json.dumps(row, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
