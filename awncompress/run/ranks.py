"""A convert run under a launcher with several processes (torchrun, ``accelerate launch``).

Every process runs the stages up to the end of the AWN fine-tune, whose steps are collectives
(each process takes its share of every batch; under FSDP2 its shard of every layer). The main
process alone folds, exports, evaluates (its baselines' fine-tunes train on it alone) and writes
the report; the others stop once the fine-tune's weights are back in their model. The main process
decides the settings (derived batch sizes read the free memory of the process that derives them)
and the others take them from it, so every process runs the same steps.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch

from ..config import Recipe, recipe_from_dict
from ..errors import AwnError, MainProcessFailed, first_line
from ..files.lock import run_temp_dir


def process_rank() -> tuple[int, int]:
    """(this process's rank, the number of processes) under a launcher; (0, 1) without one."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on the process that writes the run's output (the only one without a launcher)."""
    return process_rank()[0] == 0


@contextmanager
def rank_output(out: Path, *, budget: bool) -> Iterator[Path]:
    """The folder this process may write: ``out`` on the main process; on every other one a private
    temporary folder of its own (its run lock and anything a stage writes before it stops), removed
    at the end, so ``out`` is written by one process (the fine-tunes' checkpoints excepted: every
    process writes its shards into ``out/checkpoints``, and on ``--resume`` reads them back, so ``out``
    must be on a file system every process sees). ``--budget`` is refused with several processes."""
    rank, world = process_rank()
    if world > 1 and budget:
        raise AwnError("--budget with several processes is not supported yet; set train.steps instead")
    if rank == 0:
        yield out
        return
    with run_temp_dir(f"rank{rank}") as tmp:
        yield tmp / out.name


@contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block before the others (which wait for it): what it writes to a
    shared cache, such as the tokenized data, the others then read instead of writing it too."""
    if process_rank()[1] <= 1:
        yield
        return
    from accelerate import PartialState

    with PartialState(cpu=not torch.cuda.is_available()).main_process_first():
        yield


def agree(decide: Callable[[], Recipe]) -> Recipe:
    """``decide()`` on the main process, its recipe on every process (JSON over the process group,
    nothing unpickled). When it fails on the main process, every process stops: the main process with
    its error, the others with MainProcessFailed (which the CLI leaves unprinted), instead of waiting
    for a recipe that never comes until the launcher kills them."""
    if process_rank()[1] <= 1:
        return decide()
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # joins (or starts) the process group
    failure: Optional[BaseException] = None
    message: dict = {}
    if state.is_main_process:
        try:
            message = {"recipe": decide().model_dump(mode="json")}
        except Exception as exc:  # noqa: BLE001 - whatever stops the main process stops the others
            failure, message = exc, {"error": first_line(exc)}
    message = _broadcast_json(message, state.device)
    if failure is not None:
        raise failure
    if "error" in message:
        raise MainProcessFailed(f"the main process stopped: {message['error']}")
    return recipe_from_dict(message["recipe"])


def _broadcast_json(message: dict, device: torch.device) -> dict:
    """The main process's ``message`` on every process, as UTF-8 JSON bytes."""
    data = torch.tensor(list(json.dumps(message).encode()), dtype=torch.uint8, device=device)
    size = torch.tensor([data.numel()], dtype=torch.int64, device=device)
    torch.distributed.broadcast(size, src=0)
    if torch.distributed.get_rank() != 0:  # the broadcast's source, in the same group's numbering
        data = torch.empty(int(size), dtype=torch.uint8, device=device)
    torch.distributed.broadcast(data, src=0)
    return json.loads(bytes(data.cpu().tolist()).decode())
