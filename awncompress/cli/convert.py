"""`awncompress convert`: a model or recipe in, a folder of exports and a report out."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import AwnError
from .app import app
from .common import (
    default_out,
    friendly_errors,
    heads_for,
    llama_cpp_option,
    parse_sets,
    parse_widths,
    quant_option,
    quiet_libraries,
)


def _base_recipe(model_or_recipe: str, named: bool, task: Optional[str], has_data: bool):
    """The recipe a name gives, or the default recipe for a model (which then needs data)."""
    from ..config import default_recipe, list_recipes, load_recipe

    if named:
        return load_recipe(model_or_recipe)
    if not has_data and not Path(model_or_recipe).expanduser().exists():
        raise AwnError(
            f"{model_or_recipe!r} is not a shipped recipe ({', '.join(list_recipes())}), a recipe .yaml or a "
            "local model folder; as a Hugging Face Hub model id it also needs --data"
        )
    return default_recipe(model_or_recipe, task or "text-classification")


def _formats(text: Optional[str]) -> Optional[list[str]]:
    from ..serve.formats import parse_formats

    return None if text is None else parse_formats(text)


@app.command(no_args_is_help=True)
def convert(
    model_or_recipe: str = typer.Argument(
        ..., help="A recipe name (demo, bert-base, smollm2), a recipe .yaml, a local model folder or a Hub id."
    ),
    task: Optional[str] = typer.Option(
        None, help="text-classification or causal-lm (default: the recipe's, else text-classification)."
    ),
    data: Optional[str] = typer.Option(
        None, help="Training data: .csv/.json/.jsonl/.parquet, a Hub dataset id (id:config[:split]) or builtin:NAME."
    ),
    eval_data: Optional[str] = typer.Option(
        None, "--eval-data", help="Evaluation data (default: a seeded split of --data)."
    ),
    text_column: Optional[str] = typer.Option(None, help="Column with the text."),
    text_pair_column: Optional[str] = typer.Option(None, help="Second text column, for sentence pairs."),
    label_column: Optional[str] = typer.Option(None, help="Column with the label."),
    widths: Optional[str] = typer.Option(None, help="Width fractions of d_ff to export, e.g. 0.25,0.5,0.75."),
    per_layer: Optional[bool] = typer.Option(
        None, "--per-layer/--no-per-layer", help="Also export the learned per-layer widths."
    ),
    heads: Optional[bool] = typer.Option(
        None,
        "--heads/--no-heads",
        help="Also learn an order over attention heads and export FFN+heads cuts at FLOP targets (flops-<t>/); "
        "off by default, on with --flops.",
    ),
    grow: Optional[bool] = typer.Option(
        None,
        "--grow/--no-grow",
        help="Let a layer whose learned profile asks for more neurons than it has grow past its pretrained "
        "width during the fine-tune (up to awn.grow_cap, default 2x); off by default.",
    ),
    flops: Optional[str] = typer.Option(
        None,
        help="Fractions of the dense FLOPs to export as FFN+heads cuts, e.g. 0.2,0.3; turns --heads on unless "
        "--no-heads is given (default with --heads: 0.2,0.3,0.4).",
    ),
    steps: Optional[int] = typer.Option(None, min=1, help="AWN fine-tune steps."),
    dense_steps: Optional[int] = typer.Option(
        None, min=1, help="Steps of the dense stage that trains an untrained head."
    ),
    max_train_examples: Optional[int] = typer.Option(None, min=1, help="Use at most this many training examples."),
    max_eval_examples: Optional[int] = typer.Option(None, min=1, help="Use at most this many evaluation examples."),
    mode: Optional[str] = typer.Option(
        None, help="Training mode: stochastic (sample widths from the learned profile, the default) or deterministic."
    ),
    metric: Optional[str] = typer.Option(
        None,
        help="Metric: a shipped one (accuracy, f1, ...), or one whose code you trust to run "
        "(a local script, a Hub metric).",
    ),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    set_: List[str] = typer.Option([], "--set", help="Override any recipe field: --set train.lr=1e-4 (repeatable)."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output folder (default: the recipe's, else awn-<model>)."
    ),
    budget: Optional[float] = typer.Option(
        None,
        min=0.1,
        max=1e6,
        help="Minutes the whole run should take: fine-tune steps are scaled to fit what a dry pass measured.",
    ),
    plan: bool = typer.Option(
        False,
        "--plan",
        help="Print the stages, steps, batch, memory and estimated time per stage (from a dry pass), write nothing.",
    ),
    devices: Optional[int] = typer.Option(
        None,
        min=1,
        help="With --plan: plan for this many devices under FSDP2 from the model's config alone (no dry pass).",
    ),
    device_memory: str = typer.Option("80GB", help="With --devices: each device's memory, e.g. 80GB or 141GB."),
    device_tflops: float = typer.Option(
        400.0, min=0.001, help="With --devices: achieved TFLOP/s per device the step time is estimated at."
    ),
    formats: Optional[str] = typer.Option(
        None,
        help="Export formats besides hf (always written): onnx (onnxruntime) and/or gguf (llama.cpp), e.g. hf,gguf.",
    ),
    quant: Optional[str] = quant_option(),
    llama_cpp: Optional[Path] = llama_cpp_option(
        "For gguf: the llama.cpp source tree whose converter runs (see `awncompress export --help`)."
    ),
    resume: bool = typer.Option(False, help="Continue a killed run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, help="Replace --out if it exists."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the evaluation and report."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info lines."),
) -> None:
    """Convert a model: order and wrap its FFNs, fine-tune briefly, export every width, report.

    Examples:

      awncompress convert demo

      awncompress convert bert-base --steps 300 --out bert-awn

      awncompress convert ./my-model --data train.csv --eval-data test.csv --widths 0.25,0.5

      awncompress convert demo --out demo-out --resume

      awncompress convert ./my-model --data train.csv --plan

      awncompress convert ./my-model --data train.csv --budget 20

      awncompress convert ./llama-8b --task causal-lm --data corpus.txt --plan --devices 8 --device-memory 80GB

      awncompress convert demo --flops 0.25,0.3              # FFN+heads cuts (turns --heads on)

      awncompress convert demo --formats hf,onnx             # also width-<w>-onnx/, checked in onnxruntime

      awncompress convert demo --grow --per-layer           # layers may grow past their pretrained width
    """
    from ..config import apply_overrides, is_recipe

    parsed_widths = parse_widths(widths)
    sets = parse_sets(set_)
    quiet_libraries(quiet)
    with friendly_errors():
        if resume and overwrite:
            raise AwnError("--resume continues a run and --overwrite replaces it: give one of them")
        named = is_recipe(model_or_recipe)
        recipe = _base_recipe(model_or_recipe, named, task, data is not None or "data.train" in sets)
        overrides: dict[str, object] = {
            "task": task,
            "data.train": data,
            "data.eval": eval_data,
            "data.text_column": text_column,
            "data.text_pair_column": text_pair_column,
            "data.label_column": label_column,
            "export.widths": parsed_widths,
            "export.per_layer": per_layer,
            "awn.heads": heads_for(heads, flops),
            "awn.grow": grow,
            "export.flops": parse_widths(flops, "FLOP target", "the dense FLOPs"),
            "train.steps": steps,
            "dense.steps": dense_steps,
            "data.max_train_examples": max_train_examples,
            "data.max_eval_examples": max_eval_examples,
            "train.mode": mode,
            "seed": seed,
            "evaluate.metric": metric,
            "export.formats": _formats(formats),
            "export.quant": quant,
            **sets,
        }
        recipe = apply_overrides(recipe, overrides)
        if recipe.data.train is None:
            raise AwnError("no training data: pass --data (a file, a Hub dataset id or builtin:NAME)")
        target = (out or (Path(recipe.out) if recipe.out else default_out(recipe.model))).expanduser()
        from ..run.convert import plan_convert, run_convert
        from ..run.ranks import is_main_process

        trusted = sets.get("evaluate.metric", metric)  # named on this command line: the user asked for its code
        inputs = [Path(model_or_recipe)] if named and Path(model_or_recipe).is_file() else []
        common = dict(overwrite=overwrite, trusted_metric=trusted, budget=budget, inputs=inputs, llama_cpp=llama_cpp)
        if devices is not None:
            if not plan:
                raise AwnError("--devices plans a machine: add --plan (a run uses the processes it is launched with)")
            from ..run.device_plan import Setup, parse_bytes, plan_devices

            typer.echo(plan_devices(recipe, Setup(devices, parse_bytes(device_memory), device_tflops)))
            return
        if plan:
            made = plan_convert(recipe, target, **common)
            if made is not None:  # the main process's (the others ran only the dry pass's collectives)
                typer.echo(made.text())
            return
        result = run_convert(recipe, target, resume=resume, quiet=quiet, evaluate=not no_eval, **common)
    if not quiet and is_main_process():
        typer.echo(f"wrote {result.out}: " + ", ".join(p.name for p in result.exports.values()))
        if result.report is not None:
            typer.echo(f"report: {result.out / 'report.md'}")
