"""Recipe files: the shipped recipes by name, reading a recipe from YAML (strict) and writing one back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import yaml

from ..errors import RecipeError
from ..files.readers import parse_yaml, read_text
from .recipe import RECIPE_DIR, Recipe, recipe_from_dict

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a few hundred bytes


def list_recipes() -> list[str]:
    """Names of the shipped recipes (file stems in :data:`RECIPE_DIR`), sorted."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml")) if RECIPE_DIR.is_dir() else []


def _is_yaml_path(name_or_path: str) -> bool:
    return Path(name_or_path).suffix.lower() in (".yaml", ".yml")


def is_recipe(name_or_path: str) -> bool:
    """True for a shipped recipe name or an existing ``.yaml``/``.yml`` file.

    An existing directory is never a recipe (``convert ./demo`` with a model folder named ``demo``
    means the folder).
    """
    p = Path(name_or_path)
    if p.is_dir():
        return False
    if _is_yaml_path(name_or_path) and p.exists():
        return True  # a FIFO or device under a .yaml name is refused when it is read
    return str(name_or_path) in list_recipes()


def load_recipe(name_or_path: Union[str, os.PathLike]) -> Recipe:
    """Load a shipped recipe by name (``"demo"``) or a recipe file by path, and validate it."""
    text_arg = os.fspath(name_or_path)
    p = Path(text_arg)
    if p.exists() and not p.is_dir():
        path = p
    elif _is_yaml_path(text_arg) or os.sep in text_arg or "/" in text_arg:
        raise RecipeError(f"recipe file {text_arg!r} does not exist")
    elif text_arg in list_recipes():
        path = RECIPE_DIR / f"{text_arg}.yaml"
    else:
        available = ", ".join(list_recipes()) or "(none shipped)"
        raise RecipeError(f"unknown recipe {text_arg!r}; available: {available} (or give a path to a .yaml file)")
    try:
        data = parse_yaml(read_text(path, "recipe", MAX_RECIPE_BYTES, RecipeError), str(path), RecipeError)
    except OSError as e:
        raise RecipeError(f"{path}: cannot read: {e.strerror or e}") from None
    if data is None:
        raise RecipeError(f"{path}: the recipe is empty")
    try:
        return recipe_from_dict(data)
    except RecipeError as e:
        raise RecipeError(f"{path}: {e}") from None


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of scalars, which read best on one line: ``widths: [0.25, 0.5]``."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (list, dict)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_recipe(recipe: Recipe) -> str:
    """The recipe as YAML text (every field, defaults included); ``load`` of it gives an equal recipe."""
    return yaml.dump(recipe.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
