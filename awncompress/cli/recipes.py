"""`awncompress recipes`: list or print the shipped recipes."""

from __future__ import annotations

from typing import Optional

import typer

from .app import app
from .common import friendly_errors


@app.command(no_args_is_help=False)
def recipes(name: Optional[str] = typer.Argument(None, help="Show this recipe's YAML.")) -> None:
    """List the shipped recipes, or print one.

    Examples:

      awncompress recipes

      awncompress recipes demo
    """
    with friendly_errors():
        from ..config import dump_recipe, list_recipes, load_recipe

        if name is None:
            for r in list_recipes():
                typer.echo(r)
        else:
            typer.echo(dump_recipe(load_recipe(name)), nl=False)
