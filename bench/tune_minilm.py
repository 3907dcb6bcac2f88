"""Tuning sweep for benchmark 1: AWN fine-tune configs on MiniLM-L6 / Rotten Tomatoes.

Reuses one dense fine-tuned model (the demo recipe's dense stage, saved as DENSE/) so every
config starts from the same teacher and split; evaluates awn at a few widths in memory (the
exports are these same tensors). One JSON line per config in OUT.

    python bench/tune_minilm.py --dense out/demo/dense --out bench/results/tune_minilm.jsonl \
        --config lr=1e-4 --config kd_weight=1.0 ...
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
from awncompress.model.surgery import convert_, fold_, truncate_
from awncompress.run.bundle import calibration_batches, load_model
from awncompress.train.finetune import finetune
from awncompress.train.teacher import distillation_teacher

WIDTHS = (0.125, 0.25, 0.375, 0.5, 0.75)  # the demo's export widths


def run(dense: Path, overrides: dict, seed: int) -> dict:
    recipe = apply_overrides(load_recipe("demo"), {"seed": seed, **overrides})
    model, tokenizer, _ = load_model(str(dense), recipe.task)
    # The data split of the builtin is fixed; the seed moves the fine-tune only.
    data = load_task_data(read_settings(recipe).data, tokenizer)
    teacher = copy.deepcopy(model).requires_grad_(False)
    cfg = read_settings(recipe).awn
    convert_(model, cfg, calibration=calibration_batches(data, recipe.awn.calibration_batches, recipe.train.batch_size))
    began = time.perf_counter()
    kd_teacher = (
        distillation_teacher(teacher, recipe.task, data.train, data.collate, quiet=True)
        if recipe.train.kd_weight > 0
        else None
    )  # as the pipeline distils
    result = finetune(
        model,
        data.train,
        data.collate,
        recipe.train.model_copy(update={"checkpoint_every": 0}),
        num_examples=data.num_train_examples,
        prior=read_settings(recipe).prior,
        teacher=kd_teacher,
        seed=seed,
        quiet=True,
    )
    seconds = time.perf_counter() - began
    profile = profile_summary(model)
    fold_(model)
    accs = {"1.0": evaluate_model(model, data.eval, data.collate, recipe.task, batch_size=64)}
    for w in WIDTHS:
        small = copy.deepcopy(model)
        truncate_(small, w)
        accs[f"{w:g}"] = evaluate_model(small, data.eval, data.collate, recipe.task, batch_size=64)
    return {
        "overrides": overrides,
        "seed": seed,
        "train_s": round(seconds, 1),
        "steps": result.steps,
        "accuracy": accs,
        "active_widths": profile["active_widths"],
        "rates": profile["normalised_rates"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="recipe overrides separated by commas, or by semicolons when a value is a list: "
        "train.lr=1e-4,train.kd_weight=1 or train.sample_from=0.125,0.5;train.steps=40",
    )
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for spec in args.config or [""]:
        overrides = dict(kv.split("=", 1) for kv in spec.split(";" if ";" in spec else ",") if kv)
        record = run(args.dense, overrides, args.seed)
        print(json.dumps(record), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
