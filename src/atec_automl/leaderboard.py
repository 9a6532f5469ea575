"""The local leaderboard: every scored model (trial, blend or outside file) as one immutable entry.

Entries live in an embedded SQLite file (`leaderboard/leaderboard.sqlite` by default) in WAL mode
with a busy timeout, so several worker processes can add entries at once. An entry is written in
one transaction together with its scored-days predictions and is never rewritten. Predictions are
stored compactly: each entry's scores as a compressed npz blob, and its rows (event ids, labels,
fold names), which all trials on the same data and split share, once per distinct row set; beside
them its test-board predictions (float32, compressed) and its bootstrap replicates. Its
`entry_key` is unique: the same trial (study + trial number) can never be recorded twice, even
when two workers race; the second `add` raises `DuplicateEntryError`.

An entry of an Optuna trial is added unconfirmed (`confirmed=False`) before the trial is told
complete, and confirmed after: a worker killed in between leaves an entry that is never ranked,
chosen or blended (the trial is retried), and `confirm` at the next sweep's start catches a trial
that completed but whose entry was not confirmed yet.

This module is a store: it computes no metric and reads no data set (see `evaluation.py`).
"""
from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from atec_automl.errors import AtecError
from atec_automl.provenance import current_git_commit

FAMILIES = ("catboost", "mlp", "cnn_lstm", "blend", "file")
METRICS = ("score", "tpr1", "tpr2", "tpr3", "auc")
BUSY_TIMEOUT_S = 60.0
SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_key TEXT NOT NULL UNIQUE,
    family TEXT NOT NULL,
    study TEXT NOT NULL,
    trial INTEGER,
    params TEXT NOT NULL,
    config_yaml TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    split TEXT NOT NULL,
    fold_scores TEXT NOT NULL,
    score REAL NOT NULL,
    tpr1 REAL NOT NULL,
    tpr2 REAL NOT NULL,
    tpr3 REAL NOT NULL,
    auc REAL NOT NULL,
    fit_seconds REAL NOT NULL,
    predict_seconds REAL NOT NULL,
    git_commit TEXT NOT NULL,
    best_iteration INTEGER,
    policy TEXT NOT NULL,
    frauds INTEGER NOT NULL,
    score_low REAL,
    score_high REAL,
    true_a REAL,
    true_b REAL,
    confirmed INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS row_sets (
    digest TEXT PRIMARY KEY,
    npz BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    entry_id INTEGER PRIMARY KEY REFERENCES entries(id),
    row_set TEXT NOT NULL REFERENCES row_sets(digest),
    score_npz BLOB NOT NULL,
    bootstrap_npz BLOB,
    test_npz BLOB
);
CREATE INDEX IF NOT EXISTS entries_rank ON entries (score DESC, auc DESC, id);
"""


class DuplicateEntryError(AtecError):
    """An entry with the same `entry_key` is already on the leaderboard."""

    def __init__(self, key: str, existing_id: int | None):
        self.key, self.existing_id = key, existing_id
        super().__init__(f"leaderboard: entry {key!r} is already recorded (entry id {existing_id}); not added again")


@dataclass(frozen=True)
class Predictions:
    """Scored-days predictions of one entry, aligned arrays: event id, 0/1 label, score, fold name."""

    event_id: np.ndarray
    label: np.ndarray
    score: np.ndarray
    fold: np.ndarray

    def _row_arrays(self) -> dict[str, np.ndarray]:
        """Event ids and fold names as UTF-8 bytes, labels as int8: what identifies the rows."""
        return {"event_id": np.char.encode(self.event_id.astype(str), "utf-8"), "label": self.label.astype(np.int8),
                "fold": np.char.encode(self.fold.astype(str), "utf-8")}

    def rows_npz(self) -> bytes:
        """The rows (event id, label, fold) as a compressed npz blob (no pickled objects)."""
        return _npz(self._row_arrays())

    def score_npz(self) -> bytes:
        """The scores (float64) as a compressed npz blob."""
        return _npz({"score": self.score.astype(np.float64)})

    @classmethod
    def from_npz(cls, rows_blob: bytes, score_blob: bytes) -> Predictions:
        """Inverse of `rows_npz` and `score_npz`."""
        with np.load(io.BytesIO(rows_blob), allow_pickle=False) as rows, \
                np.load(io.BytesIO(score_blob), allow_pickle=False) as scores:
            return cls(np.char.decode(rows["event_id"], "utf-8"), rows["label"], scores["score"],
                       np.char.decode(rows["fold"], "utf-8"))

    def rows_digest(self) -> str:
        """Content hash of the rows, the key of their shared row set."""
        return _digest(self._row_arrays().values())

    def digest(self) -> str:
        """Content hash of rows and scores, the key of entries that have no trial number."""
        return _digest([*self._row_arrays().values(), self.score.astype(np.float64)])


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays as the bytes of a compressed npz file."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _digest(arrays: Iterable[np.ndarray]) -> str:
    """A short SHA-256 of the arrays' bytes (with their dtypes and lengths)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype.str}:{len(array)};".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Entry:
    """One leaderboard row; `id` and `created_at` are assigned by `Leaderboard.add`.

    `fold_scores` holds one dict per fold (fold, score, tpr1, tpr2, tpr3, auc, frauds, negatives,
    best_step, first_scored_day, last_scored_day); the top-level metrics are their means and
    `frauds` their total. `best_iteration` is the iteration or epoch count a refit on all data
    should use; `policy` the grey-label policy. `score_low`..`score_high` is the bootstrap interval
    of the mean score, `bootstrap` its replicates (paired across entries on the same rows);
    `true_a` / `true_b` the true board scores where hidden labels exist (synthetic data).
    `predictions` (scored rows), `bootstrap` and `test_scores` (each test board's rows, in board
    order) are None on entries read by `ranked` or `get`; load them with `Leaderboard.predictions`,
    `bootstrap` and `test_scores`.
    """

    family: str
    study: str
    trial: int | None
    params: dict[str, Any]
    config_yaml: str
    data_fingerprint: str
    split: str
    fold_scores: list[dict[str, Any]]
    score: float
    tpr1: float
    tpr2: float
    tpr3: float
    auc: float
    fit_seconds: float
    predict_seconds: float
    git_commit: str
    best_iteration: int | None = None
    policy: str = ""
    frauds: int = 0
    score_low: float | None = None
    score_high: float | None = None
    true_a: float | None = None
    true_b: float | None = None
    predictions: Predictions | None = field(default=None, repr=False)
    bootstrap: np.ndarray | None = field(default=None, repr=False)
    test_scores: dict[str, np.ndarray] | None = field(default=None, repr=False)
    confirmed: bool = True
    created_at: str | None = None
    id: int | None = None
    key: str | None = None

    @classmethod
    def from_folds(cls, fold_scores: Sequence[dict[str, Any]], predictions: Predictions, *, family: str, study: str,
                   trial: int | None, params: dict[str, Any], config_yaml: str, data_fingerprint: str, split: str,
                   fit_seconds: float, predict_seconds: float, git_commit: str | None = None, **extra: Any) -> Entry:
        """The entry of already-scored folds: metrics are the means of `fold_scores`, frauds their total."""
        if not fold_scores:
            raise AtecError("leaderboard: an entry needs at least one scored fold")
        means = {name: float(np.mean([s[name] for s in fold_scores])) for name in METRICS}
        return cls(family=family, study=study, trial=trial, params=dict(params), config_yaml=config_yaml,
                   data_fingerprint=data_fingerprint, split=split, fold_scores=list(fold_scores), **means,
                   fit_seconds=float(fit_seconds), predict_seconds=float(predict_seconds),
                   git_commit=git_commit or current_git_commit(),
                   frauds=int(sum(s.get("frauds", 0) for s in fold_scores)), predictions=predictions, **extra)

    def entry_key(self) -> str:
        """Unique key: `key` if set, else `study/trial`, else `study/` + a hash of the predictions."""
        if self.key:
            return self.key
        if self.trial is not None:
            return f"{self.study}/{self.trial}"
        if self.predictions is None:
            raise AtecError(f"leaderboard: entry of study {self.study!r} has neither a trial number nor predictions")
        return f"{self.study}/{self.data_fingerprint[:12]}-{self.predictions.digest()}"

    def label(self) -> str:
        """`study/trial`, or just the study when there is no trial number."""
        return self.study if self.trial is None else f"{self.study}/{self.trial}"


def _json(value: Any) -> str:
    """JSON text of params / fold scores; numpy scalars and arrays become plain numbers and lists."""
    def plain(item: Any) -> Any:
        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, np.ndarray):
            return item.tolist()
        raise TypeError(f"leaderboard: cannot store a {type(item).__name__} in params")
    return json.dumps(value, default=plain, sort_keys=True)


ROW_COLUMNS = ("id", "entry_key", "family", "study", "trial", "params", "config_yaml", "data_fingerprint", "split",
               "fold_scores", "score", "tpr1", "tpr2", "tpr3", "auc", "fit_seconds", "predict_seconds",
               "git_commit", "best_iteration", "policy", "frauds", "score_low", "score_high", "true_a", "true_b",
               "confirmed", "created_at")


def _entry_from_row(row: sqlite3.Row) -> Entry:
    """An `Entry` (without predictions) from a row of the entries table."""
    values = dict(zip(ROW_COLUMNS, row))
    values["key"] = values.pop("entry_key")
    values["params"] = json.loads(values["params"])
    values["fold_scores"] = json.loads(values["fold_scores"])
    values["confirmed"] = bool(values["confirmed"])
    return Entry(**values)


class Leaderboard:
    """The SQLite store at `path` (created with its folder on first use); safe across processes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived autocommit connection in WAL mode with a busy timeout; schema ensured."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                self._create_schema(connection)
            elif version != SCHEMA_VERSION:
                raise AtecError(f"leaderboard {self.path}: store format {version}, this code reads format "
                                f"{SCHEMA_VERSION}; move the old file away to start a new leaderboard")
            yield connection
        except sqlite3.DatabaseError as error:
            raise AtecError(f"leaderboard {self.path}: {error}") from error
        finally:
            connection.close()

    @staticmethod
    def _create_schema(connection: sqlite3.Connection) -> None:
        """Switch to WAL and create the tables (idempotent, safe when several processes race)."""
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, SCHEMA.split(";")):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def add(self, entry: Entry) -> int:
        """Record `entry` with its predictions in one transaction and return its id.

        Raises `DuplicateEntryError` (and writes nothing) if its `entry_key` is already recorded.
        The shared row set is compressed only if it is not stored yet (row sets are never deleted).
        """
        self._validate(entry)
        key = entry.entry_key()
        created_at = entry.created_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
        values = (key, entry.family, entry.study, entry.trial, _json(entry.params), entry.config_yaml,
                  entry.data_fingerprint, entry.split, _json(entry.fold_scores), entry.score, entry.tpr1,
                  entry.tpr2, entry.tpr3, entry.auc, entry.fit_seconds, entry.predict_seconds, entry.git_commit,
                  entry.best_iteration, entry.policy, entry.frauds, entry.score_low, entry.score_high, entry.true_a,
                  entry.true_b, int(entry.confirmed), created_at)
        predictions = entry.predictions
        row_set, score_blob = predictions.rows_digest(), predictions.score_npz()
        bootstrap_blob = None if entry.bootstrap is None else _npz({"replicates": np.asarray(entry.bootstrap, np.float64)})
        test_blob = None if not entry.test_scores else _npz({b: np.asarray(s, np.float32) for b, s in entry.test_scores.items()})
        with self._connect() as connection:
            stored = connection.execute("SELECT 1 FROM row_sets WHERE digest = ?", (row_set,)).fetchone()
            rows_blob = None if stored else predictions.rows_npz()
            connection.execute("BEGIN IMMEDIATE")
            try:
                cursor = connection.execute(
                    f"INSERT INTO entries ({', '.join(ROW_COLUMNS[1:])}) VALUES ({', '.join('?' * len(values))})", values)
                entry_id = int(cursor.lastrowid)
                if rows_blob is not None:
                    connection.execute("INSERT OR IGNORE INTO row_sets (digest, npz) VALUES (?, ?)", (row_set, rows_blob))
                connection.execute("INSERT INTO predictions (entry_id, row_set, score_npz, bootstrap_npz, test_npz) "
                                   "VALUES (?, ?, ?, ?, ?)", (entry_id, row_set, score_blob, bootstrap_blob, test_blob))
                connection.execute("COMMIT")
            except sqlite3.IntegrityError:
                connection.execute("ROLLBACK")
                existing = connection.execute("SELECT id FROM entries WHERE entry_key = ?", (key,)).fetchone()
                raise DuplicateEntryError(key, existing[0] if existing else None) from None
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return entry_id

    @staticmethod
    def _validate(entry: Entry) -> None:
        """Reject entries the report and refits could not use."""
        if entry.family not in FAMILIES:
            raise AtecError(f"leaderboard: unknown family {entry.family!r}; choose one of {', '.join(FAMILIES)}")
        if entry.predictions is None:
            raise AtecError(f"leaderboard: entry {entry.label()!r} has no predictions")
        if not entry.fold_scores:
            raise AtecError(f"leaderboard: entry {entry.label()!r} has no fold scores")
        metrics = [getattr(entry, name) for name in METRICS]
        if not np.all(np.isfinite(metrics)):
            raise AtecError(f"leaderboard: entry {entry.label()!r} has a non-finite metric: {dict(zip(METRICS, metrics))}")

    def ranked(self, top: int | None = None, family: str | None = None, study: str | None = None,
               data: str | None = None) -> list[Entry]:
        """Confirmed entries best score first (ties: higher AUC, then earlier id), optionally filtered.

        `data` matches data fingerprints by prefix, so a short fingerprint as printed works.
        A store that does not exist yet has no entries (and is not created).
        """
        if not self.path.exists():
            return []
        where, arguments = ["confirmed = 1"], []
        for column, value in (("family", family), ("study", study)):
            if value is not None:
                where.append(f"{column} = ?")
                arguments.append(value)
        if data is not None:
            where.append("substr(data_fingerprint, 1, ?) = ?")
            arguments += [len(data), data]
        sql = f"SELECT {', '.join(ROW_COLUMNS)} FROM entries WHERE " + " AND ".join(where)
        sql += " ORDER BY score DESC, auc DESC, id ASC"
        if top is not None:
            sql += " LIMIT ?"
            arguments.append(int(top))
        with self._connect() as connection:
            return [_entry_from_row(row) for row in connection.execute(sql, arguments)]

    def confirm(self, entry_ids: Iterable[int]) -> None:
        """Mark entries whose trials completed as confirmed (idempotent)."""
        ids = [int(i) for i in entry_ids]
        if not ids:
            return
        with self._connect() as connection:
            connection.executemany("UPDATE entries SET confirmed = 1 WHERE id = ?", [(i,) for i in ids])

    def unconfirmed(self, study: str) -> list[Entry]:
        """The study's entries whose trials were never confirmed complete."""
        if not self.path.exists():
            return []
        with self._connect() as connection:
            rows = connection.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM entries WHERE confirmed = 0 AND study = ?",
                                      (study,)).fetchall()
        return [_entry_from_row(row) for row in rows]

    def get(self, entry_id: int) -> Entry:
        """The entry with this id (without predictions)."""
        with self._connect() as connection:
            row = connection.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise AtecError(f"leaderboard {self.path}: no entry with id {entry_id}")
        return _entry_from_row(row)

    def predictions(self, entry_id: int) -> Predictions:
        """The stored scored-days predictions of an entry."""
        with self._connect() as connection:
            row = connection.execute("SELECT row_sets.npz, predictions.score_npz FROM predictions JOIN row_sets "
                                     "ON row_sets.digest = predictions.row_set WHERE entry_id = ?", (entry_id,)).fetchone()
        if row is None:
            raise AtecError(f"leaderboard {self.path}: no predictions for entry id {entry_id}")
        return Predictions.from_npz(*row)

    def _blob(self, entry_id: int, column: str) -> bytes | None:
        """One npz column of an entry's predictions row."""
        with self._connect() as connection:
            row = connection.execute(f"SELECT {column} FROM predictions WHERE entry_id = ?", (entry_id,)).fetchone()
        if row is None:
            raise AtecError(f"leaderboard {self.path}: no predictions for entry id {entry_id}")
        return row[0]

    def bootstrap(self, entry_id: int) -> np.ndarray | None:
        """The entry's bootstrap replicates of its mean score (None if it has none)."""
        blob = self._blob(entry_id, "bootstrap_npz")
        if blob is None:
            return None
        with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
            return stored["replicates"]

    def test_scores(self, entry_id: int) -> dict[str, np.ndarray]:
        """The entry's stored predictions of each test board's rows (board order), float32; {} if none."""
        blob = self._blob(entry_id, "test_npz")
        if blob is None:
            return {}
        with np.load(io.BytesIO(blob), allow_pickle=False) as stored:
            return {board: stored[board] for board in stored.files}
