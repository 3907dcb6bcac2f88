"""The record of what awncompress wrote into a folder, so that ``--overwrite`` removes only that.

Every folder awncompress builds (an export, a checkpoint, the dense copy) holds a hidden
``.awncompress-written.json`` listing, relative to it, the files awncompress wrote there; files it
writes one at a time into an output folder (``recipe.yaml``, the report) are added to that
folder's list. Replacing a folder removes the listed files and keeps everything else (a user's
notes, a database someone put inside), with one line saying what was kept; a folder with no
record at all is not awncompress's and is never replaced.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Union

from ..errors import OutputExistsError

MANIFEST = ".awncompress-written.json"
MARK = "awncompress"
log = logging.getLogger("awncompress")


def _read(folder: Path) -> Optional[list[str]]:
    """The names ``folder``'s record lists; None when it has no readable record (missing, a link, garbled)."""
    file = folder / MANIFEST
    if not file.is_file() or file.is_symlink():
        return None
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.loads(fh.read(16 << 20))
    except (OSError, ValueError, RecursionError):
        return None
    files = data.get("files") if isinstance(data, dict) and data.get("written_by") == MARK else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return files


def _write(folder: Path, names: Iterable[str]) -> None:
    text = json.dumps({"written_by": MARK, "files": sorted(set(names))}, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # readable like the files it lists (mkstemp makes it owner-only)
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def has_manifest(folder: Path) -> bool:
    """Whether ``folder`` (a real folder, not a link) holds a readable record of what awncompress wrote."""
    return folder.is_dir() and not folder.is_symlink() and _read(folder) is not None


def _entries(folder: Path) -> list[Path]:
    """Every entry under ``folder`` that is not a folder (files, links, FIFOs ...); links are not followed."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root)
        found += [base / name for name in files]
        found += [base / name for name in dirs if (base / name).is_symlink()]
    return found


def write_manifest(folder: Path) -> None:
    """Record every file now under ``folder`` as awncompress's (called on a folder it just built)."""
    _write(folder, [p.relative_to(folder).as_posix() for p in _entries(folder) if p.name != MANIFEST])


def record_written(folder: Path, *names: str) -> None:
    """Add ``names`` (relative to ``folder``) to the folder's record."""
    _write(folder, [*(_read(folder) or []), *names])


def owned_files(folder: Path) -> set[Path]:
    """The files under ``folder`` that some record in it lists (its own and its subfolders')."""
    owned: set[Path] = set()
    for root, dirs, files in os.walk(folder, followlinks=False):
        if MANIFEST in files:
            base = Path(root)
            owned |= {base / name for name in _read(base) or [] if ".." not in Path(name).parts}
            owned.add(base / MANIFEST)
    return owned


def unrecorded(folder: Path) -> list[Path]:
    """The entries under ``folder`` that awncompress did not write (no record lists them)."""
    owned = owned_files(folder)
    return sorted(p for p in _entries(folder) if p not in owned)


_told: set[Path] = set()  # kept files this command has already named (the run lock clears it)


def forget_kept() -> None:
    """A new command starts: it names every file it keeps again."""
    _told.clear()


def say_kept(folder: Path, kept: list[Path]) -> None:
    """Log one line naming the files kept because awncompress did not write them (each named once)."""
    new = [p for p in kept if p not in _told]
    _told.update(new)
    if new:
        shown = ", ".join(str(p.relative_to(folder)) for p in new[:5]) + (
            f" and {len(new) - 5} more" if new[5:] else ""
        )
        log.warning("kept %d file(s) in %s that awncompress did not write: %s", len(new), folder, shown)


def only_kept(folder: Path) -> bool:
    """Whether ``folder`` is one awncompress wrote and emptied of its own files (others' files remain)."""
    return has_manifest(folder) and owned_files(folder) == {folder / MANIFEST}


def remove_written(folder: Union[str, Path], *, say: bool = True) -> list[Path]:
    """Delete what the records under ``folder`` list and the folders that leaves empty (``folder``
    too); keep everything else and return it (``say``: log one line naming it)."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return []
    owned, entries = owned_files(folder), _entries(folder)
    kept = sorted(p for p in entries if p not in owned)
    recorded = [Path(root) for root, _, files in os.walk(folder, followlinks=False) if MANIFEST in files]
    emptied = {folder}
    for path in entries:  # only entries found without following links: a record cannot point elsewhere
        if path in owned:
            path.unlink(missing_ok=True)
            emptied.update(p for p in path.parents if p.is_relative_to(folder))
    for root in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
        try:
            os.rmdir(root)  # a folder awncompress's files were in goes once empty (an empty one of yours stays)
        except OSError:
            pass
    for root in recorded:
        if root.is_dir():  # it holds others' files: still awncompress's folder, now with none of its own
            _write(root, [])
    if kept and say:
        say_kept(folder, kept)
    return kept


def check_owned(folder: Path) -> None:
    """OutputExistsError unless ``folder`` holds a record of what awncompress wrote there."""
    if not has_manifest(folder):
        raise OutputExistsError(
            f"refusing to replace {folder}: it is not a folder awncompress wrote (no {MANIFEST}); awncompress "
            "replaces only its own outputs (remove it yourself, or choose another output folder)"
        )


def merge_into(tmp: Path, out: Path) -> list[Path]:
    """Replace what awncompress wrote in ``out`` by the freshly built ``tmp``, keeping the files it did
    not write (returned). A kept file at a name ``tmp`` also has is an error, before anything moves."""
    kept = unrecorded(out)
    clash = [p for p in kept if (tmp / p.relative_to(out)).exists() or (tmp / p.relative_to(out)).is_symlink()]
    if clash:
        raise OutputExistsError(
            f"{clash[0]} was not written by awncompress and would be replaced; move it away and run again"
        )
    remove_written(out, say=False)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(_entries(tmp), key=lambda p: p.name == MANIFEST):  # the record moves last
        target = out / path.relative_to(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    shutil.rmtree(tmp, ignore_errors=True)
    return kept
