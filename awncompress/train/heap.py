"""Handing freed memory back to the system between stages."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Callable, Optional

# glibc's mallopt parameter, and the size from which a block gets its own pages (freed at once).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20


@functools.lru_cache(maxsize=1)
def _glibc() -> Optional[ctypes.CDLL]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - not glibc (musl has neither) raises here
    except (OSError, AttributeError):
        return None
    return libc


def _malloc_trim() -> Optional[Callable[[int], int]]:
    libc = _glibc()
    return None if libc is None else libc.malloc_trim


def bound_heap() -> bool:
    """Give every block of 1 MiB or more its own pages, handed back the moment it is freed (glibc's
    ``M_MMAP_THRESHOLD``, fixed); True when set.

    By default glibc raises that threshold to the largest block freed so far (up to 32 MiB), so
    after the first steps a fine-tune's activations come from the heap, whose freed pieces stay
    resident and fragment as widths and lengths vary: a demo fine-tune of 30 steps peaked at
    2.4 GiB where 1.1 GiB was live. Fixed at 1 MiB it peaked at 1.7 GiB, and four 4-step fine-tunes
    at 1.18 instead of 1.73–1.80 GiB, for about 15 % more CPU time a step (fresh pages are faulted
    in). Left alone when the user set ``MALLOC_MMAP_THRESHOLD_`` (glibc reads it at start-up).
    """
    libc = _glibc()
    if libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


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


__all__ = ["bound_heap", "release_free_memory"]
