"""`awncompress evaluate` and `awncompress report`: measure a convert output again, redraw its report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app
from .common import friendly_errors, quiet_libraries


@app.command(no_args_is_help=True)
def evaluate(
    out: Path = typer.Argument(..., help="An output folder written by `awncompress convert`."),
    data: Optional[str] = typer.Option(None, help="Evaluation data (default: the run's own eval data)."),
    train_data: Optional[str] = typer.Option(
        None,
        "--train-data",
        help="The run's training data (calibration, per-width fine-tunes), when it lies outside OUT.",
    ),
    model: Optional[str] = typer.Option(
        None, help="The run's original model, when OUT has no dense/ and it lies outside OUT."
    ),
    methods: Optional[str] = typer.Option(
        None, help="Comma-separated registered methods, e.g. awn,wina,wina-dynamic (default: the run's recipe's)."
    ),
    metric: Optional[str] = typer.Option(
        None, help="Metric (default: the run's); a non-shipped one runs its code, so only this flag loads it."
    ),
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
    quiet_libraries(quiet)
    with friendly_errors():
        from ..files.lock import run_lock
        from ..run.reevaluate import reevaluate

        with run_lock(out):
            reevaluate(
                out,
                data=data,
                train_data=train_data,
                model=model,
                metric=metric,
                methods=methods.split(",") if methods else None,
                quiet=quiet,
            )
    if not quiet:
        typer.echo(f"report: {out / 'report.md'}")


@app.command(no_args_is_help=True)
def report(out: Path = typer.Argument(..., help="A folder holding report.json.")) -> None:
    """Re-render report.md, report.csv and curve.png from report.json.

    Example:

      awncompress report awn-demo
    """
    with friendly_errors():
        from ..files.lock import run_lock
        from ..report.files import render_report

        with run_lock(out if out.is_dir() else out.parent):
            render_report(out)
    typer.echo(f"report: {out / 'report.md'}")
