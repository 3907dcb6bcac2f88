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


def _read(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    load_model(model, str(folder / "model.safetensors"), device=str(next(model.parameters()).device))
    groups = json.loads((folder / "optimizer.json").read_text())["param_groups"]
    state: dict[int, dict[str, Any]] = {}
    for key, value in load_file(str(folder / "optimizer.safetensors")).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    trainer = json.loads((folder / "trainer_state.json").read_text())
    if not (
        isinstance(trainer.get("step"), int)
        and isinstance(trainer.get("seconds"), (int, float))
        and isinstance(trainer.get("losses"), list)
    ):
        raise ValueError("trainer_state.json lacks step, seconds or losses")
    return trainer


def load_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The model, optimizer and trainer state of a checkpoint; TrainingError when any part is unreadable."""
    try:
        return _read(folder, model, optimizer)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        text = first_line(exc)
        raise TrainingError(
            f"checkpoint {folder} cannot be resumed ({text}); remove it to resume from an earlier one, "
            "or start a new --out"
        ) from None


def latest_checkpoint(folder: Optional[Path]) -> Optional[Path]:
    """The checkpoint with the highest step in ``folder`` (None if there is none); other names are ignored."""
    if folder is None or not folder.exists():
        return None
    steps = sorted(
        (p for p in folder.glob("step-*") if re.fullmatch(r"step-\d+", p.name)), key=lambda p: int(p.name[5:])
    )
    return steps[-1] if steps else None
