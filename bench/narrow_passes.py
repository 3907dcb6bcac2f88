"""What narrow width passes save: seconds per AWN step with ``train.narrow_passes`` on and off.

    python bench/narrow_passes.py --model out/demo/dense --out bench/results/narrow_passes.jsonl
    python bench/narrow_passes.py --model builtin:mpnet --out bench/results/narrow_passes.jsonl
    python bench/narrow_passes.py --model smollm2 --out bench/results/narrow_passes.jsonl

``--model``: a recipe name (its model, data and train settings) or a model folder / builtin, which
gets Rotten Tomatoes and the no-recipe step settings (the full width, one sampled width and the 12.5 %
sandwich width each step). The same converted model runs ``--steps`` steps each way, in turns
(``--rounds``), so drift in the machine's speed falls on both; one JSON line per model with the
median seconds per step of each way, and how far the two ways' weights and losses drifted apart
(rounding differs, so they are close, not equal). Run it alone: a second job on the CPU makes both ways slower
by different amounts.
"""

from __future__ import annotations

import copy
import statistics
from pathlib import Path

from harness import append_jsonl, make_parser, parse

from awncompress.config import RECIPE_DIR, apply_overrides, default_recipe, load_recipe
from awncompress.config.settings import read_settings
from awncompress.data.tokenized import load_task_data
from awncompress.model.surgery import convert_
from awncompress.run.bundle import calibration_batches, load_model
from awncompress.train.finetune import finetune


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parse(parser)
    if (RECIPE_DIR / f"{args.model}.yaml").is_file():
        recipe = load_recipe(args.model)
    else:
        recipe = apply_overrides(
            default_recipe(args.model), {"data.train": "builtin:rotten-tomatoes", "train.extra_widths": "0.125"}
        )
    recipe = apply_overrides(
        recipe, {"train.steps": args.steps, "train.kd_weight": 0, "train.checkpoint_every": 0, "train.warmup_steps": 0}
    )
    model, tokenizer, _ = load_model(recipe.model, recipe.task)
    data = load_task_data(read_settings(recipe).data, tokenizer)
    convert_(
        model,
        read_settings(recipe).awn,
        calibration=calibration_batches(data, recipe.awn.calibration_batches, recipe.train.batch_size),
    )
    seconds: dict[bool, list[float]] = {True: [], False: []}
    trained: dict[bool, tuple] = {}
    for _ in range(args.rounds):
        for narrow in (True, False):
            copied = copy.deepcopy(model)
            result = finetune(
                copied,
                data.train,
                data.collate,
                recipe.train.model_copy(update={"narrow_passes": narrow}),
                num_examples=data.num_train_examples,
                prior=read_settings(recipe).prior,
                quiet=True,
            )
            seconds[narrow] += result.step_seconds[1:]  # the first step warms the allocator
            trained[narrow] = (dict(copied.named_parameters()), result.losses)
    # Rounding differs between the two ways (other matmul shapes), so the runs drift apart a little.
    (narrow_params, narrow_losses), (masked_params, masked_losses) = trained[True], trained[False]
    drifts = {
        n: float((narrow_params[n].detach() - p.detach()).abs().max() / p.detach().abs().max().clamp_min(1e-12))
        for n, p in masked_params.items()
    }
    drift_tensor = max(drifts, key=drifts.get)
    record = {
        "model": args.model,
        "task": recipe.task,
        "steps": args.steps,
        "rounds": args.rounds,
        "batch_size": recipe.train.batch_size,
        "passes": {
            "full": recipe.train.full_width_pass,
            "extra_widths": recipe.train.extra_widths,
            "sample_from": recipe.train.sample_from,
        },
        "masked_s_per_step": round(statistics.median(seconds[False]), 3),
        "narrow_s_per_step": round(statistics.median(seconds[True]), 3),
    }
    record["narrow_share"] = round(record["narrow_s_per_step"] / record["masked_s_per_step"], 3)
    record["max_relative_weight_drift"] = float(f"{drifts[drift_tensor]:.3g}")
    record["drift_tensor"] = drift_tensor
    record["median_relative_weight_drift"] = float(f"{statistics.median(drifts.values()):.3g}")
    record["max_loss_drift"] = float(f"{max(abs(a - b) for a, b in zip(narrow_losses, masked_losses)):.3g}")
    append_jsonl(args.out, record)


if __name__ == "__main__":
    main()
