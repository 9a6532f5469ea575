"""Feature building keeps freed memory in the heap for the next array, and hands it back to the kernel after;
numpy does not ask for huge pages while it runs."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


ADVICE_CHECK = textwrap.dedent("""
    import re, sys
    from pathlib import Path
    import numpy as np
    from atec_automl.features.memory import reuse_freed_memory

    def advised(array):
        start, end, hit, flags = array.ctypes.data, array.ctypes.data + array.nbytes, False, set()
        for line in Path("/proc/self/smaps").read_text().splitlines():
            span = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
            if span:
                hit = int(span[1], 16) < end and int(span[2], 16) > start
            elif line.startswith("VmFlags:") and hit:
                flags.update(line.split()[1:])
        return "hg" in flags

    with reuse_freed_memory():
        inside = np.ones(64 << 20, dtype=np.uint8)
        print(advised(inside))
    print(advised(np.ones(64 << 20, dtype=np.uint8)))
""")


@pytest.mark.skipif(not Path("/sys/kernel/mm/transparent_hugepage/enabled").exists(),
                    reason="a kernel with transparent huge pages")
def test_numpy_asks_for_no_huge_pages_while_features_are_built():
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    answer = subprocess.run([sys.executable, "-c", ADVICE_CHECK], capture_output=True, text=True, env=env, check=True)
    assert answer.stdout.split() == ["False", "True"]  # the kernel's huge-page flag: inside, then after


def test_a_set_numpy_madvise_hugepage_wins():
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "1"}
    answer = subprocess.run([sys.executable, "-c", ADVICE_CHECK], capture_output=True, text=True, env=env, check=True)
    assert answer.stdout.split()[0] == "True"
