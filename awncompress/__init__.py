"""awncompress: Adaptive Width Networks for pretrained Hugging Face models.

Convert every FFN into an adaptive-width block, fine-tune briefly so neurons fall into a learned
order of importance, then export truncated checkpoints at any width.
"""

from .checkpoint.export import export_nested, export_per_layer, export_uniform, update_provenance
from .checkpoint.load import load_pretrained
from .checkpoint.provenance import read_provenance
from .errors import (
    AwnError,
    ConfigError,
    ConversionError,
    DataError,
    ModelLoadError,
    NotAnExportError,
    OutputExistsError,
    TrainingError,
    UnknownMethodError,
    UnknownScorerError,
    UnsafeCheckpointError,
    UnsupportedModelError,
    WidthError,
)
from .model.adaptive import AdaptiveFFN, adaptive_modules, awn_prior, profile_summary, rate_for_quantile
from .model.families import FFN_SPECS, FFNSpec, find_ffns
from .model.scorers import SCORERS
from .model.scoring import score_neurons
from .model.surgery import AWNConfig, convert_, fold_, layer_widths, order_, resolve_widths, truncate_
from .version import __version__

__all__ = [
    "AWNConfig",
    "AdaptiveFFN",
    "AwnError",
    "ConfigError",
    "ConversionError",
    "DataError",
    "FFNSpec",
    "FFN_SPECS",
    "ModelLoadError",
    "NotAnExportError",
    "OutputExistsError",
    "SCORERS",
    "TrainingError",
    "UnknownMethodError",
    "UnknownScorerError",
    "UnsafeCheckpointError",
    "UnsupportedModelError",
    "WidthError",
    "__version__",
    "adaptive_modules",
    "awn_prior",
    "convert_",
    "export_nested",
    "export_per_layer",
    "export_uniform",
    "find_ffns",
    "fold_",
    "layer_widths",
    "load_pretrained",
    "order_",
    "profile_summary",
    "rate_for_quantile",
    "read_provenance",
    "resolve_widths",
    "score_neurons",
    "truncate_",
    "update_provenance",
]
