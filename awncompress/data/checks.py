"""Checks on a batch of source rows: the columns a task needs, and which rows hold text."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import DataError
from .sources import Batch


def require_columns(batch: Batch, columns: Iterable[str], role: str, origin: str) -> None:
    """DataError naming the columns ``batch`` lacks and the ones it has."""
    missing = [c for c in columns if c not in batch]
    if missing:
        present = ", ".join(repr(str(c)) for c in batch)
        raise DataError(
            f"{role} data {origin} has no column {', '.join(repr(c) for c in missing)} "
            f"(columns present: {present}); set the column names in the data config"
        )


def text_rows(batch: Batch, columns: list[str], role: str, origin: str) -> list[int]:
    """Positions of the rows whose text columns all hold text, with numbers turned into their text in
    place (a numeric-looking text stays text). A missing or blank value is no text; a column of lists
    or mappings is refused rather than turned into its repr."""
    keep: list[int] = []
    for position in range(len(batch[columns[0]])):
        for column in columns:
            value = batch[column][position]
            if value is None or (isinstance(value, float) and value != value):  # NaN: pandas' missing value
                break
            if not isinstance(value, (str, int, float)):
                raise DataError(
                    f"{role} data {origin}: column '{column}' holds {type(value).__name__} values, not text"
                )
            text = value if isinstance(value, str) else str(value)
            batch[column][position] = text
            if not text.strip():
                break
        else:
            keep.append(position)
    return keep


__all__ = ["require_columns", "text_rows"]
