"""Distillation teachers: a frozen model run every step, or its logits computed once.

A classification teacher's logits are a few numbers per example and the teacher is frozen and in
eval mode, so they are the same every time an example comes round. Computing them once over the
training set (length-sorted, no gradients) and looking them up saves a teacher forward pass on
every step of every fine-tune that distils from it: the AWN fine-tune and each per-width
``<scorer>+finetune`` baseline share one table. Causal-LM logits (vocabulary × tokens per
example) are far too big to keep, so a language-model teacher stays a model.

Only the examples the fine-tunes will see get logits (``examples``): every fine-tune of one run
walks the same seeded stream for the same number of steps, so a short run (``--budget``) does not
pay for a teacher pass over the whole training set (MPNet on Rotten Tomatoes: 8,530 examples, of
which a 22-step run sees 704).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.tokenized import length_order
from ..errors import TrainingError


class CachedTeacher:
    """The logits of a frozen teacher for every example of one training set, by example index."""

    def __init__(self, logits: torch.Tensor, known: Optional[torch.Tensor] = None) -> None:
        self.logits = logits
        self.known = torch.ones(len(logits), dtype=torch.bool) if known is None else known

    def __call__(self, indices: Sequence[int]) -> torch.Tensor:
        """The teacher logits of the examples ``indices``, stacked in that order.

        TrainingError for an example the table was not computed for (a fine-tune that walks further
        than the one the table was made for), rather than distilling towards a blank row.
        """
        rows = torch.as_tensor(list(indices), dtype=torch.long)
        missing = rows[~self.known[rows]]
        if len(missing):
            raise TrainingError(
                f"the cached teacher has no logits for training examples {missing[:5].tolist()}: it was "
                f"computed for {int(self.known.sum())} of {len(self)} examples"
            )
        return self.logits[rows]

    def __len__(self) -> int:
        return len(self.logits)

    @classmethod
    def compute(
        cls,
        teacher: nn.Module,
        train_set: Any,
        collate: Callable[[list], dict[str, torch.Tensor]],
        batch_size: int = 64,
        quiet: bool = False,
        examples: Optional[Sequence[int]] = None,
    ) -> "CachedTeacher":
        """Run ``teacher`` (eval mode, no gradients) once over ``train_set`` (only its ``examples``,
        when given), on the GPU if there is one.

        The teacher moves there, as it would for distilling from it live.
        """
        device = torch.device("cuda") if torch.cuda.is_available() else next(teacher.parameters()).device
        teacher.to(device)
        n = len(train_set)
        order = length_order(train_set)
        if examples is not None:
            wanted = set(examples)
            order = [i for i in order if i in wanted]
        logits: list[torch.Tensor] = []
        was_training = teacher.training
        teacher.eval()
        with torch.no_grad():
            for start in tqdm(
                range(0, len(order), batch_size), desc="teacher logits", disable=quiet, dynamic_ncols=True
            ):
                batch = collate([train_set[i] for i in order[start : start + batch_size]])
                inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
                logits.append(teacher(**inputs).logits.float().cpu())
        teacher.train(was_training)
        table = torch.zeros((n, *logits[0].shape[1:]), dtype=torch.float32)
        known = torch.zeros(n, dtype=torch.bool)
        table[torch.tensor(order)] = torch.cat(logits)
        known[torch.tensor(order)] = True
        return cls(table, known)


Teacher = Union[nn.Module, CachedTeacher]


def distillation_teacher(
    teacher: nn.Module,
    task: str,
    train_set: Any,
    collate: Callable[[list], dict[str, torch.Tensor]],
    batch_size: int = 64,
    quiet: bool = False,
    hidden: bool = False,
    examples: Optional[Sequence[int]] = None,
) -> Teacher:
    """A cached teacher for text classification (over ``examples`` only, when given: see
    ``run_state.examples_seen``), the model itself for tasks with per-token logits or when its hidden
    states are distilled too (``hidden``)."""
    if task == "text-classification" and not hidden:
        return CachedTeacher.compute(teacher, train_set, collate, batch_size, quiet=quiet, examples=examples)
    return teacher
