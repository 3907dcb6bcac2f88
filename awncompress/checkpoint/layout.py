"""The OUT/ folder a convert run writes, and finding and annotating the exports in it.

```
OUT/
  recipe.yaml        the recipe that ran
  dense/             the dense model whose head awncompress trained (reference, KD teacher, baselines)
  nested/            folded full-width weights, width table, learned profile
  width-<w>/         one uniform export per width fraction
  per-layer-<w>/     per-layer widths at the FFN FLOPs of width-<w> (with --per-layer)
  flops-<t>/         FFN width and attention heads cut to a fraction t of the dense FLOPs (with --heads)
  width-<w>-onnx/, width-<w>-gguf-<quant>/   each width for onnxruntime / llama.cpp (export.formats)
  checkpoints/       fine-tune checkpoints while a run is unfinished (removed at the end)
  report.json/.csv/.md, curve.png
```
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping, Optional, Union

from ..errors import NotAnExportError
from ..files.manifest import has_manifest, only_kept
from ..files.paths import contained
from .export import update_provenance
from .provenance import PROVENANCE_FILE, read_provenance, refuse_served

RECIPE_FILE = "recipe.yaml"
DENSE_DIR = "dense"
NESTED_DIR = "nested"
CHECKPOINTS_DIR = "checkpoints"
WIDTH_DIR_PREFIX = "width-"
PER_LAYER_DIR_PREFIX = "per-layer-"
FLOPS_DIR_PREFIX = "flops-"
_WIDTH_DIR = re.compile(rf"^{re.escape(WIDTH_DIR_PREFIX)}(\d+(?:\.\d+)?(?:e-?\d+)?)$")
REPORT_FILES = ("report.json", "report.csv", "report.md", "curve.png")
# The first line of the recipe.yaml a run records: how --overwrite knows the folder is a run's.
RECIPE_MARK = "# Recorded by awncompress"
_RUN_ENTRY = re.compile(
    rf"^({re.escape(WIDTH_DIR_PREFIX)}|{re.escape(PER_LAYER_DIR_PREFIX)}|{re.escape(FLOPS_DIR_PREFIX)})[0-9.e-]+$"
)


def is_run_output(folder: Path) -> bool:
    """Whether ``folder`` is a convert output: the recipe.yaml a run recorded, and a record of the
    files awncompress wrote there (``--overwrite`` removes only those, see files/manifest.py)."""
    if only_kept(folder):
        return True  # an output --overwrite emptied of awncompress's files before a run that then failed
    recipe = folder / RECIPE_FILE
    if recipe.is_symlink() or not recipe.is_file() or not has_manifest(folder):
        return False
    with open(recipe, "rb") as fh:
        return fh.read(len(RECIPE_MARK)).decode(errors="replace") == RECIPE_MARK  # not a recipe someone wrote


def width_key(fraction: float) -> str:
    """How a width fraction is written in folder names and tables: 0.25 → "0.25"."""
    return f"{float(fraction):g}"


def width_dir(out: Union[str, Path], fraction: float) -> Path:
    """Folder of the uniform export at a width fraction: ``OUT/width-0.25``."""
    return Path(out) / f"{WIDTH_DIR_PREFIX}{width_key(fraction)}"


def per_layer_dir(out: Union[str, Path], fraction: float) -> Path:
    """Folder of the per-layer export at an FFN FLOP budget: ``OUT/per-layer-0.25``."""
    return Path(out) / f"{PER_LAYER_DIR_PREFIX}{width_key(fraction)}"


def flops_dir(out: Union[str, Path], target: float) -> Path:
    """Folder of the FFN+heads export at a FLOP target: ``OUT/flops-0.3``."""
    return Path(out) / f"{FLOPS_DIR_PREFIX}{width_key(target)}"


def find_flop_exports(out_dir: Union[str, Path]) -> dict[float, Path]:
    """{FLOP target: folder} of the flops-*/ exports in a convert output (empty without --heads)."""
    out_dir = Path(out_dir)
    found = {}
    for child in sorted(out_dir.iterdir()) if out_dir.is_dir() else []:
        name = child.name
        if name.startswith(FLOPS_DIR_PREFIX) and _RUN_ENTRY.match(name) and (child / PROVENANCE_FILE).exists():
            try:
                found[float(name[len(FLOPS_DIR_PREFIX) :])] = contained(out_dir, name, str(out_dir))
            except ValueError:
                continue
    return found


def export_format(folder: Path) -> Optional[str]:
    """ "uniform", "per-layer" or "nested" for an export folder, None for anything else."""
    try:
        return read_provenance(folder)["format"]
    except NotAnExportError:
        return None


def match_export(width: float, export_dirs: Mapping[float, Path]) -> Optional[Path]:
    """The folder of ``export_dirs`` recorded for ``width`` (compared with float tolerance)."""
    for w, path in export_dirs.items():
        if math.isclose(float(w), float(width), rel_tol=1e-9, abs_tol=1e-9):
            return Path(path)
    return None


def find_exports(out_dir: Union[str, Path]) -> tuple[Optional[Path], dict[float, Path]]:
    """The nested folder (or None) and {width fraction: folder} of the width-*/ folders in ``out_dir``.

    ``out_dir`` may also be one export folder itself. Raises NotAnExportError when there is none.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise NotAnExportError(f"{out_dir} is not a directory")
    if (out_dir / PROVENANCE_FILE).exists():
        record = read_provenance(out_dir)
        refuse_served(out_dir, record)
        if record["format"] == "nested":
            return out_dir, {}
        return None, {float(record["width_fraction"]): out_dir}
    nested = out_dir / NESTED_DIR
    nested = contained(out_dir, NESTED_DIR, str(out_dir)) if (nested / PROVENANCE_FILE).exists() else None
    width_dirs: dict[float, Path] = {}
    for child in sorted(out_dir.iterdir()):
        match = _WIDTH_DIR.match(child.name)
        if child.is_dir() and match and (child / PROVENANCE_FILE).exists():
            width_dirs[float(match.group(1))] = contained(out_dir, child.name, str(out_dir))
    if nested is None and not width_dirs:
        raise NotAnExportError(
            f"{out_dir} is not an awncompress output: no {NESTED_DIR}/ or {WIDTH_DIR_PREFIX}*/ folder "
            f"with {PROVENANCE_FILE} (run `awncompress convert` first)"
        )
    return nested, width_dirs


def export_dirs_for(widths: list[float], exports: Mapping[str, Path]) -> dict[float, Path]:
    """Where the awn model of each width is: its width-<w>/ folder, else sliced from nested/."""
    return {float(w): Path(exports.get(width_key(w), exports[NESTED_DIR])) for w in widths}


def annotate_exports(record: dict) -> list[Path]:
    """Write each awn row's measured metric, FLOPs and parameters into its export's awncompress.json
    (and so its model card). Nested folders (one folder for many widths) are left alone.
    Returns the folders updated."""
    updated = []
    for row in record["rows"]:
        if row["method"] != "awn" or not row.get("export"):
            continue
        folder = Path(row["export"])
        if export_format(folder) in (None, "nested"):
            continue
        update_provenance(
            folder,
            flops=row["flops"],
            flops_ratio=row["flops_ratio"],
            params=row["params"],
            metric={"name": row["metric"], "value": row["value"], "data": str(record.get("data") or "eval data")},
        )
        updated.append(folder)
    return updated
