"""Distillation teachers: a frozen model run every step, or its logits computed once.

A classification teacher's logits are a few numbers per example and the teacher is frozen and in
eval mode, so they are the same every time an example comes round. Computing them once over the
training set (length-sorted, no gradients) and looking them up saves a teacher forward pass on
every step of every fine-tune that distils from it: the AWN fine-tune and each per-width
``<scorer>+finetune`` baseline share one table. Causal-LM logits (vocabulary × tokens per
example) are far too big to keep, so a language-model teacher stays a model.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import length_order


class CachedTeacher:
    """The logits of a frozen teacher for every example of one training set, by example index."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits

    def __call__(self, indices: Sequence[int]) -> torch.Tensor:
        """The teacher logits of the examples ``indices``, stacked in that order."""
        return self.logits[torch.as_tensor(list(indices), dtype=torch.long)]

    def __len__(self) -> int:
        return len(self.logits)

    @classmethod
    def compute(cls, teacher: nn.Module, train_set: Any, collate: Callable[[list], dict[str, torch.Tensor]],
                batch_size: int = 64, quiet: bool = False) -> "CachedTeacher":
        """Run ``teacher`` (eval mode, no gradients) once over ``train_set``, on the GPU if there is one.

        The teacher moves there, as it would for distilling from it live.
        """
        device = torch.device("cuda") if torch.cuda.is_available() else next(teacher.parameters()).device
        teacher.to(device)
        n = len(train_set)
        order = length_order(train_set)
        logits: list[torch.Tensor] = []
        was_training = teacher.training
        teacher.eval()
        with torch.no_grad():
            for start in tqdm(range(0, n, batch_size), desc="teacher logits", disable=quiet, dynamic_ncols=True):
                batch = collate([train_set[i] for i in order[start:start + batch_size]])
                inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
                logits.append(teacher(**inputs).logits.float().cpu())
        teacher.train(was_training)
        table = torch.empty((n, *logits[0].shape[1:]), dtype=torch.float32)
        table[torch.tensor(order)] = torch.cat(logits)
        return cls(table)


Teacher = Union[nn.Module, CachedTeacher]


def distillation_teacher(teacher: nn.Module, task: str, train_set: Any, collate: Callable[[list], dict[str, torch.Tensor]],
                         batch_size: int = 64, quiet: bool = False, hidden: bool = False) -> Teacher:
    """A cached teacher for text classification, the model itself for tasks with per-token logits
    or when its hidden states are distilled too (``hidden``)."""
    if task == "text-classification" and not hidden:
        return CachedTeacher.compute(teacher, train_set, collate, batch_size, quiet=quiet)
    return teacher
