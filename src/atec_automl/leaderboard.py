"""The leaderboard: every scored model (trial, blend or outside file) as one immutable entry.

Entries live in a database reached through SQLAlchemy, in tables of their own (`leaderboard_*`):
by default an embedded SQLite file (`leaderboard/leaderboard.sqlite`) in WAL mode with a busy
timeout, so several worker processes on one machine can add entries at once; given a PostgreSQL
URL (with `study=postgres`, the studies' own database), one leaderboard that every worker on every
machine writes and any machine ranks, reports and submits from. Workers that create the tables of
an empty database at the same moment retry as the Optuna storage does (`databases.py`).

An entry is written in one transaction together with its scored-days predictions and is never
rewritten. Predictions are stored compactly: each entry's scores as byte-shuffled float32 in a
compressed npz blob, with the few scores kept exactly whose rounding to float32 would merge two
distinct values (so ranks, ties and every ATEC score on the stored scores are those of the
originals); its rows (event ids, labels, fold names), which all trials on the same data and split
share, once per distinct row set; beside them its test-board predictions (float32, compressed)
and its bootstrap replicates. Its `entry_key` is unique: the same trial (study + trial number)
can never be recorded twice, even when two workers race; the second `add` raises
`DuplicateEntryError`.

An entry of an Optuna trial is added unconfirmed (`confirmed=False`) before the trial is told
complete, and confirmed after: a worker killed in between leaves an entry that is never ranked,
chosen or blended (the trial is retried), and `confirm` at the next sweep's start catches a trial
that completed but whose entry was not confirmed yet.

This module is a store: it computes no metric and reads no data set (see `evaluation.py`).
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import sqlalchemy
from sqlalchemy import (Boolean, Column, Double, ForeignKey, Index, Integer, LargeBinary, MetaData, Table, Text, func,
                        insert, inspect, select, true, update)
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from atec_automl.databases import redacted, retry_schema_race
from atec_automl.errors import AtecError
from atec_automl.provenance import current_git_commit

FAMILIES = ("catboost", "mlp", "cnn_lstm", "blend", "file")
METRICS = ("score", "tpr1", "tpr2", "tpr3", "auc")
BUSY_TIMEOUT_S = 60.0
SCHEMA_VERSION = 4
WRITE = "atec_leaderboard_write"
"""Execution option of a writing connection: on SQLite its transaction begins IMMEDIATE (takes the write lock first)."""

TABLES = MetaData()
ENTRIES = Table(
    "leaderboard_entries", TABLES,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_key", Text, nullable=False, unique=True),
    Column("family", Text, nullable=False),
    Column("study", Text, nullable=False),
    Column("trial", Integer),
    Column("params", Text, nullable=False),
    Column("config_yaml", Text, nullable=False),
    Column("data_fingerprint", Text, nullable=False),
    Column("split", Text, nullable=False),
    Column("fold_scores", Text, nullable=False),
    *(Column(name, Double, nullable=False) for name in (*METRICS, "fit_seconds", "predict_seconds")),
    Column("git_commit", Text, nullable=False),
    Column("best_iteration", Integer),
    Column("policy", Text, nullable=False),
    Column("frauds", Integer, nullable=False),
    *(Column(name, Double) for name in ("score_low", "score_high", "true_a", "true_b")),
    Column("confirmed", Boolean, nullable=False),
    Column("created_at", Text, nullable=False),
    sqlite_autoincrement=True,
)
Index("leaderboard_entries_rank", ENTRIES.c.score.desc(), ENTRIES.c.auc.desc(), ENTRIES.c.id)
ROW_SETS = Table(
    "leaderboard_row_sets", TABLES,
    Column("digest", Text, primary_key=True),
    Column("npz", LargeBinary, nullable=False),
)
PREDICTIONS = Table(
    "leaderboard_predictions", TABLES,
    Column("entry_id", Integer, ForeignKey(ENTRIES.c.id), primary_key=True, autoincrement=False),
    Column("row_set", Text, ForeignKey(ROW_SETS.c.digest), nullable=False),
    Column("score_npz", LargeBinary, nullable=False),
    Column("bootstrap_npz", LargeBinary),
    Column("test_npz", LargeBinary),
)
VERSION = Table("leaderboard_version", TABLES, Column("version", Integer, primary_key=True, autoincrement=False))

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
        """The scores as a compressed npz blob: float32, byte-shuffled (the exponent bytes compress),
        and exactly (float64) on the rows whose distinct values float32 would merge into one.

        Rounding to float32 keeps the order; only such merges could add ties, so the stored
        scores rank, tie and score exactly as the originals do."""
        score = np.asarray(self.score, dtype=np.float64)
        narrow = score.astype("<f4")
        distinct = np.unique(score)
        merged = np.flatnonzero(distinct[1:].astype(np.float32) == distinct[:-1].astype(np.float32))
        exact_rows = np.flatnonzero(np.isin(score, np.union1d(distinct[merged], distinct[merged + 1])))
        shuffled = np.ascontiguousarray(narrow.view(np.uint8).reshape(-1, 4).T)
        return _npz({"shuffled": shuffled, "exact_rows": exact_rows.astype(np.uint32), "exact": score[exact_rows]})

    @staticmethod
    def _scores(stored: Any) -> np.ndarray:
        """The float64 scores of an opened `score_npz` blob."""
        score = np.ascontiguousarray(stored["shuffled"].T).view("<f4").ravel().astype(np.float64)
        score[stored["exact_rows"]] = stored["exact"]
        return score

    @classmethod
    def from_npz(cls, rows_blob: bytes, score_blob: bytes) -> Predictions:
        """Inverse of `rows_npz` and `score_npz`."""
        with np.load(io.BytesIO(rows_blob), allow_pickle=False) as rows, \
                np.load(io.BytesIO(score_blob), allow_pickle=False) as scores:
            return cls(np.char.decode(rows["event_id"], "utf-8"), rows["label"], cls._scores(scores),
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


def _entry_from_row(row: RowMapping) -> Entry:
    """An `Entry` (without predictions) from a row of the entries table."""
    values = dict(row)
    values["key"] = values.pop("entry_key")
    values["params"] = json.loads(values["params"])
    values["fold_scores"] = json.loads(values["fold_scores"])
    values["confirmed"] = bool(values["confirmed"])
    return Entry(**values)


def _sqlite_connected(dbapi_connection: Any, _record: Any) -> None:
    """A new SQLite connection: transactions begun by `_sqlite_begin`, a busy timeout on every lock."""
    dbapi_connection.isolation_level = None
    dbapi_connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")


def _sqlite_begin(connection: Connection) -> None:
    """BEGIN IMMEDIATE for writers (no deadlock upgrading a read lock), a plain BEGIN for readers."""
    connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.get_execution_options().get(WRITE) else "BEGIN")


Method = TypeVar("Method", bound=Callable[..., Any])


def _one_line_errors(method: Method) -> Method:
    """Database errors of a `Leaderboard` method as one `AtecError` line naming the store."""
    @functools.wraps(method)
    def wrapped(self: Leaderboard, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except SQLAlchemyError as error:
            raise self._error(error) from error
    return wrapped  # type: ignore[return-value]


class Leaderboard:
    """The store at `location`: a SQLite file path (created with its folder on first use) or a
    database URL (`postgresql+psycopg://...`; `sqlite:///PATH` is the file PATH); safe across processes."""

    def __init__(self, location: str | Path):
        text = str(location)
        server = "://" in text and not text.startswith("sqlite:///")
        self.path: Path | None = None if server else Path(text.removeprefix("sqlite:///"))
        self.url = text if server else f"sqlite:///{self.path}"
        self.location = redacted(text) if server else str(self.path)
        self._engine: Engine | None = None
        self._engine_pid = 0
        self._ready = False

    def _error(self, error: Exception) -> AtecError:
        """One line naming the store and the database's complaint."""
        detail = str(getattr(error, "orig", None) or error).strip().splitlines()
        return AtecError(f"leaderboard {self.location}: {type(error).__name__}: {detail[0] if detail else ''}")

    def _engine_here(self) -> Engine:
        """This process's engine (a forked child never reuses its parent's pooled connections)."""
        if self._engine is None or self._engine_pid != os.getpid():
            if self._engine is not None:
                self._engine.dispose(close=False)
            self._engine, self._engine_pid = self._new_engine(), os.getpid()
        return self._engine

    def _new_engine(self) -> Engine:
        """SQLite: a fresh connection per use, busy timeout, explicit BEGIN; servers: a pool checked before use."""
        try:
            if self.path is None:
                return sqlalchemy.create_engine(self.url, pool_pre_ping=True)
            engine = sqlalchemy.create_engine(self.url, poolclass=NullPool, connect_args={"timeout": BUSY_TIMEOUT_S})
        except (SQLAlchemyError, ImportError) as error:
            raise AtecError(f"leaderboard {self.location}: cannot open ({type(error).__name__}: {error})") from None
        sqlalchemy.event.listen(engine, "connect", _sqlite_connected)
        sqlalchemy.event.listen(engine, "begin", _sqlite_begin)
        return engine

    def close(self) -> None:
        """Close pooled connections (a later call opens new ones)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection for reads (its transaction rolled back at the end)."""
        with self._engine_here().connect() as connection:
            yield connection

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed at the end unless an error leaves it."""
        with self._engine_here().connect() as connection:
            connection.execution_options(**{WRITE: True})
            with connection.begin():
                yield connection

    def _stored_version(self, connection: Connection) -> int | None:
        """The store format of the database, None where it has no leaderboard yet.

        SQLite files of earlier formats carry theirs as `PRAGMA user_version` only."""
        if inspect(connection).has_table(VERSION.name):
            return connection.execute(select(VERSION.c.version)).scalar_one_or_none()
        if self.path is not None:
            return connection.exec_driver_sql("PRAGMA user_version").scalar() or None
        return None

    def _check_version(self, version: int) -> None:
        """Refuse a store of another format in one line."""
        if version != SCHEMA_VERSION:
            remedy = "move the old file away" if self.path is not None else "drop its leaderboard_* tables"
            raise AtecError(f"leaderboard {self.location}: store format {version}, this code reads format "
                            f"{SCHEMA_VERSION}; {remedy} to start a new leaderboard")

    def _exists(self) -> bool:
        """Whether the store has its tables (their format checked); creates nothing."""
        if self._ready:
            return True
        if self.path is not None and not self.path.exists():
            return False
        with self._reading() as connection:
            version = self._stored_version(connection)
        if version is None:
            return False
        self._check_version(version)
        self._ready = True
        return True

    def _open(self) -> None:
        """Create the store if it does not exist yet (a lost creation race is retried), else check its format."""
        if self._exists():
            return
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        retry_schema_race(self._create)
        self._ready = True

    def _create(self) -> None:
        """The tables and the format mark in one transaction (SQLite: in WAL mode), unless another writer made them."""
        if self.path is not None:
            with self._reading() as connection:
                connection.connection.driver_connection.execute("PRAGMA journal_mode = WAL")
        with self._writing() as connection:
            version = self._stored_version(connection)
            if version is not None:
                self._check_version(version)
                return
            TABLES.create_all(connection)
            connection.execute(insert(VERSION).values(version=SCHEMA_VERSION))
            if self.path is not None:
                connection.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @_one_line_errors
    def add(self, entry: Entry) -> int:
        """Record `entry` with its predictions in one transaction and return its id.

        Raises `DuplicateEntryError` (and writes nothing) if its `entry_key` is already recorded.
        The shared row set is compressed only if it is not stored yet (row sets are never deleted).
        """
        self._validate(entry)
        key = entry.entry_key()
        values = dict(entry_key=key, family=entry.family, study=entry.study, trial=entry.trial,
                      params=_json(entry.params), config_yaml=entry.config_yaml,
                      data_fingerprint=entry.data_fingerprint, split=entry.split,
                      fold_scores=_json(entry.fold_scores), **{name: getattr(entry, name) for name in METRICS},
                      fit_seconds=entry.fit_seconds, predict_seconds=entry.predict_seconds,
                      git_commit=entry.git_commit, best_iteration=entry.best_iteration, policy=entry.policy,
                      frauds=entry.frauds, score_low=entry.score_low, score_high=entry.score_high,
                      true_a=entry.true_a, true_b=entry.true_b, confirmed=bool(entry.confirmed),
                      created_at=entry.created_at or datetime.now(timezone.utc).isoformat(timespec="seconds"))
        predictions = entry.predictions
        row_set, score_blob = predictions.rows_digest(), predictions.score_npz()
        bootstrap_blob = None if entry.bootstrap is None else _npz({"replicates": np.asarray(entry.bootstrap, np.float64)})
        test_blob = None if not entry.test_scores else _npz({b: np.asarray(s, np.float32) for b, s in entry.test_scores.items()})
        self._open()
        with self._reading() as connection:
            stored = connection.execute(select(ROW_SETS.c.digest).where(ROW_SETS.c.digest == row_set)).first()
        rows_blob = None if stored else predictions.rows_npz()
        try:
            with self._writing() as connection:
                entry_id = int(connection.execute(insert(ENTRIES).values(**values)).inserted_primary_key[0])
                if rows_blob is not None:
                    self._store_row_set(connection, row_set, rows_blob)
                connection.execute(insert(PREDICTIONS).values(entry_id=entry_id, row_set=row_set, score_npz=score_blob,
                                                              bootstrap_npz=bootstrap_blob, test_npz=test_blob))
        except IntegrityError:
            with self._reading() as connection:
                existing = connection.execute(select(ENTRIES.c.id).where(ENTRIES.c.entry_key == key)).scalar()
            raise DuplicateEntryError(key, existing) from None
        return entry_id

    @staticmethod
    def _store_row_set(connection: Connection, digest: str, blob: bytes) -> None:
        """Insert a shared row set, unless a concurrent writer stored the same rows a moment ago."""
        try:
            with connection.begin_nested():
                connection.execute(insert(ROW_SETS).values(digest=digest, npz=blob))
        except IntegrityError:
            pass

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

    @_one_line_errors
    def ranked(self, top: int | None = None, family: str | None = None, study: str | None = None,
               data: str | None = None) -> list[Entry]:
        """Confirmed entries best score first (ties: higher AUC, then earlier id), optionally filtered.

        `data` matches data fingerprints by prefix, so a short fingerprint as printed works.
        A store that does not exist yet has no entries (and is not created).
        """
        if not self._exists():
            return []
        query = select(ENTRIES).where(ENTRIES.c.confirmed == true())
        for column, value in (("family", family), ("study", study)):
            if value is not None:
                query = query.where(ENTRIES.c[column] == value)
        if data is not None:
            query = query.where(func.substr(ENTRIES.c.data_fingerprint, 1, len(data)) == data)
        query = query.order_by(ENTRIES.c.score.desc(), ENTRIES.c.auc.desc(), ENTRIES.c.id.asc())
        if top is not None:
            query = query.limit(int(top))
        with self._reading() as connection:
            return [_entry_from_row(row) for row in connection.execute(query).mappings()]

    @_one_line_errors
    def confirm(self, entry_ids: Iterable[int]) -> None:
        """Mark entries whose trials completed as confirmed (idempotent)."""
        ids = [int(i) for i in entry_ids]
        if not ids:
            return
        self._open()
        with self._writing() as connection:
            connection.execute(update(ENTRIES).where(ENTRIES.c.id.in_(ids)).values(confirmed=True))

    @_one_line_errors
    def unconfirmed(self, study: str) -> list[Entry]:
        """The study's entries whose trials were never confirmed complete."""
        if not self._exists():
            return []
        query = select(ENTRIES).where(ENTRIES.c.confirmed != true(), ENTRIES.c.study == study)
        with self._reading() as connection:
            return [_entry_from_row(row) for row in connection.execute(query).mappings()]

    @_one_line_errors
    def get(self, entry_id: int) -> Entry:
        """The entry with this id (without predictions)."""
        row = None
        if self._exists():
            with self._reading() as connection:
                row = connection.execute(select(ENTRIES).where(ENTRIES.c.id == int(entry_id))).mappings().first()
        if row is None:
            raise AtecError(f"leaderboard {self.location}: no entry with id {entry_id}")
        return _entry_from_row(row)

    @_one_line_errors
    def predictions(self, entry_id: int) -> Predictions:
        """The stored scored-days predictions of an entry."""
        query = (select(ROW_SETS.c.npz, PREDICTIONS.c.score_npz)
                 .join_from(PREDICTIONS, ROW_SETS, ROW_SETS.c.digest == PREDICTIONS.c.row_set)
                 .where(PREDICTIONS.c.entry_id == int(entry_id)))
        row = None
        if self._exists():
            with self._reading() as connection:
                row = connection.execute(query).first()
        if row is None:
            raise AtecError(f"leaderboard {self.location}: no predictions for entry id {entry_id}")
        return Predictions.from_npz(*row)

    @_one_line_errors
    def _blob(self, entry_id: int, column: str) -> bytes | None:
        """One npz column of an entry's predictions row."""
        row = None
        if self._exists():
            with self._reading() as connection:
                row = connection.execute(select(PREDICTIONS.c[column]).where(PREDICTIONS.c.entry_id == int(entry_id))).first()
        if row is None:
            raise AtecError(f"leaderboard {self.location}: no predictions for entry id {entry_id}")
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
