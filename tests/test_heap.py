"""Freed heap memory goes back to the system: between stages (glibc's malloc_trim), and a large block
the moment it is freed (bound_heap)."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from awncompress.train.heap import release_free_memory


def _resident_mib() -> float:
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024


def test_freed_blocks_below_a_live_one_are_handed_back():
    # 2,000 blocks of 64 KiB (below glibc's mmap threshold: they come from the heap), then one that stays
    # live above them, as a model copy outlives a fine-tune's freed optimizer state.
    blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(2000)]
    for block in blocks:
        ctypes.memset(block, 1, len(block))  # touched: resident
    keep = ctypes.create_string_buffer(64 * 1024)
    ctypes.memset(keep, 1, len(keep))
    del blocks
    before = _resident_mib()
    release_free_memory()
    assert before - _resident_mib() > 64  # of the 125 MiB freed; glibc alone kept them all resident
    assert keep.raw[:1] == b"\x01"


_FREE_LARGE_BLOCKS = r"""
import ctypes, re, sys
from pathlib import Path
from awncompress.train.heap import bound_heap
bounded = bound_heap() if sys.argv[1] == "bound" else False
rss = lambda: int(re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024
# One 8 MiB block freed first raises glibc's dynamic threshold above 8 MiB (the first steps of a fine-tune)...
first = ctypes.create_string_buffer(8 << 20)
del first
blocks = [ctypes.create_string_buffer(8 << 20) for _ in range(24)]  # ...so these come from the heap
for block in blocks:
    ctypes.memset(block, 1, len(block))
keep = ctypes.create_string_buffer(64 * 1024)  # live above them: the heap's top cannot shrink
before = rss()
del blocks
print(bounded, round(before - rss()))
"""


@pytest.mark.parametrize("mode", ["bound", "default"])
def test_bound_heap_hands_large_freed_blocks_back_at_once(mode):
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    done = subprocess.run(
        [sys.executable, "-c", _FREE_LARGE_BLOCKS, mode], capture_output=True, text=True, env=env, check=True
    )
    bounded, freed = done.stdout.split()
    if mode == "bound":
        assert bounded == "True" and int(freed) > 150  # of the 192 MiB freed, without a trim
    else:  # glibc's own dynamic threshold keeps them resident: what bound_heap is for
        assert int(freed) < 50


def test_bound_heap_leaves_a_users_own_threshold_alone():
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(4 << 20)}
    done = subprocess.run(
        [sys.executable, "-c", _FREE_LARGE_BLOCKS, "bound"], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split()[0] == "False"
