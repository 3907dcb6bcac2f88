"""Fine-tune checkpoints under FSDP2: every process writes its shards with ``torch.distributed.checkpoint``.

The tensors (the sharded weights, the optimizer's moments and steps, the whole AWN rates) go through
DCP's Hugging Face storage writer, which writes safetensors files with JSON metadata, one per process;
its reader reads them back into the shards each process holds. DCP's default file system reader
unpickles its ``.metadata`` file, which awncompress never does, so it is not used. What is not a tensor
(the optimizer's hyper-parameters, the trainer's step, seconds and losses) is JSON written by the main
process. A checkpoint is written to a scratch folder and renamed into place when every process is done.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..errors import TrainingError, first_line
from ..files.manifest import remove_written, write_manifest
from ..files.readers import load_json
from .checkpoints import check_state

_STATE = "trainer_state.json"
_GROUPS = "optimizer.json"
_MODEL, _OPTIM = "model.", "optim."


def _state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """(tensors, the rest) of the model's and the optimizer's sharded state dicts, keyed by name."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(flatten_optimizer_state_dict=True)
    tensors = {_MODEL + k: v for k, v in get_model_state_dict(model).items()}
    rest: dict[str, Any] = {}
    for key, value in get_optimizer_state_dict(model, optimizer, options=options).items():
        if torch.is_tensor(value):
            tensors[_OPTIM + key] = value
        else:
            rest[key] = value
    return tensors, rest


def save_sharded(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict, rank: int) -> None:
    """Write ``folder`` from every process (a collective: all of them call it)."""
    import torch.distributed as dist
    from torch.distributed.checkpoint import HuggingFaceStorageWriter, save

    scratch = folder.with_name(f".{folder.name}.partial")
    if rank == 0:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
    dist.barrier()
    tensors, rest = _state_dicts(model, optimizer)
    save(tensors, storage_writer=HuggingFaceStorageWriter(str(scratch), save_distributed=True))
    dist.barrier()  # every process's shards are written
    if rank == 0:
        (scratch / _GROUPS).write_text(json.dumps(rest))
        (scratch / _STATE).write_text(json.dumps(state))
        write_manifest(scratch)  # what a later run may delete: these files, nothing else
        remove_written(folder, say=False)
        scratch.rename(folder)
    dist.barrier()


def _check_files(folder: Path) -> None:
    """Every entry of the checkpoint is a regular file of its own (no link leads out of it)."""
    for entry in folder.iterdir():
        if entry.is_symlink() or not entry.is_file():
            raise ValueError(f"{entry.name} is not a regular file")
    for name in (_STATE, _GROUPS):
        if not (folder / name).is_file():
            raise ValueError(f"{name} is missing")


def load_sharded(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, max_step: Optional[int] = None
) -> dict:
    """Read ``folder`` into the sharded ``model`` and ``optimizer`` on every process; the trainer state.
    TrainingError when any part is unreadable or its step does not fit the recipe's."""
    from torch.distributed.checkpoint import HuggingFaceStorageReader, load
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    try:
        _check_files(folder)
        trainer = load_json(folder / _STATE, "checkpoint file", ValueError)
        rest = load_json(folder / _GROUPS, "checkpoint file", ValueError)
        tensors, _ = _state_dicts(model, optimizer)
        optim = {k[len(_OPTIM) :]: v for k, v in tensors.items() if k.startswith(_OPTIM)}
        check_state(trainer, folder, optim, max_step)  # before reading the shards
        load(tensors, storage_reader=HuggingFaceStorageReader(str(folder)))
        set_model_state_dict(model, {k[len(_MODEL) :]: v for k, v in tensors.items() if k.startswith(_MODEL)})
        options = StateDictOptions(flatten_optimizer_state_dict=True)
        set_optimizer_state_dict(model, optimizer, {**optim, **rest}, options=options)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise TrainingError(
            f"checkpoint {folder} cannot be resumed ({first_line(exc)}); remove it to resume from an earlier one, "
            "or start a new --out"
        ) from None
    return trainer


__all__ = ["load_sharded", "save_sharded"]
