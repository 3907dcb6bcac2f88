"""FSDP2 for the fine-tunes: the student sharded per layer with ``fully_shard``, the rest replicated.

Asked for the way accelerate users ask: ``accelerate launch`` with an FSDP config whose
``fsdp_version`` is 2 sets ``ACCELERATE_USE_FSDP=true`` and ``FSDP_VERSION=2`` in each process's
environment (torchrun with those two variables does the same on CPU, where accelerate itself
shards nothing). awncompress shards the model itself rather than through ``accelerator.prepare``
because three things of an AWN fine-tune must stay outside FSDP's flat handling:

* the per-layer rates are one number each: ``fully_shard`` refuses scalar parameters, and width
  sampling and the progress bar read them every step outside forward, where sharded parameters are
  DTensors. They stay whole on every rank (``ignored_params``); their gradients are averaged over
  the ranks here, as DDP would (:func:`sync_ignored_grads`);
* the AWN prior is a sum over the FFN weights: each rank adds it over its own shard (its gradient
  is per element, so the shards' sums are the whole one);
* the stages after training (fold, exports, evaluation) want a plain model: the student is a
  sharded copy, and its full state is gathered back into the caller's model (:func:`gather_into`).

The live KD teacher is a sharded copy too (frozen: no gradients, no optimizer state), so no rank
holds a whole model.

FSDP1 (parameters flattened: frozen and trainable weights in one unit raise "FlatParameter requires
uniform requires_grad") and DeepSpeed are refused in one line.
"""

from __future__ import annotations

import copy
import math
import os
from typing import Iterable, Optional

import torch
from torch import nn

from ..errors import TrainingError
from ..model.adaptive import AdaptiveExperts, awn_units
from ..model.families import find_ffns


def sharding_requested() -> bool:
    """True when the launcher asks for FSDP2; TrainingError for a sharding awncompress does not run."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        raise TrainingError(
            "DeepSpeed is not supported; launch with an FSDP config whose fsdp_version is 2 "
            "(accelerate config: distributed_type FSDP, fsdp_config.fsdp_version 2)"
        )
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return False
    version = os.environ.get("FSDP_VERSION", "1")
    if version != "2":
        raise TrainingError(
            f"FSDP version {version} is not supported (it flattens frozen and trainable weights into one "
            "parameter); set fsdp_config.fsdp_version: 2 in the accelerate config"
        )
    return True


def _mesh(device: torch.device):
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device.type, (torch.distributed.get_world_size(),))


def shard_copy(model: nn.Module, device: torch.device, mixed_precision: str = "no") -> nn.Module:
    """A copy of ``model`` sharded with FSDP2 (the student, or the frozen teacher): each layer holding
    an FFN one unit, the rest (embeddings, head, final norm) the root's; the AWN rates stay whole on
    every rank. ``mixed_precision`` "bf16" or "fp16" computes in that type and reduces gradients in
    float32 (master weights stay float32). Each rank holds 1/D of the weights and gathers one layer
    at a time for a forward."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if any(isinstance(unit, AdaptiveExperts) for unit in awn_units(model)):
        raise TrainingError("FSDP2 for mixture-of-experts models is not supported yet; run on one process")
    copied = copy.deepcopy(model)
    rates = {unit.raw_rate for unit in awn_units(copied)}
    policy = MixedPrecisionPolicy()
    if mixed_precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if mixed_precision == "bf16" else torch.float16
        policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    mesh = _mesh(device)
    layers = list(dict.fromkeys(block.layer for block in find_ffns(copied)))
    for name in layers:
        fully_shard(copied.get_submodule(name), mesh=mesh, mp_policy=policy, ignored_params=rates)
    fully_shard(copied, mesh=mesh, mp_policy=policy, ignored_params=rates)
    return copied


def is_sharded(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is an FSDP2 shard (a DTensor)."""
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def sync_ignored_grads(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of the parameters FSDP leaves whole (the AWN rates) over the ranks."""
    world = torch.distributed.get_world_size()
    for p in params:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad.div_(world)


def clip_grad_norm_(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip the gradients of sharded and whole parameters together by their global norm (torch's own
    clip cannot mix DTensors with plain tensors)."""
    params = [p for p in params if p.grad is not None]
    sharded = [p.grad for p in params if is_sharded(p.grad)]
    whole = [p.grad for p in params if not is_sharded(p.grad)]
    squares = 0.0
    if sharded:
        squares += float(torch.nn.utils.get_total_norm(sharded).full_tensor()) ** 2
    if whole:
        squares += float(torch.nn.utils.get_total_norm(whole)) ** 2
    total = torch.tensor(math.sqrt(squares))
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


def gather_into(student: nn.Module, model: nn.Module) -> None:
    """Copy the sharded ``student``'s full state into ``model`` on every rank (a collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(student, options=StateDictOptions(full_state_dict=True))
    device: Optional[torch.device] = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in full.items()})
