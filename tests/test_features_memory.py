"""Feature building keeps freed memory in the heap for the next array, and hands it back to the kernel after."""
from __future__ import annotations

import numpy as np
import psutil
import pytest

from atec_automl.features.memory import _glibc, reuse_freed_memory

MIB = 1 << 20
pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc's allocator only")


def resident_growth_after_freeing(mib: int) -> int:
    """Resident bytes gained by allocating, filling and freeing an array of `mib` MiB."""
    process = psutil.Process()
    before = process.memory_info().rss
    array = np.empty(mib * MIB, dtype=np.uint8)
    array.fill(1)
    del array
    return process.memory_info().rss - before


def test_freed_arrays_stay_resident_for_reuse_inside_only():
    with reuse_freed_memory():
        kept = resident_growth_after_freeing(48)
        again = resident_growth_after_freeing(48)
    outside = resident_growth_after_freeing(48)
    assert kept > 40 * MIB
    assert abs(again) < 8 * MIB  # the second array reused the kept pages
    assert abs(outside) < 8 * MIB  # by default glibc unmaps a freed block this large


def test_freed_memory_goes_back_to_the_kernel_on_leaving():
    process = psutil.Process()
    with reuse_freed_memory():
        resident_growth_after_freeing(96)
        kept = process.memory_info().rss
    assert kept - process.memory_info().rss > 64 * MIB
