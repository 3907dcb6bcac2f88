"""Class labels as read from a source -> class ids 0..n-1, with the checks that make them usable.

A source's labels arrive as the distinct values its label column holds (JSON text, so that ``1``,
``"1"`` and ``1.0`` stay apart until this module decides what they mean) and the number of rows
without one. Integer-like labels (ints, bools, integral floats) are class ids and must be exactly
0..n-1; any other label is a class name, and ids follow the names' sorted order so the mapping is
reproducible.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import DataError


@dataclass(frozen=True)
class LabelColumn:
    """One part's labels: the distinct raw values (JSON text), how many rows lack one, where from."""

    raw: tuple[str, ...]
    missing: int
    origin: str


def label_json(value: Any) -> str:
    """A label as stored: JSON text, ``null`` for a missing one (None or NaN)."""
    if isinstance(value, float) and math.isnan(value):
        value = None
    return json.dumps(value)


def _kind(values: list[Any]) -> str:
    """ "int" when the labels are class ids (ints, bools, integral floats), "float" for other numbers, else "str"."""
    if all(isinstance(v, int) for v in values):  # bools are ints
        return "int"
    if all(isinstance(v, (int, float)) for v in values):
        return "int" if all(float(v).is_integer() for v in values) else "float"
    return "str"


def _check_part(part: LabelColumn, values: list[Any], label_column: str) -> None:
    odd = [v for v in values if isinstance(v, (list, dict))]
    if odd:
        raise DataError(
            f"label column '{label_column}' of {part.origin} holds {type(odd[0]).__name__} values; a label is "
            "one class id or name"
        )
    if part.missing:
        raise DataError(f"{part.origin} has {part.missing} rows without a value in label column '{label_column}'")
    if _kind(values) == "float":
        shown = ", ".join(f"{v:g}" for v in sorted(values)[:5])
        raise DataError(
            f"label column '{label_column}' of {part.origin} holds non-integer numbers ({shown}); classification "
            "needs class ids 0..n-1 or class names (regression is not supported)"
        )


def encode_labels(
    parts: list[LabelColumn], known_names: Optional[list[str]], label_column: str
) -> tuple[dict[str, int], int, Optional[list[str]]]:
    """The id of every raw label of every part, the number of classes, and the class names (None if
    unknown). The first part is the training data: a label only a later part has is refused."""
    decoded = [[json.loads(raw) for raw in part.raw] for part in parts]
    for part, values in zip(parts, decoded):
        _check_part(part, values, label_column)
    if all(_kind(values) == "int" for values in decoded):
        ids = {raw: int(value) for part, values in zip(parts, decoded) for raw, value in zip(part.raw, values)}
        found = sorted(set(ids.values()))
        n = len(found)
        if found[0] != 0 or found[-1] != n - 1:  # sorted distinct ints are 0..n-1 exactly then (no range built)
            shown = ", ".join(map(str, found[:10])) + (", ..." if len(found) > 10 else "")
            raise DataError(
                f"integer labels in column '{label_column}' must be 0..n-1 with every class present; found {shown}"
            )
        names = known_names if known_names is not None and len(known_names) == n else None
    else:
        # String labels (or a mix): ids follow sorted order so the mapping is reproducible.
        names = sorted({str(value) for values in decoded for value in values})
        index = {name: i for i, name in enumerate(names)}
        ids = {raw: index[str(value)] for part, values in zip(parts, decoded) for raw, value in zip(part.raw, values)}
        n = len(names)
    if n < 2:
        only = names[0] if names else 0
        raise DataError(f"label column '{label_column}' has a single class ({only}); classification needs two or more")
    trained = {ids[raw] for raw in parts[0].raw}
    unseen = sorted({ids[raw] for part in parts[1:] for raw in part.raw} - trained)
    if unseen:
        shown = ", ".join(repr(names[i]) if names else str(i) for i in unseen[:5])
        raise DataError(
            f"{parts[1].origin} has label(s) {shown} that the training data does not have; the model could "
            "never predict them"
        )
    return ids, n, names


__all__ = ["LabelColumn", "encode_labels", "label_json"]
