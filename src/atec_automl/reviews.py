"""Reviewed labels: what people (or an online service's feedback) said an event really was.

`ReviewStore(path)` is the one store of reviewed labels (SQLite, `leaderboard/reviews.sqlite` by
default): `add(event_ids, labels, source)` writes a batch in one transaction (all or nothing; the
latest review of an event wins), `read()` returns every event's latest label. Several processes may
add and read at once (SQLite's locking, WAL journal).

`read_review_file(path, training_ids)` reads a filled review CSV (`event_id,label`, other columns
ignored, an empty label = not reviewed) and refuses unknown ids, duplicate ids and labels other than
0 and 1 in one error naming the file, line and value. `reviewed_labels(store, ids, train)` aligns the
store with a timeline: the reviewed label of each training row, NaN elsewhere. A store that cannot be
opened, written or read (a damaged file, a full disk, a lock held past the timeout) is one `AtecError` line
naming the file.
"""
from __future__ import annotations

import csv
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from atec_automl.errors import AtecError

STORE_NAME = "reviews.sqlite"
SCHEMA = """CREATE TABLE IF NOT EXISTS reviews (
    event_id TEXT PRIMARY KEY,
    label INTEGER NOT NULL CHECK (label IN (0, 1)),
    source TEXT NOT NULL,
    reviewed_at TEXT NOT NULL
)"""


class ReviewStore:
    """The reviewed labels of events, keyed by event id, in one SQLite file."""

    def __init__(self, path: Path | str, timeout_s: float = 60.0):
        self.path = Path(path)
        self.timeout_s = timeout_s

    @contextmanager
    def _failures(self, what: str) -> Iterator[None]:
        """Any sqlite3 error of the block as one `AtecError` line: the store `what` (e.g. "could not be read")."""
        try:
            yield
        except sqlite3.Error as error:
            raise AtecError(f"reviews: the store {self.path} {what} ({error})") from error

    def _connect(self) -> sqlite3.Connection:
        """A connection that waits up to `timeout_s` for another writer, with the table in place (WAL journal).

        Switching the journal to WAL answers "database is locked" at once, without SQLite's busy
        wait, while other processes open the same new file: that step is retried until `timeout_s`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(SCHEMA)
                return connection
            except sqlite3.Error as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    connection.close()
                    with self._failures("could not be opened"):
                        raise
            time.sleep(random.uniform(0.005, 0.05))

    def add(self, event_ids: Sequence[str], labels: Sequence[int], source: str) -> int:
        """Record each event's label (0 or 1) from `source` in one transaction; returns the rows written."""
        ids = [str(event_id) for event_id in event_ids]
        values = [int(label) for label in labels]
        if len(ids) != len(values):
            raise AtecError(f"reviews: {len(ids)} event ids but {len(values)} labels")
        bad = [label for label in values if label not in (0, 1)]
        if bad:
            raise AtecError(f"reviews: label {bad[0]} is not 0 or 1")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        with closing(self._connect()) as connection, self._failures(f"could not take {len(ids)} labels"):
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    "INSERT INTO reviews (event_id, label, source, reviewed_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(event_id) DO UPDATE SET label = excluded.label, source = excluded.source, "
                    "reviewed_at = excluded.reviewed_at",
                    [(event_id, label, str(source), stamp) for event_id, label in zip(ids, values)])
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        return len(ids)

    def read(self) -> dict[str, int]:
        """Every reviewed event's latest label; empty when nothing was ever reviewed (no file is created)."""
        if not self.path.exists():
            return {}
        with closing(self._connect()) as connection, self._failures("could not be read"):
            return {event_id: int(label) for event_id, label in connection.execute("SELECT event_id, label FROM reviews")}


def store_path(leaderboard_path: Path | str, reviews_path: Path | str | None = None) -> Path:
    """The store's file: `reviews_path` if given, else `reviews.sqlite` beside the leaderboard."""
    return Path(reviews_path) if reviews_path else Path(leaderboard_path).parent / STORE_NAME


def read_review_file(path: Path | str, training_ids: Iterable[str]) -> tuple[list[str], list[int]]:
    """The reviewed (event id, label) pairs of a filled review CSV; rows with an empty label are skipped."""
    path = Path(path)
    where = f"labels.reviews={path}"
    if not path.is_file():
        raise AtecError(f"{where}: no such file")
    known = set(training_ids)
    seen: dict[str, int] = {}
    ids: list[str] = []
    labels: list[int] = []
    for line, event_id, text in review_rows(path, where):
        if event_id in seen:
            raise AtecError(f"{where}: line {line}: event_id {event_id!r} is listed twice (first on line {seen[event_id]})")
        seen[event_id] = line
        if event_id not in known:
            raise AtecError(f"{where}: line {line}: event_id {event_id!r} is not a training row of this data")
        if not text:
            continue
        if text not in ("0", "1"):
            raise AtecError(f"{where}: line {line}, column 'label': {text!r} is not 0 or 1 (leave it empty if not reviewed)")
        ids.append(event_id)
        labels.append(int(text))
    return ids, labels


def review_rows(path: Path, where: str) -> Iterator[tuple[int, str, str]]:
    """(line, event id, label text) of each row of a review CSV, stripped; `AtecError` naming `where` when its
    header lacks event_id or label."""
    with open(path, encoding="utf-8-sig", newline="") as stream:
        reader = csv.DictReader(stream)
        missing = [column for column in ("event_id", "label") if column not in (reader.fieldnames or [])]
        if missing:
            raise AtecError(f"{where}: no column {missing[0]!r} in the header (need event_id,label)")
        for line, row in enumerate(reader, start=2):
            yield line, (row["event_id"] or "").strip(), (row["label"] or "").strip()


def reviewed_labels(reviews: Mapping[str, int], event_ids: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Per timeline row: its reviewed label (0.0 / 1.0) if it is a training row with a review, else NaN."""
    known = pd.Series(reviews, dtype=np.float64).reindex(np.asarray(event_ids).astype(str)).to_numpy()
    return np.where(np.asarray(train, dtype=bool), known, np.nan)
