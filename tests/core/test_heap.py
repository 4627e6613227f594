"""Freed memory that the C allocator keeps goes back to the operating system."""

import ctypes.util
import sys

import numpy as np
import pytest

from explorer.core.heap import release_freed_memory


def resident_anonymous_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon")


@pytest.mark.skipif(not sys.platform.startswith("linux") or "musl" in (ctypes.util.find_library("c") or ""),
                    reason="malloc_trim is glibc's")
def test_freed_arrays_held_by_the_allocator_are_released():
    # arrays below glibc's mmap threshold live in its heap; every other one freed leaves
    # holes it keeps (the live arrays between them stop it from shrinking the heap)
    arrays = [np.ones(12_000, np.float64) for _ in range(4_000)]  # 96 KB each, 0.38 GB
    del arrays[::2]
    held = resident_anonymous_bytes()
    assert release_freed_memory()
    released = held - resident_anonymous_bytes()
    assert released > 0.1e9, released  # most of the 0.19 GB freed
