"""The scoring service's log of accepted events (`events.jsonl`): what a restart replays.

One JSON line per event, in the order the events joined the timeline. A request's lines are written,
then fsynced on a worker thread while the model scores the request (the fsync waits on the disk and
releases the GIL), and the scores are returned only once the fsync is done: a crash loses no
acknowledged event. A request that fails after its lines were written (the model, the write, the
fsync) takes them back: the file is cut to its size before them, so the log holds exactly the
accepted events. A write or an fsync that fails raises `EventLogError`, one line (the service answers
503: nothing was accepted, the client may retry). One service at a time writes a state folder's log
(`claim_state_dir`).
"""
from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import orjson

from atec_automl.errors import AtecError

log = logging.getLogger(__name__)


class EventLogError(AtecError):
    """The log could not take a request's events (a full disk, a file-size limit, an I/O error); they were not
    accepted and the log is as it was before them."""


@dataclass
class Written:
    """Lines written to the log and their fsync under way: the log's size before them, the fsync's future."""

    size_before: int
    synced: Future


def failure(path: Path, what: str, error: OSError) -> EventLogError:
    """The one-line error of a log operation that failed."""
    return EventLogError(f"serve: the event log {path} could not be {what} ({error.strerror or error})")


LOCK_FILE = "serve.lock"


def claim_state_dir(state_dir: Path) -> int:
    """Take the state folder for this process (an exclusive lock on `serve.lock` in it, held while the returned
    descriptor stays open, released by the system when the process ends, however it ends); one line when another
    service holds it: two services appending to one log would interleave their timelines."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_FILE
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(handle, 64).decode(errors="replace").strip() or "unknown"
        os.close(handle)
        raise AtecError(f"serve.state_dir={state_dir}: another service (pid {holder}) is using it; give each service "
                        "its own state_dir") from None
    os.ftruncate(handle, 0)
    os.write(handle, str(os.getpid()).encode())
    return handle


PLAIN_TYPES = {str, int, float, bool, type(None)}
"""Value types that orjson writes as `json.dumps` does (floats when finite, integers within 64 bits)."""


def encode_lines(records: list[dict]) -> bytes:
    """One UTF-8 JSON line per record. orjson writes them (a third of the standard encoder's time on a request of
    1,000 events: 3.4 ms against 9.5) unless it would not write what `json.dumps` writes: it turns NaN and
    infinities into null and refuses integers beyond 64 bits, so such records, and any holding other types, go
    through `json.dumps`."""
    types = set(map(type, chain.from_iterable(map(dict.values, records))))
    if types <= PLAIN_TYPES and (float not in types or all(
            math.isfinite(v) for r in records for v in r.values() if type(v) is float)):
        try:
            return b"".join([orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records])
        except TypeError:
            pass
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


class EventLog:
    """Append-only JSON lines, each request's fsynced before its scores are returned."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None
        self._size = 0
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-log-fsync")

    def _open(self) -> int:
        """The log's descriptor, opened (and its folder entry fsynced) on first use."""
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._size = os.fstat(self._fd).st_size
                folder = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
            except OSError as error:
                raise failure(self.path, "opened", error) from None
        return self._fd

    def append(self, records: list[dict]) -> Written:
        """Write the records' lines and start their fsync; `wait` for it before acknowledging them."""
        fd = self._open()
        size_before = self._size
        lines = memoryview(encode_lines(records))
        try:
            while lines:
                written = os.write(fd, lines)
                self._size += written
                lines = lines[written:]
        except BaseException as error:
            self._cut(size_before)
            if isinstance(error, OSError):
                raise failure(self.path, "written", error) from None
            raise
        synced = self._syncer.submit(os.fsync, fd)
        time.sleep(0)  # hand the GIL to the worker so that the fsync starts now, not at the next switch interval
        return Written(size_before, synced)

    def wait(self, written: Written) -> None:
        """Return once the lines of `written` are on disk; `EventLogError` if their fsync failed."""
        try:
            written.synced.result()
        except OSError as error:
            raise failure(self.path, "synced to disk", error) from None

    def take_back(self, written: Written) -> None:
        """Remove the lines of `written` (and anything after them) once their fsync is over, and fsync the cut."""
        try:
            self.wait(written)
        except EventLogError:
            pass  # the cut below is fsynced again
        self._cut(written.size_before)

    def _cut(self, size: int) -> None:
        """Truncate the log to `size` bytes, durably."""
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError as error:
            raise failure(self.path, f"cut back to {size} bytes", error) from None
        self._size = size

    def read(self) -> list[dict]:
        """The logged events; a last line cut short by a crash (never acknowledged) is dropped from the file."""
        if not self.path.is_file():
            return []
        text = self.path.read_text(encoding="utf-8")
        lines = text.split("\n")
        complete, tail = lines[:-1], lines[-1]
        if tail:
            log.warning("serve: dropping an unfinished last line of %s (written during a crash, never acknowledged)",
                        self.path)
            with open(self.path, "r+", encoding="utf-8") as stream:
                stream.truncate(len(text.encode("utf-8")) - len(tail.encode("utf-8")))
        records = []
        for number, line in enumerate(complete, start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise AtecError(f"serve: {self.path} line {number} is not an event (damaged log)") from None
        return records
