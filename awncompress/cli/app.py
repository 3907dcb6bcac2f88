"""The `awncompress` typer app that every command module registers on.

Usage errors exit 2 (typer.BadParameter); problems found while running exit 1 with one line on
stderr; set AWNCOMPRESS_TRACEBACK=1 to see the full traceback instead.
"""

from __future__ import annotations

import typer

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
