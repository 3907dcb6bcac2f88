"""Write a folder or a file all at once: build it in a hidden temp beside the target, then rename.

A crash or Ctrl-C mid-write leaves no half folder or file under the target name.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

from .errors import OutputExistsError


def check_writable(out: Union[str, Path], overwrite: bool) -> Path:
    """Raise OutputExistsError if ``out`` exists and ``overwrite`` is False."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output directory {out} already exists; pass overwrite=True (--overwrite) to replace it")
    return out


def _shareable(path: Path, mode: int) -> None:
    """mkdtemp/mkstemp create owner-only entries; exports and reports are meant to be shared."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def atomic_write(path: Union[str, Path], data: Union[str, bytes]) -> None:
    """Write a file via a temp file beside it and a rename: readers never see half of it."""
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


@contextmanager
def atomic_dir(out: Union[str, Path], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp dir; on success it replaces ``out``, on error it is removed."""
    out = check_writable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        _shareable(tmp, 0o777)
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
