"""Issue 31, second use: a small export regrown on a new classification task, at equal and at its own FFN FLOPs.

    python bench/regrow.py --source RUN --out bench/results/regrow-minilm --seeds 0 1
    python bench/regrow.py --source RUN --out OUT --width 0.125 --data builtin:20newsgroups

RUN is a finished MiniLM convert run (its nested/ export, trained on Rotten Tomatoes). Its uniform export at
``--width`` (12.5 % of the FFN) is the small model; its classifier head is dropped, as a user moving it to a
new task would, and the encoder is converted again on ``--data`` (20 Newsgroups: 20 topics) with the demo
recipe's settings but a rate prior centred at twice the small width, in three arms per seed:

- ``small``: the small encoder as it is (each layer capped at its width);
- ``regrown``: the same with ``--grow`` (``awn.grow_cap`` 8: a layer may grow back to the pretrained width);
  its learned per-layer widths (``awncompress export nested --learned``) are evaluated on the same examples;
- ``wider``: RUN's uniform export at the FFN FLOPs of the regrown model's learned widths, converted the same way.

The ``awn`` row at width 1 of ``small`` and ``wider`` is each model fine-tuned on the new task at its full
width. OUT/seed-N/report.json pairs the three on the same examples (``summarise.py``-style gaps, in points);
OUT/summary.json has the accuracies, FFN FLOP fractions and paired gaps ± 2 SE.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from harness import add_run_args, make_parser, method_values, parse, run_convert
from summarise import _paired
from transformers import AutoModel, AutoTokenizer

from awncompress import load_pretrained, read_provenance
from awncompress.checkpoint.layout import width_key
from awncompress.config import apply_overrides, load_recipe
from awncompress.config.settings import read_settings
from awncompress.data.tokenized import load_task_data
from awncompress.evaluate.measure import evaluate_model

FULL = width_key(1)  # the arms' one export width: each model at its own full width
AWNCOMPRESS = [sys.executable, "-m", "awncompress"]  # the CLI of this interpreter's awncompress
ARMS = {"small": {}, "regrown": {"awn.grow": "true", "awn.grow_cap": "8"}}
# The rate prior centres each layer's 0.9-quantile at twice the small width (rate_for_quantile(2, 0.9)); the loss
# moves each layer from there. With no prior (rate_prior_std 1000) the fine-tune on 20 Newsgroups narrowed every
# profile (to 70-94 % of the small width, seed 0), and nothing grew.
SHARED = {"export.widths": FULL, "evaluate.methods": "awn", "awn.rate_prior_mean": "1.15"}


def parser() -> argparse.ArgumentParser:
    out = add_run_args(make_parser(__doc__), [0])
    out.add_argument("--source", type=Path, required=True, help="a finished MiniLM convert run (with nested/)")
    out.add_argument("--width", type=float, default=0.125, help="the small export's FFN width fraction")
    out.add_argument("--data", default="builtin:20newsgroups", help="the new task's data")
    return out


def encoder(source: Path, width: float, dest: Path) -> Path:
    """RUN's uniform export at ``width`` with its classifier head dropped (``dest``), made once."""
    if (dest / "config.json").is_file():
        return dest
    cut = dest.parent / f"{dest.name}-with-head"
    if not cut.is_dir():
        subprocess.run(
            [*AWNCOMPRESS, "export", str(source / "nested"), "--widths", f"{width:g}", "--out", str(cut)], check=True
        )
    cut = next(cut.glob("width-*"))
    AutoModel.from_pretrained(cut).save_pretrained(dest)  # the encoder only: the head was for the old labels
    AutoTokenizer.from_pretrained(cut).save_pretrained(dest)
    return dest


def convert(model: Path, folder: Path, args: argparse.Namespace, seed: int, overrides: dict) -> dict:
    """``awncompress convert demo --model MODEL --data DATA`` with the arm's settings; its report (kept if run)."""
    if not (folder / "report.json").is_file():
        sets = {"model": str(model), "data.train": args.data, "seed": seed, **SHARED, **overrides}
        began = time.perf_counter()
        run_convert(apply_overrides(load_recipe("demo"), {**sets, **args.overrides}), folder, overwrite=True)
        print(f"regrow {folder.parent.name}/{folder.name}: {time.perf_counter() - began:.0f} s", flush=True)
    return json.loads((folder / "report.json").read_text())


def learned(run: Path) -> tuple[Path, list[int]]:
    """The regrown run's learned per-layer export (``awncompress export --learned``) and its widths."""
    target = run / "learned"
    if not (target / "per-layer" / "awncompress.json").is_file():
        command = ["export", str(run / "nested"), "--learned", "--out", str(target), "--overwrite"]
        subprocess.run([*AWNCOMPRESS, *command], check=True)
    return target / "per-layer", list(read_provenance(target / "per-layer")["layer_widths"])


def score(export: Path, run: Path) -> tuple[float, list[int]]:
    """Accuracy of ``export`` on ``run``'s evaluation examples, and 1/0 per example in the run's order."""
    recipe = load_recipe(run / "recipe.yaml")
    model = load_pretrained(export).eval()
    data = load_task_data(read_settings(recipe).data, AutoTokenizer.from_pretrained(export))
    correct: list = []
    value = evaluate_model(model, data.eval, data.collate, recipe.task, batch_size=64, correct=correct)
    return value, [int(c) for c in correct]


def main() -> None:
    args = parse(parser())
    d_ff = read_provenance(args.source / "nested")["d_ff"]
    small = encoder(args.source, args.width, args.out / "models" / f"encoder-{args.width:g}")
    record = args.out / "summary.json"
    summary: dict = json.loads(record.read_text()) if record.is_file() else {"seeds": {}}
    summary.update({"source": str(args.source), "width": args.width, "data": args.data})
    for seed in args.seeds:
        reports = {arm: convert(small, args.out / arm / f"seed-{seed}", args, seed, o) for arm, o in ARMS.items()}
        grown_export, widths = learned(args.out / "regrown" / f"seed-{seed}")
        fraction = sum(widths) / (len(widths) * d_ff)
        wider_fraction = min(1.0, round(fraction, 4))  # RUN cannot be cut wider than it is
        wide = encoder(args.source, wider_fraction, args.out / "models" / f"encoder-seed-{seed}")
        reports["wider"] = convert(wide, args.out / "wider" / f"seed-{seed}", args, seed, {})
        value, bits = score(grown_export, args.out / "regrown" / f"seed-{seed}")
        per_example = {arm: r["per_example_correct"][f"awn@{FULL}"] for arm, r in reports.items() if arm != "regrown"}
        per_example["regrown"] = bits
        joined = {"per_example_correct": per_example}
        (args.out / f"seed-{seed}").mkdir(parents=True, exist_ok=True)
        (args.out / f"seed-{seed}" / "report.json").write_text(json.dumps(joined))
        summary["seeds"][str(seed)] = {
            "accuracy": {
                "small": method_values(reports["small"])[FULL],
                "regrown (base width)": method_values(reports["regrown"])[FULL],
                "regrown (learned widths)": value,
                "wider": method_values(reports["wider"])[FULL],
            },
            "ffn_fraction_of_pretrained": {"small": args.width, "regrown": fraction, "wider": wider_fraction},
            "learned_widths": widths,
            "grown_widths": (reports["regrown"].get("profile") or {}).get("grown_widths"),
        }
    pooled = {int(s): json.loads((args.out / f"seed-{s}" / "report.json").read_text()) for s in summary["seeds"]}
    summary["paired_points"] = {
        f"{a} - {b}": _paired(pooled, a, b) for a, b in (("regrown", "small"), ("regrown", "wider"), ("wider", "small"))
    }
    record.write_text(json.dumps(summary, indent=1))
    json.dump(summary["paired_points"], sys.stdout, indent=1)


if __name__ == "__main__":
    main()
