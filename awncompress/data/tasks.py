"""The tasks awncompress runs and the metric each reports by default: the one place for these names."""

from __future__ import annotations

from torch import nn

from ..errors import DataError

TASKS: tuple[str, ...] = ("text-classification", "causal-lm")
DEFAULT_METRICS: dict[str, str] = {"text-classification": "accuracy", "causal-lm": "perplexity"}


def check_task(task: str) -> str:
    """``task`` itself, or DataError naming the tasks there are."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return task


def is_lm_task(task: str) -> bool:
    """Whether ``task`` scores next-token predictions (perplexity) rather than one label per example."""
    return check_task(task) == "causal-lm"


def default_metric(task: str) -> str:
    """The metric a task reports when none is named: accuracy or perplexity."""
    return DEFAULT_METRICS[check_task(task)]


def task_from_model(model: nn.Module) -> str:
    """The task a transformers model's head class is for (causal-lm for LM heads)."""
    name = type(model).__name__
    return "causal-lm" if name.endswith(("ForCausalLM", "LMHeadModel")) else "text-classification"
