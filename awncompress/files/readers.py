"""Reading what a user or a folder gives: only regular files, and YAML/JSON with a depth and size limit.

A FIFO, a device or a socket under a file's name would hang a reader (``open`` on a FIFO waits for
a writer) or never end (``/dev/zero``); a file nested thousands of levels deep would exhaust
Python's recursion. Every reader here checks the entry with ``stat`` before opening it, opens it
without blocking and, for the final name, without following a link (a link is resolved first, so
a Hugging Face cache snapshot still reads), and checks the opened descriptor again: an entry
swapped between the two checks is refused too. Each failure is one line naming the file.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable, Optional, Union

import yaml

from ..errors import AwnError

MAX_DEPTH = 64  # nesting levels of a YAML or JSON document (a recipe has 3, awncompress.json 4)
MAX_TEXT_BYTES = 64 << 20  # recipes, records, configs and indexes are kilobytes to a few megabytes
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def entry_kind(path: Union[str, Path]) -> Optional[str]:
    """None when ``path`` is a regular file (or a link to one) or does not exist; else what it is
    ("a FIFO (named pipe)", "a directory", ...). A link loop or an unreadable entry says so."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror or type(exc).__name__})"
    return None if stat.S_ISREG(mode) else _kind(mode)


def check_regular(path: Union[str, Path], what: str, error: Callable[[str], Exception] = AwnError) -> Path:
    """``path`` if it is a regular file (or a link to one); else ``error`` naming what it is. Use it
    before handing a path to a library that opens it itself (safetensors, pandas, transformers)."""
    path = Path(path)
    kind = entry_kind(path)
    if kind is not None:
        raise error(f"{what} {path} is {kind}, not a regular file; refusing to read it")
    return path


def open_regular(path: Union[str, Path], what: str, error: Callable[[str], Exception] = AwnError) -> int:
    """A read-only descriptor of the regular file ``path`` (see the module docstring); the caller closes it."""
    path = Path(path)
    check_regular(path, what, error)
    real = os.path.realpath(path)
    before = os.stat(real)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(real, flags)
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise error(f"{what} {path} changed while it was opened ({_kind(after.st_mode)}); refusing to read it")
    os.set_blocking(fd, True)
    return fd


def read_bytes(
    path: Union[str, Path], what: str, limit: int = MAX_TEXT_BYTES, error: Callable[[str], Exception] = AwnError
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them (more is an error)."""
    with os.fdopen(open_regular(path, what, error), "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise error(f"{what} {path} is larger than {limit:,} bytes; refusing to read it")
    return data


def read_text(
    path: Union[str, Path], what: str, limit: int = MAX_TEXT_BYTES, error: Callable[[str], Exception] = AwnError
) -> str:
    """The UTF-8 text of the regular file ``path`` (see :func:`read_bytes`)."""
    data = read_bytes(path, what, limit, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text: {exc}") from None


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings not counted)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def parse_json(text: str, where: str, error: Callable[[str], Exception] = AwnError, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that refuses, in one line, a document nested deeper than ``max_depth``."""
    if json_depth(text) > max_depth:
        raise error(f"{where} nests deeper than {max_depth} levels; refusing to read it")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise error(f"{where} is not valid JSON: {exc}") from None


def load_json(
    path: Union[str, Path], what: str, error: Callable[[str], Exception] = AwnError, limit: int = MAX_TEXT_BYTES
) -> Any:
    """The JSON document in the regular file ``path``, its size and depth bounded."""
    return parse_json(read_text(path, what, limit, error), f"{what} {path}", error)


def yaml_depth(text: str) -> int:
    """How deeply the collections of a YAML text nest, from its events (the parser does not recurse)."""
    depth = deepest = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return deepest


def parse_yaml(text: str, where: str, error: Callable[[str], Exception] = AwnError, max_depth: int = MAX_DEPTH) -> Any:
    """``yaml.safe_load`` that refuses, in one line, a document nested deeper than ``max_depth``."""
    try:
        if yaml_depth(text) > max_depth:
            raise error(f"{where} nests deeper than {max_depth} levels; refusing to read it")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise error(f"{where} nests too deeply; refusing to read it") from None


# The small JSON files a model folder's loaders parse (tokenizer.json is parsed by the tokenizers
# library, which limits its own depth).
MODEL_JSON = (
    "config.json",
    "generation_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors.index.json",
    "awncompress.json",
)


def check_folder_files(folder: Path, what: str, error: Callable[[str], Exception] = AwnError) -> None:
    """Every entry of a model or export folder is a folder or a regular file (a FIFO would hang the
    loader, a device never end), and its small JSON files are bounded in size and depth."""
    for entry in sorted(Path(folder).iterdir()):
        kind = entry_kind(entry)
        if kind is not None and kind != "a directory":
            raise error(f"{what} {folder}: {entry.name} is {kind}, not a regular file; refusing to read it")
    for name in MODEL_JSON:
        if (Path(folder) / name).is_file():
            load_json(Path(folder) / name, what, error, limit=16 << 20)
