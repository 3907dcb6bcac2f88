"""Dotted-key overrides (``--set train.lr=1e-4``, CLI flags): applied with the same checks as recipe values."""

from __future__ import annotations

import os
from typing import Annotated, Any, Union, get_args, get_origin

from ..errors import RecipeError
from ..files.readers import parse_yaml
from ..files.schema import Section
from .recipe import SECTIONS, Recipe, recipe_from_dict


def _from_text(value: str, tp: Any, key: str) -> Any:
    """Parse a command-line string for a non-string field (``"10"`` → 10, ``"0.25,0.5"`` → list)."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) is Union:
        if value.strip().lower() in ("null", "none", "~"):
            return None
        return _from_text(value, [a for a in get_args(tp) if a is not type(None)][0], key)
    if tp is str:
        return value
    if get_origin(tp) is list:
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = parse_yaml(text, key, RecipeError, max_depth=4)
            except RecipeError:
                shown = text if len(text) <= 60 else text[:60] + "..."
                raise RecipeError(
                    f"{key}: {shown!r} is not a valid list (write it as [0.25, 0.5] or 0.25,0.5)"
                ) from None
            return parsed if isinstance(parsed, list) else value
        return [_from_text(part.strip(), get_args(tp)[0], key) for part in text.split(",")] if text else []
    try:
        parsed = parse_yaml(value, key, RecipeError, max_depth=4)
    except RecipeError:
        return value
    return parsed if isinstance(parsed, (bool, int, float)) else value


def _target(key: str, data: dict) -> tuple[type[Section], dict, str]:
    """The section class, the dict to change and the field name a dotted override key names."""
    parts = key.split(".")
    if len(parts) > 2:
        raise RecipeError(f"override {key!r}: expected 'key' or 'section.key'")
    head = parts[0]
    if head not in Recipe.model_fields:
        Recipe(**{"model": "m", head: None})  # raises the "unknown key ... did you mean" error
    if len(parts) == 1:
        if head in SECTIONS:
            example = next(iter(SECTIONS[head].model_fields))
            raise RecipeError(f"override {key!r} names a section; override one of its keys, e.g. {key}.{example}")
        return Recipe, data, head
    if head not in SECTIONS:
        raise RecipeError(f"override {key!r}: {head!r} is not a section (sections: {', '.join(SECTIONS)})")
    cls = SECTIONS[head]
    if parts[1] not in cls.model_fields:
        cls(**{parts[1]: None})  # raises the "unknown key ... in <section>" error
    return cls, data.setdefault(head, {}), parts[1]


def set_fields(recipe: Recipe) -> dict[str, Any]:
    """Only the settings a recipe (or an override) set: what is left out stays derivable."""
    data: dict[str, Any] = {k: getattr(recipe, k) for k in recipe.model_fields_set if k not in SECTIONS}
    for name in SECTIONS:
        section = getattr(recipe, name)
        if section.model_fields_set:
            data[name] = section.model_dump(include=section.model_fields_set)
    return data


def apply_overrides(recipe: Recipe, overrides: dict[str, object]) -> Recipe:
    """A new recipe with dotted-key overrides applied, e.g. ``{"train.steps": 10, "data.train": "x.csv"}``.

    ``None`` values are ignored (an unset CLI flag). Values are type-checked like recipe values;
    strings given for number/bool/list fields are parsed (``"10"``, ``"true"``, ``"0.25,0.5"``), so
    a generic ``--set key=value`` flag can pass text through. Settings nobody set stay unset.
    """
    data = set_fields(recipe)
    for key, value in overrides.items():
        if value is None:
            continue
        cls, target, name = _target(str(key), data)
        if isinstance(value, str):
            value = _from_text(value, cls.model_fields[name].annotation, str(key))
        elif isinstance(value, tuple):
            value = list(value)
        target[name] = os.fspath(value) if isinstance(value, os.PathLike) else value
    return recipe_from_dict(data)
