"""Write a folder or a file all at once: build it in a hidden temp beside the target, then rename.

A crash or Ctrl-C mid-write leaves no half folder or file under the target name; a SIGKILL can
leave a hidden ``.<name>.tmp-*`` entry, which :func:`remove_temps` clears. A folder is replaced
only when the caller says it is one awncompress wrote (``owned``), and never when it is the current
directory or holds it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from ..errors import OutputExistsError, first_line
from .manifest import check_owned, merge_into, record_written, say_kept, unrecorded, write_manifest
from .readers import entry_kind

# What atomic_dir / atomic_write leave behind if killed: .<name>.tmp-XXXXXXXX, .<name>.old-XXXXXXXX,
# .<name>.XXXXXXXX.tmp (mkdtemp / mkstemp add random letters, digits or underscores)
TEMP_NAME = re.compile(r"^\..+\.(tmp|old)-[A-Za-z0-9_]+$|^\..+\.[A-Za-z0-9_]+\.tmp$")


def check_replaceable(out: Path, owned: Optional[Callable[[Path], bool]] = None) -> None:
    """Raise OutputExistsError unless the existing folder ``out`` may be written anew: not the
    current directory or a folder holding it, and (``owned`` given: a user-facing replacement) a
    folder ``owned`` accepts that records what awncompress wrote in it (only that is removed)."""
    here, target = Path.cwd().resolve(), out.resolve()
    if here == target or here.is_relative_to(target):
        raise OutputExistsError(f"refusing to replace {out}: it is the current directory or holds it")
    if owned is not None and not owned(out):
        raise OutputExistsError(
            f"refusing to replace {out}: it is not a folder awncompress wrote; awncompress replaces only "
            "its own outputs (remove it yourself, or choose another output folder)"
        )
    if owned is not None:
        check_owned(out)


def check_path(out: Path, what: str = "output") -> None:
    """OutputExistsError when ``out`` cannot be an output path at all: a link loop in it, a link
    as the output itself, or an entry that is not a regular file or folder (a FIFO, a device)."""
    try:
        os.stat(out)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputExistsError(f"{out}: {exc.strerror or exc}") from None
    if out.is_symlink():
        raise OutputExistsError(
            f"{out} is a symbolic link; awncompress does not write through links (remove the link, or give the "
            f"{what} it points to)"
        )
    kind = entry_kind(out)
    if kind is not None and kind != "a directory":
        raise OutputExistsError(f"{out} is {kind}; refusing to replace it")


def check_writable(out: Union[str, Path], overwrite: bool, owned: Optional[Callable[[Path], bool]] = None) -> Path:
    """``out`` as a Path if a folder may be written there: it does not exist, or ``overwrite`` and it
    may be replaced (see :func:`check_replaceable`); else OutputExistsError."""
    out = Path(out)
    check_path(out, "folder")
    if out.is_file():
        raise OutputExistsError(f"{out} is a file; the output must be a folder")
    if out.exists():
        if not overwrite:
            raise OutputExistsError(
                f"output directory {out} already exists; pass overwrite=True (--overwrite) to replace it"
            )
        check_replaceable(out, owned)
    return out


def check_file_writable(out: Union[str, Path], overwrite: bool, owned: Optional[Callable[[Path], bool]] = None) -> Path:
    """``out`` as a Path if a file may be written there: never over a folder, a link, a FIFO or a
    device; an existing file only with ``overwrite`` and (``owned`` given) when awncompress wrote it."""
    out = Path(out)
    if out.is_dir() and not out.is_symlink():
        raise OutputExistsError(f"{out} is a folder; the output is a file")
    check_path(out, "file")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --overwrite to replace it")
    if out.exists() and owned is not None and not owned(out):
        raise OutputExistsError(
            f"refusing to replace {out}: it is not a file awncompress wrote "
            "(remove it yourself, or choose another --out)"
        )
    return out


def write_failure(exc: BaseException, where: Path) -> OSError:
    """An OSError naming ``where`` for a failed write (safetensors reports a full disk as its own error)."""
    text = first_line(exc)
    code = errno.ENOSPC if "No space left" in text else errno.EIO
    return OSError(code, text, str(where))


def remove_temps(folder: Path) -> None:
    """Delete the hidden temp entries a killed atomic write left anywhere under ``folder``."""
    for path in sorted(folder.rglob(".*"), key=lambda p: len(p.parts), reverse=True):
        if TEMP_NAME.match(path.name) and path.exists():
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _shareable(path: Path, mode: int) -> None:
    """mkdtemp/mkstemp create owner-only entries; exports and reports are meant to be shared."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def atomic_write(path: Union[str, Path], data: Union[str, bytes], record: bool = False) -> None:
    """Write a file via a temp file beside it and a rename: readers never see half of it.
    ``record``: add it to its folder's record of what awncompress wrote (see manifest.py)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        _shareable(Path(tmp), 0o666)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if record:
        record_written(path.parent, path.name)


@contextmanager
def atomic_dir(
    out: Union[str, Path], overwrite: bool = False, owned: Optional[Callable[[Path], bool]] = None
) -> Iterator[Path]:
    """Yield a temp dir; on success it replaces ``out``, on error it is removed.

    The new folder records the files in it (see manifest.py). Replacing a folder that holds files
    awncompress did not write keeps them (one line says so): only its own files are replaced."""
    out = check_writable(out, overwrite, owned)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        _shareable(tmp, 0o777)
        write_manifest(tmp)
        if out.exists() and unrecorded(out):
            say_kept(out, merge_into(tmp, out))
        elif out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
