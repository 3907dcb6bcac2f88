"""The `awncompress` command line (typer).

Usage errors exit 2 (typer.BadParameter); problems found while running exit 1 with one line on
stderr; set AWNCOMPRESS_TRACEBACK=1 to see the full traceback instead.
"""
from __future__ import annotations

import json
import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from .errors import AwnError

app = typer.Typer(
    name="awncompress",
    help="Make pretrained Hugging Face models smaller: one brief fine-tune, every FFN width.\n\n"
    "Examples:\n\n"
    "  awncompress convert demo\n\n"
    "  awncompress convert ./my-model --data train.csv --widths 0.25,0.5,0.75\n\n"
    "  awncompress inspect out/nested",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@contextmanager
def _friendly_errors() -> Iterator[None]:
    """Turn awncompress errors into one line on stderr and exit code 1."""
    try:
        yield
    except AwnError as exc:
        if os.environ.get("AWNCOMPRESS_TRACEBACK"):
            raise
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted (a convert run continues with --resume)", err=True)
        raise typer.Exit(130) from None
    except OSError as exc:  # a path that cannot be read or written: say which, and why
        if os.environ.get("AWNCOMPRESS_TRACEBACK"):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


def _quiet_libraries(quiet: bool) -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # shard-writing bars are noise beside ours
    # force: each invocation logs to the stderr of that invocation (tests run many in one process).
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", force=True)


def parse_widths(text: Optional[str], what: str = "width", of: str = "d_ff") -> Optional[list[float]]:
    """'0.25,0.5' → [0.25, 0.5]; each a fraction (of d_ff, or of ``of``) in (0, 1]."""
    if text is None:
        return None
    try:
        widths = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what}s must be comma-separated fractions like 0.25,0.5, got {text!r}") from None
    bad = [w for w in widths if not 0.0 < w <= 1.0]
    if not widths or bad:
        raise typer.BadParameter(f"each {what} must be a fraction of {of} in (0, 1], got {text!r}")
    return widths


def _heads_for(heads: Optional[bool], flops: Optional[str]) -> Optional[bool]:
    """--heads/--no-heads as given; unset, FLOP targets turn heads on (FFN-only cuts stop at ~0.43
    of the FLOPs on MiniLM, so a user asking for FLOP targets is asking for heads)."""
    return True if heads is None and flops else heads


def _parse_sets(pairs: List[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set takes KEY=VALUE (e.g. train.lr=1e-4), got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _default_out(model: str) -> Path:
    return Path("awn-" + re.sub(r"[^A-Za-z0-9._-]+", "-", model.replace("builtin:", "")).strip("-"))


@app.command(no_args_is_help=True)
def convert(
    model_or_recipe: str = typer.Argument(..., help="A recipe name (demo, bert-base, smollm2), a recipe .yaml, a local model folder or a Hub id."),
    task: Optional[str] = typer.Option(None, help="text-classification or causal-lm (default: the recipe's, else text-classification)."),
    data: Optional[str] = typer.Option(None, help="Training data: .csv/.json/.jsonl/.parquet, a Hub dataset id (id:config[:split]) or builtin:NAME."),
    eval_data: Optional[str] = typer.Option(None, "--eval-data", help="Evaluation data (default: a seeded split of --data)."),
    text_column: Optional[str] = typer.Option(None, help="Column with the text."),
    text_pair_column: Optional[str] = typer.Option(None, help="Second text column, for sentence pairs."),
    label_column: Optional[str] = typer.Option(None, help="Column with the label."),
    widths: Optional[str] = typer.Option(None, help="Width fractions of d_ff to export, e.g. 0.25,0.5,0.75."),
    per_layer: Optional[bool] = typer.Option(None, "--per-layer/--no-per-layer", help="Also export the learned per-layer widths."),
    heads: Optional[bool] = typer.Option(None, "--heads/--no-heads", help="Also learn an order over attention heads and export FFN+heads cuts at FLOP targets (flops-<t>/); off by default, on with --flops."),
    flops: Optional[str] = typer.Option(None, help="Fractions of the dense FLOPs to export as FFN+heads cuts, e.g. 0.2,0.3; turns --heads on unless --no-heads is given (default with --heads: 0.2,0.3,0.4)."),
    steps: Optional[int] = typer.Option(None, min=1, help="AWN fine-tune steps."),
    dense_steps: Optional[int] = typer.Option(None, min=1, help="Steps of the dense stage that trains an untrained head."),
    max_train_examples: Optional[int] = typer.Option(None, min=1, help="Use at most this many training examples."),
    max_eval_examples: Optional[int] = typer.Option(None, min=1, help="Use at most this many evaluation examples."),
    mode: Optional[str] = typer.Option(None, help="Training mode: stochastic (sample widths from the learned profile, the default) or deterministic."),
    metric: Optional[str] = typer.Option(None, help="Metric: a shipped one (accuracy, f1, ...), or one whose code you trust to run (a local script, a Hub metric)."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    set_: List[str] = typer.Option([], "--set", help="Override any recipe field: --set train.lr=1e-4 (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: the recipe's, else awn-<model>)."),
    budget: Optional[float] = typer.Option(None, min=0.1, help="Minutes the whole run should take: fine-tune steps are scaled to fit what a dry pass measured."),
    plan: bool = typer.Option(False, "--plan", help="Print the stages, steps, batch, memory and estimated time per stage (from a dry pass), write nothing."),
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

      awncompress convert demo --flops 0.25,0.3              # FFN+heads cuts (turns --heads on)
    """
    from .config.recipe import apply_overrides, default_recipe, is_recipe, list_recipes, load_recipe

    parsed_widths = parse_widths(widths)
    sets = _parse_sets(set_)
    _quiet_libraries(quiet)
    with _friendly_errors():
        if resume and overwrite:
            raise AwnError("--resume continues a run and --overwrite replaces it: give one of them")
        named = is_recipe(model_or_recipe)
        if not named and data is None and "data.train" not in sets and not Path(model_or_recipe).expanduser().exists():
            raise AwnError(f"{model_or_recipe!r} is not a shipped recipe ({', '.join(list_recipes())}), a recipe .yaml or a "
                           "local model folder; as a Hugging Face Hub model id it also needs --data")
        recipe = load_recipe(model_or_recipe) if named else default_recipe(model_or_recipe, task or "text-classification")
        overrides: dict[str, object] = {
            "task": task, "data.train": data, "data.eval": eval_data, "data.text_column": text_column,
            "data.text_pair_column": text_pair_column, "data.label_column": label_column, "export.widths": parsed_widths,
            "export.per_layer": per_layer, "awn.heads": _heads_for(heads, flops), "export.flops": parse_widths(flops, "FLOP target", "the dense FLOPs"), "train.steps": steps, "dense.steps": dense_steps,
            "data.max_train_examples": max_train_examples, "data.max_eval_examples": max_eval_examples,
            "train.mode": mode, "seed": seed, "evaluate.metric": metric, **sets,
        }
        recipe = apply_overrides(recipe, overrides)
        if recipe.data.train is None:
            raise AwnError("no training data: pass --data (a file, a Hub dataset id or builtin:NAME)")
        target = (out or (Path(recipe.out) if recipe.out else _default_out(recipe.model))).expanduser()
        from .run.convert import plan_convert, run_convert

        trusted = sets.get("evaluate.metric", metric)  # named on this command line: the user asked for its code
        inputs = [Path(model_or_recipe)] if named and Path(model_or_recipe).is_file() else []
        if plan:
            typer.echo(plan_convert(recipe, target, overwrite=overwrite, trusted_metric=trusted, budget=budget,
                                    inputs=inputs).text())
            return
        result = run_convert(recipe, target, resume=resume, overwrite=overwrite, quiet=quiet, evaluate=not no_eval,
                             trusted_metric=trusted, budget=budget, inputs=inputs)
    if not quiet:
        typer.echo(f"wrote {result.out}: " + ", ".join(p.name for p in result.exports.values()))
        if result.report is not None:
            typer.echo(f"report: {result.out / 'report.md'}")


@app.command(no_args_is_help=True)
def evaluate(
    out: Path = typer.Argument(..., help="An output folder written by `awncompress convert`."),
    data: Optional[str] = typer.Option(None, help="Evaluation data (default: the run's own eval data)."),
    train_data: Optional[str] = typer.Option(None, "--train-data", help="The run's training data (calibration, per-width fine-tunes), when it lies outside OUT."),
    model: Optional[str] = typer.Option(None, help="The run's original model, when OUT has no dense/ and it lies outside OUT."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated registered methods, e.g. awn,wina,wina-dynamic (default: the run's recipe's)."),
    metric: Optional[str] = typer.Option(None, help="Metric (default: the run's); a non-shipped one runs its code, so only this flag loads it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Re-evaluate the exported widths of a convert run (reloaded from disk) and rewrite its report.

    OUT/recipe.yaml says which model and data the run used; awncompress reads local files it names
    only inside OUT. Files outside OUT are read when you name them here (--model, --train-data,
    --data), and a metric that is not shipped runs only when you name it with --metric.

    Examples:

      awncompress evaluate awn-demo

      awncompress evaluate awn-demo --data test.csv --methods awn,wina

      awncompress evaluate awn-mine --train-data train.csv --data test.csv --model ./my-model
    """
    _quiet_libraries(quiet)
    with _friendly_errors():
        from .run.reevaluate import reevaluate

        reevaluate(out, data=data, train_data=train_data, model=model, metric=metric,
                   methods=methods.split(",") if methods else None, quiet=quiet)
    if not quiet:
        typer.echo(f"report: {out / 'report.md'}")


@app.command(no_args_is_help=True)
def report(out: Path = typer.Argument(..., help="A folder holding report.json.")) -> None:
    """Re-render report.md, report.csv and curve.png from report.json.

    Example:

      awncompress report awn-demo
    """
    with _friendly_errors():
        from .report.files import render_report

        render_report(out)
    typer.echo(f"report: {out / 'report.md'}")


@app.command(no_args_is_help=True)
def inspect(path: Path = typer.Argument(..., help="An export folder (nested, uniform or per-layer).")) -> None:
    """Show an export's widths and, for nested exports, the learned per-layer profile.

    Example:

      awncompress inspect awn-demo/nested
    """
    with _friendly_errors():
        from .checkpoint.provenance import read_provenance

        record = read_provenance(path)
    typer.echo(f"{path}: {record['format']} export of {record.get('source_model')} ({record.get('model_type', '?')}), "
               f"d_ff {record['d_ff']}")
    typer.echo(f"layer widths: {record['layer_widths']}")
    if record.get("layer_heads"):
        typer.echo(f"attention heads: {record['layer_heads']} of {record['full_heads']} (loads with {record.get('loads_with', 'awncompress')})"
                   + (f"; FLOP target {record['flops_target']:g}" if record.get("flops_target") else ""))
    profile = record.get("profile")
    if profile and profile.get("active_widths"):
        typer.echo(f"learned profile (k = {profile.get('k', '?')}):")
        typer.echo("  layer  rate·d_ff  active width")
        rates = profile.get("normalised_rates") or [float("nan")] * len(profile["active_widths"])
        for i, (rate, width) in enumerate(zip(rates, profile["active_widths"])):
            typer.echo(f"  {i:5d}  {rate:9.3f}  {width:6d} ({width / record['d_ff']:.0%})")
    if record.get("width_table"):
        typer.echo("width table: " + json.dumps(record["width_table"]))


@app.command("export", no_args_is_help=True)
def export_cmd(
    nested: Path = typer.Argument(..., help="A nested export folder."),
    widths: Optional[str] = typer.Option(None, help="Width fractions to materialise, e.g. 0.3,0.6."),
    learned: bool = typer.Option(False, help="Also write the learned per-layer widths as a per-layer export."),
    multiple: Optional[int] = typer.Option(None, min=1, help="Round widths to a multiple of this (e.g. 64)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write width-<w>/ (and per-layer/) into."),
    overwrite: bool = typer.Option(False, help="Replace existing width folders."),
) -> None:
    """Materialise uniform (and per-layer) exports from a nested checkpoint.

    Examples:

      awncompress export awn-demo/nested --widths 0.3,0.6 --out more-widths

      awncompress export awn-demo/nested --learned --out learned
    """
    parsed = parse_widths(widths) or []
    if not parsed and not learned:
        raise typer.BadParameter("give --widths and/or --learned")
    _quiet_libraries(True)
    with _friendly_errors():
        from .checkpoint.export import export_per_layer, export_uniform
        from .checkpoint.layout import width_dir
        from .checkpoint.load import load_pretrained
        from .checkpoint.provenance import read_provenance

        record = read_provenance(nested)
        if record["format"] != "nested":
            raise AwnError(f"{nested} is a {record['format']} export; `export` needs a nested one")
        model = load_pretrained(nested)
        tokenizer = _tokenizer_or_none(nested)
        written = [export_uniform(model, width_dir(out, w), w, tokenizer=tokenizer, source=record.get("source_model"),
                                  multiple=multiple, overwrite=overwrite) for w in parsed]
        if learned:
            widths_learned = (record.get("profile") or {}).get("active_widths")
            if not widths_learned:
                raise AwnError(f"{nested} records no learned per-layer widths")
            written.append(export_per_layer(model, out / "per-layer", widths_learned, tokenizer=tokenizer,
                                            source=record.get("source_model"), overwrite=overwrite))
    typer.echo("wrote " + ", ".join(str(p) for p in written))


def _tokenizer_or_none(folder: Path):
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError):
        return None


@app.command(no_args_is_help=True)
def score(
    model: str = typer.Argument(..., help="A local model folder, a Hub id or builtin:NAME."),
    data: str = typer.Option(..., help="Calibration data (same forms as convert --data)."),
    task: str = typer.Option("text-classification", help="text-classification or causal-lm."),
    scorer: List[str] = typer.Option(["wina"], help="wina, activation, magnitude or random (repeatable)."),
    text_column: str = typer.Option("text", help="Column with the text."),
    batches: int = typer.Option(8, min=1, help="Calibration batches."),
    batch_size: int = typer.Option(32, min=1, help="Calibration batch size."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the scores as safetensors (layer.<i>.<scorer>)."),
    overwrite: bool = typer.Option(False, help="Replace --out if it exists."),
) -> None:
    """Score every FFN neuron of a model and show how concentrated importance is per layer.

    For each layer: the share of the total score held by the top 12.5 / 25 / 50 % of neurons
    (higher = truncation by this score loses less).

    Examples:

      awncompress score ./my-model --data train.csv

      awncompress score builtin:minilm --data builtin:rotten-tomatoes --scorer wina --scorer magnitude --out scores.safetensors
    """
    _quiet_libraries(True)
    with _friendly_errors():
        from safetensors.torch import save

        from .model.families import find_ffns
        from .files.atomic import atomic_write, check_file_writable
        from .data.tokenized import DataConfig, load_task_data
        from .run.bundle import calibration_batches, load_model
        from .model.scoring import check_scorer, score_neurons

        for name in scorer:
            check_scorer(name)
        if out is not None:
            check_file_writable(out, overwrite)
        loaded, tokenizer, _ = load_model(model, task)
        task_data = load_task_data(DataConfig(task=task, train=data, text_column=text_column), tokenizer)
        calibration = calibration_batches(task_data, batches, batch_size)
        blocks = find_ffns(loaded)
        tensors = {}
        for name in scorer:
            scores = score_neurons(loaded, blocks, name, calibration)
            typer.echo(f"{name}: share of the total score in the top 12.5 / 25 / 50 % of neurons")
            for i, s in enumerate(scores):
                ranked = s.clamp_min(0).sort(descending=True).values
                total = float(ranked.sum()) or 1.0
                shares = [float(ranked[: max(1, round(f * len(ranked)))].sum()) / total for f in (0.125, 0.25, 0.5)]
                typer.echo(f"  layer {i:2d}: " + " / ".join(f"{x:.0%}" for x in shares))
                tensors[f"layer.{i}.{name}"] = s.contiguous()
        if out is not None:
            atomic_write(out, save(tensors))
            typer.echo(f"wrote {out}")


@app.command(no_args_is_help=False)
def recipes(name: Optional[str] = typer.Argument(None, help="Show this recipe's YAML.")) -> None:
    """List the shipped recipes, or print one.

    Examples:

      awncompress recipes

      awncompress recipes demo
    """
    with _friendly_errors():
        from .config.recipe import dump_recipe, list_recipes, load_recipe

        if name is None:
            for r in list_recipes():
                typer.echo(r)
        else:
            typer.echo(dump_recipe(load_recipe(name)), nl=False)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
