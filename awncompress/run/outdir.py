"""The output folder of a convert run: whether it may be written, replaced or resumed, and creating it.

Trust rules, in one place: ``--overwrite`` replaces only a convert output (the recipe.yaml a run
recorded, and a record of the files it wrote), removes only the files that record lists (others are
kept, with one line saying so), never the current directory or a folder holding it, never a folder
holding the model or data the run reads. ``--resume`` continues only the run recorded in the
folder's recipe.yaml. A run that fails on its first write leaves no folder behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..checkpoint.layout import (
    CHECKPOINTS_DIR,
    DENSE_DIR,
    FLOPS_DIR_PREFIX,
    NESTED_DIR,
    PER_LAYER_DIR_PREFIX,
    RECIPE_FILE,
    RECIPE_MARK,
    REPORT_FILES,
    WIDTH_DIR_PREFIX,
    is_run_output,
)
from ..config import Recipe, dump_recipe, load_recipe, set_fields
from ..data.sources import classify_source
from ..data.tokenized import dataset_fingerprint
from ..errors import AwnError, OutputExistsError
from ..files.atomic import atomic_write, check_file_writable, check_path, check_replaceable, remove_temps
from ..files.lock import run_lock
from ..files.manifest import remove_written
from ..files.paths import contained
from ..version import __version__

_RUN_PREFIXES = (WIDTH_DIR_PREFIX, PER_LAYER_DIR_PREFIX, FLOPS_DIR_PREFIX)


def _local_inputs(recipe: Recipe, named: Iterable[Path]) -> Iterator[Path]:
    """The local paths a run reads: its model folder, data files and the files named on its command
    line (a recipe file)."""
    yield from named
    model = Path(recipe.model).expanduser()
    if model.exists():
        yield model
    for spec in (recipe.data.train, recipe.data.eval):
        if spec and not spec.startswith("builtin:"):
            source = classify_source(spec)
            if source.kind == "file":
                yield Path(source.name)


def _check_parent(out: Path) -> None:
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputExistsError(f"cannot create {out}: {ancestor}: Not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputExistsError(f"cannot create {out}: {ancestor}: Permission denied")


def _check_entries(out: Path) -> None:
    """A link, FIFO or device where the run will write (a report file, dense/, nested/, width-*/ ...) is
    refused now, before the run, not when the stage that writes it is reached."""
    if not out.is_dir() or out.is_symlink():
        return
    for entry in out.iterdir():
        name = entry.name
        if name in (RECIPE_FILE, *REPORT_FILES):
            check_file_writable(entry, overwrite=True)
        elif name in (DENSE_DIR, NESTED_DIR, CHECKPOINTS_DIR) or name.startswith(_RUN_PREFIXES):
            check_path(entry, "folder")


def check_output(out: Path, recipe: Recipe, *, resume: bool, overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Raise an AwnError now, before any work, if the run may not write (or resume in) ``out``.

    ``inputs``: more files the run reads (a recipe file), which ``out`` may not hold either.
    """
    check_path(out, "folder")
    if out.is_file():
        raise OutputExistsError(f"{out} is a file; the output must be a folder")
    target = out.resolve()
    for path in _local_inputs(recipe, inputs):
        if path.resolve() == target or path.resolve().is_relative_to(target):
            raise OutputExistsError(f"refusing to write into {out}: it holds {path}, which this run reads")
    _check_entries(out)
    if resume:
        if not (out / CHECKPOINTS_DIR).is_dir():
            raise AwnError(f"nothing to resume in {out}: it has no {CHECKPOINTS_DIR}/ folder")
        for stage in ("", "dense", "awn"):  # a checkpoint is read only inside OUT
            if os.path.lexists(out / CHECKPOINTS_DIR / stage):
                contained(out, os.path.join(CHECKPOINTS_DIR, stage), f"{out} (--resume)")
        return
    if out.exists():
        if not overwrite:
            hint = (
                "it holds an unfinished run: continue it with --resume, or replace it with --overwrite"
                if (out / CHECKPOINTS_DIR).is_dir()
                else "pass --overwrite to replace it"
            )
            raise OutputExistsError(f"output directory {out} already exists; {hint}")
        check_replaceable(out, is_run_output)
    _check_parent(out)


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold the run lock on ``out`` while a run writes it (see files/lock.py): a second command on
    the same folder is refused at once instead of being mixed into it."""
    with run_lock(out):
        yield


def inputs_fingerprint(location: str, datasets: Iterable[Any]) -> str:
    """A hash of what a run reads: the tokenized data sets (:func:`~awncompress.data.tokenized.dataset_fingerprint`)
    and the model's config and weight files' sizes and headers. ``--resume`` refuses to continue when it changed."""
    digest = hashlib.sha256()
    for dataset in datasets:
        digest.update(dataset_fingerprint(dataset).encode())
    folder = Path(location)
    if folder.is_dir():
        for path in sorted(folder.glob("*.safetensors")) + [folder / "config.json"]:
            if path.is_file():
                digest.update(f"{path.name}:{path.stat().st_size}".encode())
                with open(path, "rb") as fh:
                    digest.update(fh.read(1 << 16))
    return "sha256:" + digest.hexdigest()


def _flat(data: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        flat.update(_flat(value, name + ".") if isinstance(value, dict) else {name: value})
    return flat


def check_resume(out: Path, recipe: Recipe) -> Recipe:
    """The run recorded in ``out`` if every setting ``recipe`` sets matches it (settings it leaves
    out were derived when the run started, and are taken from the record); else an AwnError naming
    the differing keys."""
    recorded_file = out / RECIPE_FILE
    if not recorded_file.is_file():
        raise AwnError(f"{out} has {CHECKPOINTS_DIR}/ but no {RECIPE_FILE}: not a run awncompress can resume")
    recorded = load_recipe(recorded_file)
    want, have = _flat(set_fields(recipe)), _flat(recorded.to_dict())
    differ = [
        f"{k} ({have.get(k)!r} → {v!r})" for k, v in want.items() if not k.startswith("derived") and have.get(k) != v
    ]
    if differ:
        raise AwnError(
            f"--resume continues the run recorded in {recorded_file}, but these settings differ: "
            f"{', '.join(differ)}; resume with the same settings, or start a new --out"
        )
    return recorded


def begin_output(out: Path, recipe: Recipe, *, resume: bool) -> None:
    """Create (or replace) ``out`` and record the recipe; a resumed run keeps its recipe.yaml.

    Temp entries a killed run left are removed. If this first write fails, a folder this call made
    is removed again, so nothing is left behind.
    """
    made = not out.exists()
    try:
        if not resume and out.exists():
            remove_written(out)  # check_output made sure it is a convert output; others' files are kept
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            atomic_write(
                out / RECIPE_FILE,
                f"{RECIPE_MARK} {__version__}: the recipe this run ran (--resume compares it)\n" + dump_recipe(recipe),
                record=True,
            )
        remove_temps(out)
    except BaseException:
        if made:
            shutil.rmtree(out, ignore_errors=True)
        else:
            remove_written(out, say=False)
        raise
