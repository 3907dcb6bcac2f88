"""Write a folder all at once: build it in a hidden temp dir beside the target, then rename.

A crash or Ctrl-C mid-write leaves no half folder under the target name.
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


@contextmanager
def atomic_dir(out: Union[str, Path], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp dir; on success it replaces ``out``, on error it is removed."""
    out = check_writable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
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
