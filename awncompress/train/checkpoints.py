"""Fine-tune checkpoints for --resume: model and optimizer tensors as safetensors, the rest as JSON.

Nothing here is ever unpickled; a checkpoint that cannot be read is refused in one line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from ..errors import TrainingError, first_line
from ..files.atomic import atomic_dir, write_failure
from ..files.paths import contained
from ..files.readers import check_regular, load_json

_NAMES = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "trainer_state.json")


def save_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """model / optimizer tensors as safetensors, the rest as JSON: nothing here is ever unpickled."""
    opt = optimizer.state_dict()
    tensors = {
        f"{pid}.{k}": v.detach().contiguous().cpu() if torch.is_tensor(v) else torch.tensor(v)
        for pid, s in opt["state"].items()
        for k, v in s.items()
    }
    with atomic_dir(folder, overwrite=True) as tmp:
        try:
            save_model(model, str(tmp / "model.safetensors"))
            save_file(tensors, str(tmp / "optimizer.safetensors"))
        except SafetensorError as exc:
            raise write_failure(exc, folder) from None
        (tmp / "optimizer.json").write_text(json.dumps({"param_groups": opt["param_groups"]}))
        (tmp / "trainer_state.json").write_text(json.dumps(state))


def _files(folder: Path) -> dict[str, Path]:
    """The checkpoint's files, each a regular file inside its stage folder (no link leads out of it)."""
    stage = folder.parent
    contained(stage, folder.name, str(stage))
    return {name: check_regular(contained(folder, name, str(folder)), "checkpoint file", ValueError) for name in _NAMES}


def check_state(trainer: Any, folder: Path, optimizer_state: dict, max_step: Optional[int]) -> dict:
    """The trainer state must be the one this folder's name says, within the recipe's steps, with the
    optimizer state a step leaves behind."""
    if not (
        isinstance(trainer, dict)
        and isinstance(trainer.get("step"), int)
        and isinstance(trainer.get("seconds"), (int, float))
        and isinstance(trainer.get("losses"), list)
    ):
        raise ValueError("trainer_state.json lacks step, seconds or losses")
    step = trainer["step"]
    if folder.name != f"step-{step}":
        raise ValueError(f"trainer_state.json says step {step}, the folder {folder.name}")
    if max_step is not None and not 0 < step <= max_step:
        raise ValueError(f"its step {step} is not within the recipe's {max_step} steps")
    if not optimizer_state:
        raise ValueError("optimizer.safetensors holds no optimizer state")
    return trainer


def _read(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, max_step: Optional[int]) -> dict:
    files = _files(folder)
    trainer = load_json(files["trainer_state.json"], "checkpoint file", ValueError)
    groups = load_json(files["optimizer.json"], "checkpoint file", ValueError)["param_groups"]
    state: dict[int, dict[str, Any]] = {}
    for key, value in load_file(str(files["optimizer.safetensors"])).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    check_state(trainer, folder, state, max_step)
    load_model(model, str(files["model.safetensors"]), device=str(next(model.parameters()).device))
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    return trainer


def load_checkpoint(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, max_step: Optional[int] = None
) -> dict:
    """The model, optimizer and trainer state of a checkpoint; TrainingError when any part is unreadable,
    a link leads out of its stage folder, or (``max_step``: the recipe's steps) its step does not fit."""
    try:
        return _read(folder, model, optimizer, max_step)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        text = first_line(exc)
        text = text.replace(f"checkpoint file {folder}/", "").replace(f"{folder}/", "").replace(str(folder), "it")
        raise TrainingError(
            f"checkpoint {folder} cannot be resumed ({text}); remove it to resume from an earlier one, "
            "or start a new --out"
        ) from None


def read_trainer_state(folder: Path) -> dict:
    """A checkpoint's ``trainer_state.json`` alone (what a resume must know before it builds the optimizer:
    the widths a growing run's layers had); TrainingError when it cannot be read."""
    try:
        return load_json(_files(folder)["trainer_state.json"], "checkpoint file", ValueError)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"checkpoint {folder} cannot be resumed ({first_line(exc)})") from None


def latest_checkpoint(folder: Optional[Path]) -> Optional[Path]:
    """The checkpoint with the highest step in ``folder`` (None if there is none); other names are ignored."""
    if folder is None or not folder.exists():
        return None
    steps = sorted(
        (p for p in folder.glob("step-*") if re.fullmatch(r"step-\d+", p.name)), key=lambda p: int(p.name[5:])
    )
    return steps[-1] if steps else None
