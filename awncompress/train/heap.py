"""Handing freed memory back to the system between stages."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Callable, Optional


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


def release_free_memory() -> None:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``).

    A fine-tune frees its gradients, optimizer state and activations when it ends, but glibc keeps
    most of those pages mapped, so they still count as the process's resident memory and the next
    stage's allocations stack on top of them: on MiniLM, a 4-step fine-tune left 1.1 GiB resident
    where 0.55 GiB was live. Trimming between stages costs milliseconds; fixing glibc's thresholds
    instead (``MALLOC_TRIM_THRESHOLD_``) also lowers each fine-tune's own peak, but made its steps
    take a third more CPU time.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


__all__ = ["release_free_memory"]
