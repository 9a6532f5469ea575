"""Freed memory kept for reuse while features are built (glibc's allocator; a no-op elsewhere).

Feature building allocates and frees hundreds of arrays of N elements. By default glibc hands
large blocks back to the kernel when they are freed (mmap'ed blocks, or a trimmed heap top), so
the next array of the same size page-faults every page afresh: at 1 M rows that was 180 k
minor faults and about 13 % of the build's CPU, a share that grows with the rows (one reason
10x the rows cost more than 10x the CPU). Inside `reuse_freed_memory` large blocks come from the
heap and freed ones stay there for the next array; on leaving, the thresholds are set to the
ceiling glibc's own adaptive rule reaches and the free heap pages are returned to the kernel.

Inside it numpy also stops advising the kernel to back its large arrays (4 MiB and more) with
transparent huge pages (THP `enabled=madvise`, the usual setting). Measured on a 2-core VM at 1 M
rows: 1.6-2.1 s of system time out of about 7 s with the advice, 0.5 s without, the same user time;
perf puts that system time in the kernel zeroing fresh 2 MiB pages (`clear_page_erms` under
`do_huge_pmd_anonymous_page`). At 100 k rows the advice saved a little (0.45 s against 0.49 s),
at 300 k nothing. numpy's own switch, the `NUMPY_MADVISE_HUGEPAGE` environment variable, wins
when it is set.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import os
import sys
from collections.abc import Callable, Iterator
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


def _hugepage_advice_switch() -> Callable[[bool], bool] | None:
    """numpy's switch of its huge-page advice (takes the new setting, returns the old one); None where
    this numpy has none, or when `NUMPY_MADVISE_HUGEPAGE` chose the setting."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return None
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(module), "_set_madvise_hugepage")
        except (ImportError, AttributeError):
            continue
    return None


@contextmanager
def without_hugepage_advice() -> Iterator[None]:
    """numpy's huge-page advice off inside the block, as it was after it."""
    switch = _hugepage_advice_switch()
    if switch is None:
        yield
        return
    previous = switch(False)
    try:
        yield
    finally:
        switch(previous)


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Keep freed blocks in the heap for reuse inside the block, without numpy's huge-page advice;
    release the free pages after it."""
    with without_hugepage_advice(), _heap_kept():
        yield


@contextmanager
def _heap_kept() -> Iterator[None]:
    """glibc's large blocks from the heap, and freed ones kept there, inside the block; the free heap
    pages returned to the kernel after it (nothing where the C library is not glibc)."""
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
