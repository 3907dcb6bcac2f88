"""Tuning runs for the SmolLM2 benchmark: one AWN fine-tune (and, if asked, per-width fine-tunes
with the same settings), perplexity at every width, one JSON line per config.

    python bench/tune_smollm2.py --out bench/results/tune_smollm2.jsonl \
        --config "train.kd_hidden_weight=1.0" --config "train.steps=60;train.lr=1e-4" [--finetune 0.25,0.5 [--no-awn]]

Runs the `smollm2` recipe (SmolLM2-135M on Jane Austen, the benchmark's windows) with the
overrides of each --config; widths are evaluated in memory (the exports are these tensors).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from awncompress.config import apply_overrides, load_recipe
from awncompress.config.settings import read_settings
from awncompress.data.tokenized import load_task_data
from awncompress.evaluate.measure import evaluate_model
from awncompress.model.adaptive import profile_summary
from awncompress.model.surgery import convert_, fold_, order_, truncate_
from awncompress.run.bundle import calibration_batches, load_model
from awncompress.train.finetune import finetune
from awncompress.train.teacher import distillation_teacher

WIDTHS = (0.25, 0.375, 0.5, 0.625, 0.75)


def _ppl(model, data, recipe) -> float:
    return round(evaluate_model(model, data.eval, data.collate, "causal-lm", batch_size=recipe.evaluate.batch_size), 2)


def run(overrides: dict, finetune_widths: list[float], awn: bool = True) -> dict:
    recipe = apply_overrides(load_recipe("smollm2"), overrides)
    model, tokenizer, _ = load_model(recipe.model, recipe.task)
    data = load_task_data(read_settings(recipe).data, tokenizer)
    teacher = distillation_teacher(copy.deepcopy(model).requires_grad_(False), recipe.task, data.train, data.collate)
    batches = calibration_batches(data, recipe.awn.calibration_batches, recipe.train.batch_size)
    record: dict = {"overrides": overrides, "dense": _ppl(model, data, recipe)}
    cfg = recipe.train.model_copy(update={"checkpoint_every": 0})
    if awn:
        student = copy.deepcopy(model)
        convert_(student, read_settings(recipe).awn, calibration=batches)
        began = time.perf_counter()
        finetune(
            student,
            data.train,
            data.collate,
            cfg,
            num_examples=data.num_train_examples,
            prior=read_settings(recipe).prior,
            teacher=teacher,
            seed=recipe.seed,
            quiet=True,
        )
        record["awn_s"] = round(time.perf_counter() - began, 1)
        record["active_widths"] = profile_summary(student)["active_widths"]
        fold_(student)
        for w in WIDTHS:
            cut = copy.deepcopy(student)
            truncate_(cut, w)
            record[f"awn@{w:g}"] = _ppl(cut, data, recipe)
    ordered = copy.deepcopy(model).requires_grad_(True)
    order_(ordered, recipe.awn.scorer, batches)
    for w in finetune_widths:
        cut = copy.deepcopy(ordered)
        truncate_(cut, w)
        began = time.perf_counter()
        finetune(
            cut,
            data.train,
            data.collate,
            cfg.model_copy(update={"mode": "deterministic"}),
            num_examples=data.num_train_examples,
            teacher=teacher,
            seed=recipe.seed,
            quiet=True,
        )
        record[f"ft_s@{w:g}"] = round(time.perf_counter() - began, 1)
        record[f"ft@{w:g}"] = _ppl(cut, data, recipe)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", action="append", default=[], help="recipe overrides separated by ;")
    parser.add_argument("--no-awn", action="store_true", help="run only the --finetune widths")
    parser.add_argument(
        "--finetune", default="", help="widths to fine-tune alone with the same settings, e.g. 0.25,0.5"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    widths = [float(w) for w in args.finetune.split(",") if w]
    for spec in args.config or [""]:
        record = run(dict(kv.split("=", 1) for kv in spec.split(";") if kv), widths, awn=not args.no_awn)
        print(json.dumps(record), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
