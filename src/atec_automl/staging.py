"""Staging directories for atomic writes, and removal of the ones a killed run left behind.

Results (feature caches, submissions, generated data) are written into a staging directory
`.<name>.<8 random characters>[.tmp]` beside their final place and renamed into place when
complete. A run killed in between leaves the staging directory; `remove_stale_staging` removes
such leftovers on a later run, only when they are abandoned: last touched (the directory or
anything directly in it) at least `QUIET_SECONDS` before this process started, and not locked by
a live writer (`staging_dir` holds an exclusive lock on the directory while writing).
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

STAGING_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}(\.tmp)?$")
QUIET_SECONDS = 600.0


def process_start_time() -> float:
    """When this process started (seconds since the epoch)."""
    return psutil.Process().create_time()


@contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A new, locked staging directory for `target` beside it; removed on exit unless renamed away.

    Its permissions follow the umask (mkdtemp's 0700 would hide the result from other users).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    lock = os.open(staging, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield staging
    finally:
        os.close(lock)
        shutil.rmtree(staging, ignore_errors=True)


def remove_stale_staging(parent: Path, started: float | None = None) -> list[Path]:
    """Remove the abandoned staging directories directly in `parent`; return those removed.

    `started` (default: this process's start time) is the reference: a directory touched after
    `started - QUIET_SECONDS` may belong to a concurrent run and is kept.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    cutoff = (process_start_time() if started is None else started) - QUIET_SECONDS
    removed = []
    for entry in os.scandir(parent):
        if STAGING_NAME.match(entry.name) and entry.is_dir(follow_symlinks=False):
            path = Path(entry.path)
            if _last_touched(path) < cutoff and _remove_unless_locked(path):
                removed.append(path)
    return removed


def _last_touched(directory: Path) -> float:
    """The latest modification time of `directory` and of the entries directly in it."""
    try:
        times = [directory.stat().st_mtime]
        times += [entry.stat(follow_symlinks=False).st_mtime for entry in os.scandir(directory)]
    except OSError:
        return float("inf")  # vanished or unreadable meanwhile: leave it alone
    return max(times)


def _remove_unless_locked(directory: Path) -> bool:
    """Remove `directory` unless a live writer holds its lock (see `staging_dir`); whether removed."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(directory, ignore_errors=True)
    except BlockingIOError:
        return False
    finally:
        os.close(handle)
    return True
