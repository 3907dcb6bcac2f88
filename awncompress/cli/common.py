"""What every command shares: one-line errors, quiet libraries, and parsing of list options."""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from ..errors import AwnError, MainProcessFailed


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn awncompress errors into one line on stderr and exit code 1."""
    try:
        yield
    except MainProcessFailed:  # under a launcher: the main process has printed why
        raise typer.Exit(1) from None
    except AwnError as exc:
        if os.environ.get("AWNCOMPRESS_TRACEBACK"):
            raise
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt as exc:
        typer.echo(
            f"interrupted: {exc}" if str(exc) else "interrupted (a convert run continues with --resume)", err=True
        )
        raise typer.Exit(130) from None
    except OSError as exc:  # a path that cannot be read or written: say which, and why
        if os.environ.get("AWNCOMPRESS_TRACEBACK"):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


def quiet_libraries(quiet: bool) -> None:
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


def heads_for(heads: Optional[bool], flops: Optional[str]) -> Optional[bool]:
    """--heads/--no-heads as given; unset, FLOP targets turn heads on (FFN-only cuts stop at ~0.43
    of the FLOPs on MiniLM, so a user asking for FLOP targets is asking for heads)."""
    return True if heads is None and flops else heads


def parse_sets(pairs: List[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--set takes KEY=VALUE (e.g. train.lr=1e-4), got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def default_out(model: str) -> Path:
    return Path("awn-" + re.sub(r"[^A-Za-z0-9._-]+", "-", model.replace("builtin:", "")).strip("-"))


def quant_option(help: str = "GGUF quantization: f16 (default), f32, q8_0 or q4_k_m.") -> Optional[str]:
    """``--quant``, shared by `convert` and `export`."""
    return typer.Option(None, help=help)


def llama_cpp_option(help: str) -> Optional[Path]:
    """``--llama-cpp DIR`` (or AWNCOMPRESS_LLAMA_CPP): the llama.cpp tree whose converter runs; the user
    names it, never a recipe, because its code runs."""
    return typer.Option(None, "--llama-cpp", envvar="AWNCOMPRESS_LLAMA_CPP", help=help)
