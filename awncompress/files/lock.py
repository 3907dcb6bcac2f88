"""The run lock: while one awncompress command writes a folder (or a file), no other may write it.

The lock file lives in a folder only this user can write, ``<temp>/awncompress-<uid>`` (``<temp>``:
``$TMPDIR``, else /tmp), created with mode 0700 and checked (a real folder, not a link, owned by
this user, private) before use. Someone else planting a link, a file
or a folder at that name makes awncompress stop with one line instead of following it. The lock
file itself is created with ``O_EXCL | O_NOFOLLOW`` (or, when a killed run left it, reopened with
``O_NOFOLLOW`` and checked to be this user's regular file), held with ``flock`` and removed when
the command ends; lock files that killed runs left are removed by the next command.

Temp folders a run needs outside its output (the dry pass's copy of the model) live in the same
private folder, one per run (:func:`run_temp_dir`), locked while the run uses them: a folder no
run holds was left by a killed run and is removed when the next one starts.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

from ..errors import AwnError
from .manifest import forget_kept

_FLAGS = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _private(folder: Path) -> Path:
    """``folder`` after making sure it is this user's private folder (created 0700 if missing)."""
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a folder"
    elif info.st_uid != os.geteuid():
        problem = f"belongs to user id {info.st_uid}, not you"
    elif info.st_mode & 0o077:
        os.chmod(folder, 0o700)  # our own folder: make it private again
    if problem:
        raise AwnError(
            f"the lock folder {folder} {problem}: someone else made it; remove it, "
            "or set TMPDIR to a folder of your own"
        )
    return folder


def lock_folder() -> Path:
    """This user's private folder of lock files and run temp folders (see the module docstring)."""
    return _private(Path(tempfile.gettempdir()) / f"awncompress-{os.geteuid()}")


def lock_path(target: Union[str, Path]) -> Path:
    """The lock file of ``target`` (a folder or a file), keyed by its absolute, link-free path."""
    resolved = os.path.realpath(os.path.abspath(os.path.expanduser(target)))
    return lock_folder() / (hashlib.sha256(resolved.encode()).hexdigest()[:40] + ".lock")


def _open(path: Path) -> int:
    """A descriptor of the lock file ``path``: created exclusively, or a leftover that is our regular file."""
    try:
        return os.open(path, _FLAGS | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise AwnError(f"the lock file {path} is a symbolic link; remove it") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise AwnError(f"the lock file {path} is not a regular file of yours; remove it")
    return fd


def _acquire(path: Path, target: Union[str, Path]) -> int:
    """Hold the lock at ``path``; AwnError if another command holds it."""
    for _ in range(100):
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AwnError(
                f"another awncompress run is writing {target}; wait for it to finish or choose another output"
            ) from None
        try:  # the file we locked must still be the one at the path (a finishing run removes it)
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise AwnError(f"could not take the lock {path}; try again")


def _remove_stale(folder: Path, keep: Path) -> None:
    """Remove lock files no command holds (a killed run's); a held one is left alone."""
    for entry in folder.glob("*.lock"):
        if entry == keep:
            continue
        try:
            fd = os.open(entry, _FLAGS)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(entry, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                entry.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)


@contextmanager
def run_lock(target: Union[str, Path]) -> Iterator[None]:
    """Hold the lock of ``target`` (a folder or a file) while a command writes it: a second command
    on the same target is refused at once with one line."""
    path = lock_path(target)
    fd = _acquire(path, target)
    forget_kept()  # each command names the files it keeps once
    try:
        _remove_stale(path.parent, path)
        yield
    finally:
        try:
            path.unlink()
        except OSError:
            pass
        os.close(fd)


@contextmanager
def run_temp_dir(prefix: str) -> Iterator[Path]:
    """A fresh temp folder of this run in the private folder, removed at the end; the folders of
    killed runs (no run holds their lock) are removed first."""
    folder = lock_folder()
    for stale in folder.glob(f"{prefix}-*"):
        try:
            fd = _acquire(lock_path(stale), stale)
        except AwnError:
            continue  # a live run's
        try:
            shutil.rmtree(stale, ignore_errors=True)
        finally:
            lock_path(stale).unlink(missing_ok=True)
            os.close(fd)
    tmp = folder / f"{prefix}-{os.getpid()}-{secrets.token_hex(6)}"
    with run_lock(tmp):  # held before the folder exists, so no cleaner takes it for a killed run's
        tmp.mkdir(mode=0o700)
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
