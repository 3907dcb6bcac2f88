"""Load awncompress exports: uniform, per-layer, and nested (any width sliced lazily from disk)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

import torch
import transformers
from safetensors import SafetensorError, safe_open
from torch import nn

from .archs import FFNSpec, attach_spec, find_ffns, select_neurons_
from .convert import Widths, resolve_widths
from .errors import NotAnExportError, UnsafeCheckpointError, WidthError
from .provenance import read_provenance

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_safe_checkpoint(path: Union[str, Path]) -> Path:
    """Refuse pickled checkpoints: awncompress never unpickles (arbitrary code execution)."""
    path = Path(path)
    if path.is_file() and path.suffix in PICKLE_SUFFIXES:
        raise UnsafeCheckpointError(f"{path} is a pickle checkpoint; awncompress loads safetensors only (convert it with transformers' save_pretrained)")
    if path.is_dir() and not any(path.glob("*.safetensors")) and any(p.suffix in PICKLE_SUFFIXES for p in path.iterdir()):
        raise UnsafeCheckpointError(f"{path} holds only pickle weights (.bin/.pt); awncompress loads safetensors only (re-save with safe_serialization)")
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _model_class(record: dict, config: Any, override: Optional[type]) -> type:
    if override is not None:
        return override
    name = record.get("architecture") or (config.architectures or [None])[0]
    cls = getattr(transformers, name, None) if name else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise NotAnExportError(f"architecture {name!r} is not a transformers model class; pass model_class=")
    return cls


def inside(folder: Path, name: str, what: str) -> Path:
    """``folder / name`` if it stays inside ``folder`` (names read from a file never lead out of it)."""
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise NotAnExportError(f"{what} names {name!r}, outside {folder}; refusing to read it")
    return path


def _safetensors_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NotAnExportError(f"{index} is not a safetensors index (JSON with a weight_map): {_first_line(exc)}") from None
        if not all(isinstance(n, str) for n in names):
            raise NotAnExportError(f"{index}: weight_map values must be file names")
        files = [inside(folder, n, str(index)) for n in names]
        if not all(f.suffix == ".safetensors" for f in files):
            raise NotAnExportError(f"{index} names files that are not .safetensors")
        return files
    single = folder / "model.safetensors"
    if not single.exists():
        raise NotAnExportError(f"{folder} has no model.safetensors")
    return [single]


def _ffn_param_names(model: nn.Module, spec: FFNSpec) -> set[str]:
    ids = {id(m) for b in find_ffns(model, spec) for m in (b.up, b.gate, b.down) if m is not None}
    return {f"{mn}.{pn}" if mn else pn for mn, m in model.named_modules() if id(m) in ids for pn, _ in m.named_parameters(recurse=False)}


def _read_file(file: Path, target: dict, sliceable: set[str], state: dict, unexpected: list[str]) -> None:
    """Tensors of one safetensors file into ``state`` (FFN tensors in ``sliceable`` cut to the target shape)."""
    try:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                if key not in target:
                    unexpected.append(key)
                    continue
                want = tuple(target[key].shape)
                view = f.get_slice(key)
                have = tuple(view.get_shape())
                if have == want:
                    state[key] = f.get_tensor(key)
                elif key in sliceable and len(have) == len(want) and all(h >= w for h, w in zip(have, want)):
                    state[key] = view[tuple(slice(0, w) for w in want)]
                else:
                    raise NotAnExportError(f"{file.name}: tensor {key} has shape {list(have)}, the model expects {list(want)}")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        if isinstance(exc, NotAnExportError):
            raise
        raise NotAnExportError(f"{file} is not a readable safetensors file: {_first_line(exc)}") from None


@torch.no_grad()
def _load_weights(model: nn.Module, folder: Path, spec: FFNSpec, slice_ffn: bool) -> None:
    """Copy the safetensors weights into ``model``; FFN tensors may be sliced to the model's sizes.

    Slicing reads only the leading rows/columns from disk (``get_slice``), never the full tensor.
    """
    target = model.state_dict()
    sliceable = _ffn_param_names(model, spec) if slice_ffn else set()
    state: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for file in _safetensors_files(folder):
        _read_file(file, target, sliceable, state, unexpected)
    if unexpected:
        raise NotAnExportError(f"{folder}: weights the model does not have: {', '.join(unexpected[:5])}")
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    missing = [k for k in target if k not in state and k not in tied]
    if missing:
        raise NotAnExportError(f"{folder}: missing weights: {', '.join(missing[:5])}")


def _build(cls: type, config: Any, spec: FFNSpec, widths: list[int]) -> nn.Module:
    """An instance of ``cls`` whose FFN layers have ``widths`` neurons (weights to be loaded).

    The config records the largest width: exact for uniform widths, an upper bound per layer.
    """
    setattr(config, spec.d_ff_attr, max(widths))
    model = cls(config)
    attach_spec(model, spec)  # the spec it was exported with, for every later step
    blocks = find_ffns(model)
    if len(blocks) != len(widths):
        raise NotAnExportError(f"the export records {len(widths)} layer widths but {cls.__name__} has {len(blocks)} FFN layers")
    for block, w in zip(blocks, widths):
        if w != block.width:
            select_neurons_(block, torch.arange(w))
    return model


def load_pretrained(
    path: Union[str, Path],
    width: Optional[Union[Widths, str]] = None,
    *,
    model_class: Optional[type] = None,
    dtype: Optional[torch.dtype] = None,
) -> nn.Module:
    """Load an awncompress export as a transformers model in eval mode.

    Args:
        path: an export folder (uniform, per-layer or nested).
        width: nested exports only: an int (neurons), a fraction of d_ff, a per-layer list of ints,
            or "learned" for the per-layer widths the fine-tune learned; None = full width.
        model_class: the transformers class to build (default: the one recorded at export).
        dtype: cast the loaded model to this dtype.

    Example:
        >>> model = load_pretrained("out/nested", width=0.25)
    """
    folder = check_safe_checkpoint(path)
    record = read_provenance(folder)
    fmt = record["format"]
    if width is not None and fmt != "nested":
        raise WidthError(f"{folder} is a {fmt} export with fixed widths; width= applies to nested exports only")
    spec = FFNSpec(**record["ffn_spec"])
    # A class the user names brings its own config class (its family may be unknown to AutoConfig).
    try:
        config = (model_class.config_class if model_class is not None else transformers.AutoConfig).from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotAnExportError(f"{folder}/config.json cannot be read as a model config: {_first_line(exc)}") from None
    cls = _model_class(record, config, model_class)
    stored = [int(w) for w in record["layer_widths"]]
    if width is None:
        widths = stored
    elif width == "learned":
        profile = record.get("profile") or {}
        if "active_widths" not in profile:
            raise NotAnExportError(f"{folder} records no learned per-layer widths")
        widths = [int(w) for w in profile["active_widths"]]
    else:
        widths = resolve_widths(width, int(record["d_ff"]), len(stored))
    model = _build(cls, config, spec, widths)
    _load_weights(model, folder, spec, slice_ffn=fmt == "nested")
    if dtype is not None:
        model.to(dtype)
    return model.eval()
