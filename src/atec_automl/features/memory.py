"""Freed memory kept for reuse while features are built (glibc's allocator; a no-op elsewhere).

Feature building allocates and frees hundreds of arrays of N elements. By default glibc hands
large blocks back to the kernel when they are freed (mmap'ed blocks, or a trimmed heap top), so
the next array of the same size page-faults every page afresh: at 1 M rows that was 180 k
minor faults and about 13 % of the build's CPU, a share that grows with the rows (one reason
10x the rows cost more than 10x the CPU). Inside `reuse_freed_memory` large blocks come from the
heap and freed ones stay there for the next array; on leaving, the thresholds are set to the
ceiling glibc's own adaptive rule reaches and the free heap pages are returned to the kernel.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_MMAP_THRESHOLD = 1 << 30
KEEP_TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes a C int
ADAPTIVE_MMAP_CEILING = 32 << 20


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (has `mallopt` and `malloc_trim`), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Keep freed blocks in the heap for reuse inside the block; release the free pages after it."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, KEEP_MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, ADAPTIVE_MMAP_CEILING)
        libc.mallopt(M_TRIM_THRESHOLD, 2 * ADAPTIVE_MMAP_CEILING)
        libc.malloc_trim(0)
