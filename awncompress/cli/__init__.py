"""The `awncompress` command line (typer).

Usage errors exit 2 (typer.BadParameter); problems found while running exit 1 with one line on
stderr; set AWNCOMPRESS_TRACEBACK=1 to see the full traceback instead. Each command lives in its
own module and registers itself on :data:`app` when imported, in the order ``--help`` lists them.
"""

from __future__ import annotations

import signal

from . import convert, evaluate, exports, recipes  # noqa: F401  (registers the commands, in this order)
from .app import app
from .common import parse_widths


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C: temp folders and the run lock are removed


def main() -> None:
    """Console entry point; SIGTERM and SIGHUP stop a command as Ctrl-C does."""
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)
    app()


__all__ = ["app", "main", "parse_widths"]
