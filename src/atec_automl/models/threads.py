"""How many threads one training process may use: the cores it may run on, shared by the workers
started on the same host.

The usable cores are the CPUs the scheduler lets this process run on (`os.sched_getaffinity`),
capped by the cgroup CPU quota (a container's `--cpus`: `cpu.max` under cgroup v2,
`cpu.cfs_quota_us / cpu.cfs_period_us` under v1) rounded down, divided among `workers_per_host`
workers, at least 1. The libraries' own defaults count every core of the host instead.
"""
from __future__ import annotations

import math
import os
from pathlib import Path


CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def affinity_cores() -> int:
    """The number of CPUs this process may be scheduled on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cgroup_cpu_quota(cpu_max: Path = CGROUP_V2_CPU_MAX, cfs_quota: Path = CGROUP_V1_QUOTA,
                     cfs_period: Path = CGROUP_V1_PERIOD) -> float | None:
    """CPUs' worth of time the cgroup grants per period; None when unlimited, absent or unreadable."""
    v2 = _read(cpu_max)
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        return None if quota == "max" else _ratio(quota, period)
    quota, period = _read(cfs_quota), _read(cfs_period)
    return None if quota is None or period is None else _ratio(quota, period)


def usable_cores(workers_per_host: int = 1, cpu_max: Path = CGROUP_V2_CPU_MAX, cfs_quota: Path = CGROUP_V1_QUOTA,
                 cfs_period: Path = CGROUP_V1_PERIOD) -> int:
    """Cores for one of `workers_per_host` workers: min(affinity, quota rounded down) // workers, at least 1."""
    cores = affinity_cores()
    quota = cgroup_cpu_quota(cpu_max, cfs_quota, cfs_period)
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores // max(1, workers_per_host))


def set_torch_threads(threads: int) -> None:
    """Intra-op threads to `threads`; inter-op threads too while torch still allows it.

    torch accepts the inter-op count only once per process and only before any inter-op parallel
    work; after that the first count stays, which costs little (the harness runs no inter-op work).
    """
    import torch

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:
            pass


def _read(path: Path) -> str | None:
    """The stripped text of `path`, None if it cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    """quota / period of two integer strings; None for no limit (quota <= 0) or unparsable text."""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None
