"""``awncompress.json``, the provenance record beside every export: its schema, reading it, updating it.

An export folder may come from anyone, so what is read from it is checked before it is used: the
format, widths, FFN spec and learned profile must have the right types and ranges, the recorded
architecture must be a class name (and, when transformers has that name, a model class). Anything
else is a :class:`~awncompress.errors.NotAnExportError` naming the file and the key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import transformers
from pydantic import ConfigDict, Field, field_validator, model_validator

from ..errors import NotAnExportError
from ..files.atomic import atomic_write
from ..files.readers import parse_json, read_text
from ..files.schema import FileRecord, GrownWidth, NonBlank, Number, PositiveInt, cross_error
from ..model.families import FFNSpec

PROVENANCE_FILE = "awncompress.json"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
# Exports for a serving engine (awncompress/serve/): no safetensors, so transformers cannot load them.
SERVED_FORMATS = {"onnx": "onnxruntime", "gguf": "llama.cpp", "vllm": "vLLM (--trust-remote-code)"}


class _SpecRecord(FileRecord):
    model_config = ConfigDict(extra="forbid", strict=True)
    up: NonBlank
    down: NonBlank
    gate: Optional[NonBlank] = None
    d_ff_attr: NonBlank
    fused: bool = False
    experts: bool = False
    within: Optional[NonBlank] = None

    @field_validator("up", "down", "gate", "d_ff_attr")
    @classmethod
    def _dotted_names(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _MODULE_PATH.match(value):
            raise cross_error(f"ffn_spec: {value!r} is not a dotted module name")
        return value


class _ProfileRecord(FileRecord):
    k: Optional[Number] = None
    normalised_rates: list[Number] = Field(default_factory=list)
    active_widths: list[PositiveInt] = Field(default_factory=list)
    head_rates: list[Number] = Field(default_factory=list)
    active_units: list[PositiveInt] = Field(default_factory=list)


class Provenance(FileRecord):
    """The keys of ``awncompress.json`` that loading relies on (other keys are kept as they are)."""

    format: Literal["uniform", "per-layer", "nested", "onnx", "gguf", "vllm"]
    architecture: NonBlank
    model_type: Optional[str] = None
    ffn_spec: Union[_SpecRecord, list[_SpecRecord]]
    d_ff: Annotated[PositiveInt, Field(le=1 << 24)]
    layer_widths: list[PositiveInt] = Field(min_length=1, max_length=4096)
    full_widths: Optional[list[PositiveInt]] = None
    grown_widths: Optional[list[PositiveInt]] = None
    width_fraction: Optional[GrownWidth] = None
    width_table: Optional[dict[str, Union[PositiveInt, list[PositiveInt]]]] = None
    profile: Optional[_ProfileRecord] = None
    source_model: Optional[str] = None
    layer_heads: Optional[list[PositiveInt]] = Field(default=None, max_length=4096)
    full_heads: Optional[Annotated[PositiveInt, Field(le=1 << 16)]] = None
    head_group: Optional[PositiveInt] = None
    flops_seq_len: Optional[Annotated[PositiveInt, Field(le=1 << 20)]] = None

    @field_validator("architecture")
    @classmethod
    def _a_model_class_name(cls, value: str) -> str:
        found = getattr(transformers, value, None) if _NAME.match(value) else None
        if not _NAME.match(value) or (
            found is not None and not (isinstance(found, type) and issubclass(found, transformers.PreTrainedModel))
        ):
            raise cross_error(f"architecture {value!r} is not a model class name")
        return value

    @model_validator(mode="after")
    def _widths_fit(self) -> "Provenance":
        n = len(self.layer_widths)
        for name in ("full_widths", "grown_widths"):
            if getattr(self, name) is not None and len(getattr(self, name)) != n:
                raise cross_error(f"{name} has {len(getattr(self, name))} layers, layer_widths {n}")
        full = self.full_widths or [self.d_ff] * n
        if self.grown_widths is not None and any(not f <= g <= 8 * f for f, g in zip(full, self.grown_widths)):
            raise cross_error(f"grown_widths {self.grown_widths} must be 1 to 8 times {full}")
        caps = layer_caps(self.model_dump())
        if any(w > c for w, c in zip(self.layer_widths, caps)):
            raise cross_error(f"layer_widths {self.layer_widths} exceed the layers' widths {caps}")
        if self.profile is not None and self.profile.active_widths:
            if len(self.profile.active_widths) != len(self.layer_widths):
                raise cross_error(
                    f"profile.active_widths has {len(self.profile.active_widths)} layers, layer_widths "
                    f"{len(self.layer_widths)}"
                )
            if any(w > c for w, c in zip(self.profile.active_widths, caps)):
                raise cross_error(
                    f"profile.active_widths {self.profile.active_widths} exceed the layers' widths {caps}"
                )
        return self._heads_fit()

    def _heads_fit(self) -> "Provenance":
        if self.layer_heads is None:
            return self
        if self.full_heads is None or self.head_group is None:
            raise cross_error("layer_heads needs full_heads and head_group")
        if len(self.layer_heads) != len(self.layer_widths):
            raise cross_error(f"layer_heads has {len(self.layer_heads)} layers, layer_widths {len(self.layer_widths)}")
        if any(h > self.full_heads or h % self.head_group for h in self.layer_heads):
            raise cross_error(
                f"layer_heads {self.layer_heads} must be multiples of {self.head_group} up to {self.full_heads}"
            )
        return self


def read_provenance(path: Union[str, Path]) -> dict[str, Any]:
    """The checked ``awncompress.json`` of an export; NotAnExportError if ``path`` is not one."""
    path = Path(path)
    if not path.is_dir():
        raise NotAnExportError(f"{path} is not a directory")
    file = path / PROVENANCE_FILE
    if not file.exists() and not file.is_symlink():
        raise NotAnExportError(
            f"{path} is not an awncompress export (no {PROVENANCE_FILE}); load vanilla folders with transformers"
        )
    try:
        record = parse_json(read_text(file, PROVENANCE_FILE, error=NotAnExportError), str(file), NotAnExportError)
    except OSError as exc:
        raise NotAnExportError(f"{file} cannot be read: {exc.strerror or exc}") from None
    if not isinstance(record, dict):
        raise NotAnExportError(f"{file} holds {type(record).__name__}, not a JSON object")
    try:
        Provenance(**record)
    except NotAnExportError as exc:
        raise NotAnExportError(f"{file}: {exc}") from None
    return record


def refuse_served(folder: Path, record: dict) -> None:
    """NotAnExportError for an ONNX or GGUF export where a transformers export is needed."""
    if record["format"] in SERVED_FORMATS:
        raise NotAnExportError(
            f"{folder} is a {record['format'].upper()} export for {SERVED_FORMATS[record['format']]} "
            f"({record.get('file', 'see awncompress.json')}); transformers and load_pretrained read the hf exports"
        )


def write_provenance(folder: Path, record: dict) -> None:
    """Write ``record`` as the folder's ``awncompress.json`` (atomically)."""
    atomic_write(folder / PROVENANCE_FILE, json.dumps(record, indent=2) + "\n")


def recorded_specs(record: dict) -> tuple[FFNSpec, ...]:
    """The FFN specs an export was written with (one spec, or a list for FFNs of several kinds)."""
    raw = record["ffn_spec"]
    return tuple(FFNSpec(**r) for r in (raw if isinstance(raw, list) else [raw]))


def full_widths_of(record: dict) -> list[int]:
    """Each layer's full width in an export (what width fractions are fractions of): ``full_widths``
    when FFNs differ, else ``d_ff`` for all."""
    return [int(w) for w in record.get("full_widths") or [record["d_ff"]] * len(record["layer_widths"])]


def layer_caps(record: dict) -> list[int]:
    """The most neurons each layer of an export's model holds: its full width, or more where it grew
    (``grown_widths``, growth.py)."""
    grown = record.get("grown_widths") or full_widths_of(record)
    return [max(int(f), int(g)) for f, g in zip(full_widths_of(record), grown)]
