"""Paths that a file or folder names must stay inside that folder.

A folder someone sends you (an export, a convert output) must not make awncompress read or write
anywhere else: file names read from metadata may not climb out (``..``, absolute paths), and an
entry that is a symbolic link may not resolve outside the folder, except in a Hugging Face cache
snapshot, whose files are links into the same repository's ``blobs/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import NotAnExportError, OutputExistsError


def _hub_blob(folder: Path, target: Path) -> bool:
    """Whether ``target`` is a blob of the Hugging Face cache repository ``folder`` is a snapshot of."""
    parts = folder.resolve().parts
    if "snapshots" not in parts:
        return False
    repo = Path(*parts[: parts.index("snapshots")])
    return target.is_relative_to(repo / "blobs")


def contained(folder: Path, name: str, what: str) -> Path:
    """``folder / name`` after checking it stays inside ``folder`` (see the module docstring)."""
    if os.path.isabs(name) or os.path.normpath(name).split(os.sep)[0] == "..":
        raise NotAnExportError(f"{what} names {name!r}, outside {folder}; refusing to read it")
    path = folder / name
    target = path.resolve()
    if not target.is_relative_to(folder.resolve()) and not _hub_blob(folder, target):
        raise NotAnExportError(f"{path} is a link to {target}, outside {folder}; refusing to read it")
    return path


def check_entries(folder: Path, what: str) -> None:
    """Every entry of ``folder`` stays inside it (no link leads elsewhere)."""
    for entry in folder.iterdir():
        contained(folder, entry.name, what)


def check_apart(target: Path, inputs: Iterable[Path], what: str = "output", inside_ok: bool = False) -> None:
    """OutputExistsError when writing ``target`` would replace or change what a command reads: it is
    one of ``inputs``, holds one, or (unless ``inside_ok``) lies inside one of them."""
    here = Path(os.path.realpath(target))
    for path in inputs:
        read = Path(os.path.realpath(path))
        if here == read or (here.is_relative_to(read) and not inside_ok) or read.is_relative_to(here):
            raise OutputExistsError(
                f"refusing to write {what} {target}: "
                + ("it is" if here == read else "it lies inside" if here.is_relative_to(read) else "it holds")
                + f" {path}, which this command reads"
            )
