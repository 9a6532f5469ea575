"""Atomic writes: files and directories appear whole or not at all; and removal of what a killed
run left behind.

A single file is written to a temporary file beside it and renamed onto it (`write_atomically`,
`write_text_atomically`). Results made of several files (feature caches, saved models,
submissions, generated data) are written into a staging directory
`.<name>.<8 random characters>[.tmp]` beside their final place and renamed into place when
complete (`staging_dir`, `replacing_dir`). A run killed in between leaves the staging directory; `remove_stale_staging` removes
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
from typing import Callable

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
    os.chmod(staging, 0o777 & ~_umask())
    lock = os.open(staging, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield staging
    finally:
        os.close(lock)
        shutil.rmtree(staging, ignore_errors=True)


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it onto `path`.

    The file's permissions follow the umask (mkstemp's 0600 would hide it from other users).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        os.chmod(temporary, 0o666 & ~_umask())
        write(Path(temporary))
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


@contextmanager
def replacing_dir(target: Path) -> Iterator[Path]:
    """A staging directory (see `staging_dir`) renamed onto `target` when the block completes;
    an existing `target` must be empty (`os.replace`)."""
    with staging_dir(target) as staging:
        yield staging
        os.replace(staging, target)


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


def _umask() -> int:
    """This process's umask (read by setting it and setting it back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


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
