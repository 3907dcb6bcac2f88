"""A dry pass before the long stages; its timings as a plan, and a time budget the steps are fitted to.

Every stage (dense head, teacher logits, score/order/wrap, fine-tune, fold, exports and their
reload, every evaluation method with FLOPs and latency, the report) runs once on a deep copy of
the model, on one micro-batch seen ``DRY_STEPS`` times and a few evaluation examples, into a
temporary folder that is removed afterwards. Anything that is going to fail fails there, within
the first minute, with one line, before hours are spent; and the seconds each stage took, scaled to
the real batch (its micro-batches), step counts and data sizes, are the plan's estimates. The peak
memory is estimated from the model's shape (memory.stage_bytes) on top of what the process holds
with the model loaded.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..config.recipe import Recipe
from ..config.settings import read_settings
from ..data.tokenized import ExampleDataset, TaskData, example_lengths
from ..errors import AwnError, first_line
from ..evaluate.latency import device_of
from ..evaluate.methods import fine_tune_runs
from ..files.lock import run_temp_dir
from ..model.scoring import model_inputs
from ..train.heap import release_free_memory
from ..train.settings import draws_fresh_batches, examples_drawn, width_passes
from .bundle import Bundle
from .chain import run_stages
from .derive import batch_per_width_note, longest_example, stage_memory, teacher_is_live
from .memory import GIB, available_bytes, resident_bytes

log = logging.getLogger("awncompress")

DRY_STEPS = 2  # the first step pays for warm-up (Adam's state, first allocations); the second is timed
DRY_EVAL_EXAMPLES = 8
# Said before the dry pass: on a large model (Gemma 3 270M's 262,144-token head) it is minutes of silence.
DRY_NOTE = (
    "dry pass: every stage once on a copy of the model, %d steps of one micro-batch (%d examples) per fine-tune, "
    "before the run starts"
)
MIN_STEPS = 10  # a budget never scales a fine-tune below this
# A budget run spends at most this share of its minutes scoring evaluation examples, on no fewer
# than EVAL_FLOOR of them: with many methods × widths, scoring a large test set would otherwise
# leave the fine-tunes a handful of steps (20 Newsgroups' 2,000 posts × 36 rows on MiniLM).
EVAL_SHARE = 0.5
EVAL_FLOOR = 1000
SHORT_SCALE = 0.25  # below this share of the derived steps, a budget run is warned that its curve will be weak


@dataclass
class Plan:
    """What a run will do and how long each stage should take on this machine."""

    recipe: Recipe
    stages: list[tuple[str, str, float]]  # (stage, what it does, estimated seconds)
    peak_bytes: int  # estimated: the loaded model and process, plus the largest stage (memory.stage_bytes)
    dry_seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)
    eval_example_seconds: float = 0.0  # seconds per evaluation example, over every evaluated row
    eval_examples: int = 0
    teacher_example_seconds: float = 0.0  # seconds per training example of the teacher logit table
    train_examples: int = 0
    peak_stage: str = ""  # the stage the peak is in

    @property
    def peak_where(self) -> str:
        return f" (in the {self.peak_stage})" if self.peak_stage else ""

    @property
    def total_seconds(self) -> float:
        """The estimated wall time of the whole run."""
        return sum(s for _, _, s in self.stages)

    def text(self) -> str:
        """The plan as a few lines for the terminal."""
        r = self.recipe
        lines = [f"plan (from a {self.dry_seconds:.0f} s dry pass of every stage on this machine):"]
        lines += [f"  {stage:<15} {what:<58} ~{_minutes(seconds)}" for stage, what, seconds in self.stages]
        lines.append(f"  {'total':<15} {'':<58} ~{_minutes(self.total_seconds)}")
        lines.append(
            f"  peak memory ~{self.peak_bytes / GIB:.1f} GiB{self.peak_where} of {available_bytes() / GIB:.1f} GiB "
            "available; widths "
            + ", ".join(f"{w:g}" for w in r.export.widths)
            + "; methods "
            + ", ".join(r.evaluate.methods)
        )
        if r.awn.grow:
            lines.append(
                f"  awn.grow: memory counted as if every FFN grew to {r.awn.grow_cap:g} × its width; "
                "the times are at the pretrained widths"
            )
        lines += [f"  derived {key} = {why}" for key, why in r.derived.items() if key != "inputs"]
        return "\n".join(lines)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _typical(dataset: Any, n: int) -> list[int]:
    """``n`` example indices of about the median length (a real, length-grouped batch's shape)."""
    lengths = example_lengths(dataset)
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    middle = len(order) // 2
    start = max(0, min(len(order) - n, middle - n // 2))
    return order[start : start + n]


def dry_batch(recipe: Recipe) -> int:
    """Examples per training step of the dry pass: one micro-batch of the run. (Fewer, scaled up,
    misjudged a CPU step: at 8 examples a MiniLM step was mostly fixed costs, and the plan said 4 times
    the real fine-tune time.)"""
    return max(1, recipe.train.batch_size // recipe.train.grad_accum)


def _tiny(recipe: Recipe, data: TaskData, batch_size: int) -> tuple[Recipe, TaskData]:
    """The recipe and data of the dry pass: one batch of ``batch_size`` examples of typical length,
    seen ``DRY_STEPS`` times (every step has the same shape, so the last one is timed warm), and a
    few evaluation examples."""
    batch = _typical(data.train, min(len(data.train), batch_size))
    train = ExampleDataset([data.train[i] for i in batch] * DRY_STEPS)
    evals = ExampleDataset([data.eval[i] for i in _typical(data.eval, min(len(data.eval), DRY_EVAL_EXAMPLES))])
    tiny = TaskData(train, evals, data.num_labels, data.label_names, data.collate, len(train))
    # One width is enough to run every method once (each per-width fine-tune costs DRY_STEPS steps).
    updates: dict[str, Any] = {
        "train": recipe.train.model_copy(
            update={
                "steps": DRY_STEPS,
                "checkpoint_every": 0,
                "warmup_steps": 0,
                "max_seconds": None,
                "batch_size": len(batch),
                "grad_accum": 1,
            }
        ),
        "dense": recipe.dense.model_copy(
            update={"steps": DRY_STEPS if recipe.dense.steps else 0, "batch_size": len(batch)}
        ),
        "export": recipe.export.model_copy(update={"widths": [min(recipe.export.widths)]}),
        "evaluate": recipe.evaluate.model_copy(update={"latency_repeats": min(1, recipe.evaluate.latency_repeats)}),
    }
    return recipe.model_copy(update=updates), tiny


@dataclass
class DryTimings:
    """What the dry pass timed: seconds per training step, per forward token, and fixed costs."""

    step: dict[str, float]  # "awn", "dense": seconds per optimizer step (warm)
    plans: int  # forward/backward passes per AWN step (full, sampled, sandwich widths)
    token: float  # seconds per token of an inference forward pass (warm)
    tokens_train: float  # mean tokens per training example
    tokens_eval: float  # mean tokens per evaluation example
    export: float
    latency: float  # seconds of the latency timing, per repeat
    rows: int  # evaluated (method, width) rows, the dense one included
    dry_seconds: float
    peak_bytes: int  # estimated peak of the real run (not the dry pass's own, which runs smaller)
    peak_stage: str = ""  # the stage the peak is in


@torch.inference_mode()
def _seconds_per_token(model: nn.Module, data: TaskData, batch_size: int) -> float:
    """A warm inference forward pass over a batch of typical length, per token."""
    indices = _typical(data.eval, min(len(data.eval), batch_size))
    batch = data.collate([data.eval[i] for i in indices])
    inputs = model_inputs(batch, device_of(model))
    was_training = model.training
    model.eval()
    try:
        model(**inputs)
        began = time.perf_counter()
        model(**inputs)
        seconds = time.perf_counter() - began
    finally:
        model.train(was_training)
    return seconds / max(1, int(inputs["input_ids"].numel()))


def dry_run(recipe: Recipe, bundle: Bundle, llama_cpp: Optional[Path] = None) -> DryTimings:
    """Run every stage once on a tiny copy (see the module docstring) and time it."""
    model, data = bundle.model, bundle.data
    loaded = resident_bytes()  # the process with the model and the data loaded: every stage adds to it
    tiny_recipe, tiny_data = _tiny(recipe, data, dry_batch(recipe))
    log.info(DRY_NOTE, DRY_STEPS, tiny_recipe.train.batch_size)
    began, level = time.perf_counter(), log.level
    log.setLevel(logging.WARNING)  # the dry pass's own rows are not the run's
    try:
        with run_temp_dir("dry") as tmp:
            tiny = Bundle(copy.deepcopy(model), bundle.tokenizer, bundle.head_trained, tiny_data)
            result = run_stages(
                read_settings(tiny_recipe),
                Path(tmp) / "out",
                tiny,
                resume=False,
                quiet=True,
                evaluate=True,
                llama_cpp=llama_cpp,
            )
    except AwnError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever breaks, say so in one line before hours are spent
        if os.environ.get("AWNCOMPRESS_TRACEBACK"):
            raise
        text = first_line(exc, empty="")
        raise AwnError(
            f"the dry pass (every stage once, on a copy, before the run starts) failed: {type(exc).__name__}: {text}"
        ) from exc
    finally:
        log.setLevel(level)
        release_free_memory()  # the dry pass's copy of the model and everything it trained
    seconds = time.perf_counter() - began
    # The last step (the first ones pay for warm-up), scaled from the dry batch to a real step's examples.
    step = {"awn": result.awn.step_seconds[-1] * recipe.train.grad_accum}
    if result.dense is not None and result.dense.step_seconds:
        step["dense"] = result.dense.step_seconds[-1] * recipe.dense.batch_size / tiny_recipe.dense.batch_size
    report = result.report or {}
    latency = report.get("costs", {}).get("latency", {}).get("evaluate_s", 0.0) / (
        min(1, recipe.evaluate.latency_repeats) + 3
    )
    plans = width_passes(recipe.train)
    mean = lambda ds: sum(example_lengths(ds)) / max(1, len(ds))  # noqa: E731
    widths = len(recipe.export.widths)
    rows = 1 + len(report.get("rows", [])) * widths  # the dry pass evaluated one width
    export = result.costs.get("export_seconds", 0.0) * (widths + 1) / 2  # it wrote nested + one width
    stages = stage_memory(recipe, model, bundle.head_trained, longest_example(recipe, data))
    peak_stage = max(stages, key=stages.__getitem__)
    return DryTimings(
        step,
        plans,
        _seconds_per_token(model, data, recipe.evaluate.batch_size),
        mean(data.train),
        mean(data.eval),
        export,
        latency * (widths + 1) / 2,
        rows,
        seconds,
        loaded + stages[peak_stage],
        peak_stage,
    )


def estimate(recipe: Recipe, measured: DryTimings, n_train: int, n_eval: int) -> Plan:
    """The plan of ``recipe`` from what the dry pass measured: training steps at their warm time,
    forward passes (teacher logits, evaluation) at their warm time per token, a per-width fine-tune
    step as one AWN pass."""
    r, m = recipe, measured
    stages: list[tuple[str, str, float]] = []
    if "dense" in m.step and r.dense.steps:
        stages.append(("dense head", f"{r.dense.steps} steps of {r.dense.batch_size}", r.dense.steps * m.step["dense"]))
    teacher_example = 0.0
    if r.task == "text-classification" and r.train.kd_weight > 0 and not r.train.kd_hidden_weight > 0:
        teacher_example = m.token * m.tokens_train
        seen = min(n_train, examples_drawn(r.train))  # the table covers what the fine-tunes draw
        stages.append(("teacher logits", f"{seen:,} of {n_train:,} examples, once", teacher_example * seen))
    micro = r.train.batch_size // r.train.grad_accum
    sandwich = f", sandwich {', '.join(f'{w:g}' for w in r.train.extra_widths)}" if r.train.extra_widths else ""
    stages.append(
        (
            "awn fine-tune",
            f"{r.train.steps} steps of {r.train.batch_size} ({micro} × {r.train.grad_accum}){sandwich}",
            r.train.steps * m.step["awn"],
        )
    )
    stages.append(("exports", f"nested + {len(r.export.widths)} widths", m.export))
    runs = fine_tune_runs(r.evaluate.methods, len(r.export.widths), len(r.flop_targets))
    finetunes = runs * r.train.steps * m.step["awn"] / m.plans
    per_example = m.rows * m.tokens_eval * m.token  # every evaluated row scores each example once
    evaluation = per_example * n_eval + m.latency * (r.evaluate.latency_repeats + 3) + finetunes
    what = f"{len(r.evaluate.methods)} methods × {len(r.export.widths)} widths on {n_eval:,} examples"
    if runs:
        what += f" (+ {runs} per-width fine-tunes)"
    stages.append(("evaluation", what, evaluation))
    return Plan(
        r,
        stages,
        m.peak_bytes,
        m.dry_seconds,
        {**m.step, "finetune": m.step["awn"] / m.plans},
        per_example,
        n_eval,
        teacher_example,
        n_train,
        m.peak_stage,
    )


def fit_budget(recipe: Recipe, plan: Plan, minutes: float) -> Recipe:
    """The recipe fitted to ``minutes`` (each change noted in ``derived``).

    First the evaluation set: when scoring it would take more than ``EVAL_SHARE`` of the budget,
    ``data.max_eval_examples`` is cut to what fits (never below ``EVAL_FLOOR``; the caller reloads
    the data). Then the steps: the dense stage, the AWN fine-tune and each per-width fine-tune
    scale together, and so does the teacher logit table while the fine-tunes draw fewer examples
    than the training set holds; exports and the rest of evaluation are fixed costs. AwnError
    when even ``MIN_STEPS`` steps cannot fit. A derived ``train.batch_per_width`` is derived again
    for the fewer steps: when they leave fresh examples for a batch per width pass, it is turned on
    and the steps are fitted again with its costs (a larger teacher table, or a live teacher's
    forward pass per extra batch).
    """
    fitted = _fit_steps(recipe, plan, minutes)
    derived = "train.batch_per_width" in recipe.derived and not recipe.train.batch_per_width
    if not derived or fitted.train.steps == recipe.train.steps:
        return fitted
    if not draws_fresh_batches(fitted.train.model_copy(update={"batch_per_width": True}), plan.train_examples):
        return fitted
    on = recipe.model_copy(update={"train": recipe.train.model_copy(update={"batch_per_width": True})})
    refitted = _fit_steps(on, plan, minutes, _live_teacher_seconds(on, plan))
    notes = dict(refitted.derived)
    notes["train.batch_per_width"] = (
        batch_per_width_note(refitted.train, plan.train_examples)[1] + f" (under --budget {minutes:g} min)"
    )
    return refitted.model_copy(update={"derived": notes})


def _live_teacher_seconds(recipe: Recipe, plan: Plan) -> float:
    """Seconds a live teacher's forward passes over a step's extra batches add, estimated from the
    measured step (the dry pass ran it with one batch): a forward is about a third of a forward and
    backward, and the step was ``passes`` of those plus one teacher forward."""
    passes = width_passes(recipe.train)
    return teacher_is_live(recipe) * plan.step_seconds.get("awn", 0.0) * (passes - 1) / (3 * passes + 1)


def _fit_steps(recipe: Recipe, plan: Plan, minutes: float, extra_step_seconds: float = 0.0) -> Recipe:
    budget = minutes * 60
    if plan.total_seconds <= budget:
        return recipe
    r, step, notes = recipe, plan.step_seconds, dict(recipe.derived)
    updates: dict[str, Any] = {}
    fixed_cut = 0.0
    n_eval = plan.eval_examples
    if plan.eval_example_seconds * n_eval > EVAL_SHARE * budget and n_eval > EVAL_FLOOR:
        kept = max(EVAL_FLOOR, math.floor(EVAL_SHARE * budget / plan.eval_example_seconds))
        notes["data.max_eval_examples"] = (
            f"{kept}: {n_eval:,} evaluation examples cut (seeded sample) to fit --budget {minutes:g} min"
        )
        updates["data"] = r.data.model_copy(update={"max_eval_examples": kept})
        fixed_cut = (n_eval - kept) * plan.eval_example_seconds
    per_step = (
        step.get("awn", 0.0)
        + extra_step_seconds
        + step.get("finetune", 0.0) * fine_tune_runs(r.evaluate.methods, len(r.export.widths), len(r.flop_targets))
    )
    variable = r.train.steps * per_step + r.dense.steps * step.get("dense", 0.0)
    drawn = examples_drawn(r.train)
    table = plan.teacher_example_seconds * min(
        examples_drawn(plan.recipe.train), plan.train_examples
    )  # the table the plan's total holds
    fixed = plan.total_seconds - variable - fixed_cut - table
    full_table = plan.teacher_example_seconds * plan.train_examples
    scale = min(1.0, (budget - fixed - full_table) / variable) if variable else 0.0
    if scale * drawn < plan.train_examples:  # scaled down, the fine-tunes draw only part of the training set
        scale = min(1.0, (budget - fixed) / (variable + plan.teacher_example_seconds * drawn)) if variable else 0.0
    if fixed >= budget or scale * r.train.steps < MIN_STEPS:
        least = fixed + MIN_STEPS * (per_step + plan.teacher_example_seconds * drawn / r.train.steps)
        raise AwnError(
            f"--budget {minutes:g} min cannot fit: the plan needs ~{_minutes(least)} even at "
            f"{MIN_STEPS} fine-tune steps; raise --budget or lower data.max_eval_examples / the number of widths"
        )
    if scale < SHORT_SCALE:
        log.warning(
            "--budget %g min leaves %.0f %% of the derived fine-tune steps: expect a weak curve "
            "(an untrained head when there is a dense stage); --plan without --budget shows the full run",
            minutes,
            100 * scale,
        )
    if scale < 1.0:
        train_steps = max(MIN_STEPS, math.floor(r.train.steps * scale))
        notes["train.steps"] = f"{train_steps}: {r.train.steps} scaled by {scale:.2f} to fit --budget {minutes:g} min"
        warmup = min(train_steps, math.ceil(r.train.warmup_steps * scale))  # the same share of fewer steps
        if warmup != r.train.warmup_steps:
            notes["train.warmup_steps"] = (
                f"{warmup}: {r.train.warmup_steps} scaled by {scale:.2f} to fit --budget {minutes:g} min"
            )
        updates["train"] = r.train.model_copy(update={"steps": train_steps, "warmup_steps": warmup})
        if "dense" in step:
            dense_steps = max(MIN_STEPS, math.floor(r.dense.steps * scale))
            notes["dense.steps"] = (
                f"{dense_steps}: {r.dense.steps} scaled by {scale:.2f} to fit --budget {minutes:g} min"
            )
            updates["dense"] = r.dense.model_copy(update={"steps": dense_steps})
    return r.model_copy(update={**updates, "derived": notes, "budget": minutes})
