"""The leaderboard store: `Leaderboard` adds, confirms, ranks and reads back entries in one database.

SQLite (a file, WAL mode, a busy timeout, writers begin IMMEDIATE) or a server reached by URL;
every database error leaves as one `AtecError` line naming the store.
"""
from __future__ import annotations

import functools
import io
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import sqlalchemy
from sqlalchemy import func, insert, inspect, select, true, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from atec_automl.databases import redacted, retry_schema_race
from atec_automl.errors import AtecError
from atec_automl.leaderboard.entry import FAMILIES, METRICS, Entry, Predictions, npz_bytes
from atec_automl.leaderboard.tables import (ENTRIES, PREDICTIONS, ROW_SETS, SCHEMA_VERSION, TABLES, VERSION,
                                            entry_from_row, entry_values)

BUSY_TIMEOUT_S = 60.0
WRITE = "atec_leaderboard_write"
"""Execution option of a writing connection: on SQLite its transaction begins IMMEDIATE (takes the write lock first)."""


class DuplicateEntryError(AtecError):
    """An entry with the same `entry_key` is already on the leaderboard."""

    def __init__(self, key: str, existing_id: int | None):
        self.key, self.existing_id = key, existing_id
        super().__init__(f"leaderboard: entry {key!r} is already recorded (entry id {existing_id}); not added again")


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
        except (SQLAlchemyError, sqlite3.Error) as error:  # sqlite3's own where SQLAlchemy is bypassed (the WAL pragma)
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
        values = entry_values(entry, key)
        predictions = entry.predictions
        row_set, score_blob = predictions.rows_digest(), predictions.score_npz()
        bootstrap_blob = None if entry.bootstrap is None else npz_bytes({"replicates": np.asarray(entry.bootstrap, np.float64)})
        test_blob = None if not entry.test_scores else npz_bytes({b: np.asarray(s, np.float32) for b, s in entry.test_scores.items()})
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
            return [entry_from_row(row) for row in connection.execute(query).mappings()]

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
            return [entry_from_row(row) for row in connection.execute(query).mappings()]

    @_one_line_errors
    def get(self, entry_id: int) -> Entry:
        """The entry with this id (without predictions)."""
        row = None
        if self._exists():
            with self._reading() as connection:
                row = connection.execute(select(ENTRIES).where(ENTRIES.c.id == int(entry_id))).mappings().first()
        if row is None:
            raise AtecError(f"leaderboard {self.location}: no entry with id {entry_id}")
        return entry_from_row(row)

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
