"""What the Optuna storage and the leaderboard share about their databases (SQLite files or PostgreSQL).

Several workers starting together on an empty database race to create the same tables; the
losers recognise the race (`lost_schema_race`) and try again after a pause (`retry_schema_race`).
"""
from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import sqlalchemy.exc

T = TypeVar("T")

SCHEMA_RACE_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)
"""Workers starting together on an empty database race to create the tables; a loser retries
after these pauses (each stretched by a random factor in [0.5, 1.5) so that losers do not retry in step)."""

SCHEMA_RACE_SQLSTATES = frozenset({"42P07", "42P06", "42710", "23505"})
"""PostgreSQL's duplicate_table, duplicate_schema, duplicate_object and unique_violation: what a
worker gets when another one created the same table, type or row a moment before."""

SCHEMA_RACE_MESSAGES = ("already exists", "database is locked")
"""The same races as SQLite (and drivers without SQLSTATE) word them. SQLite says "database is locked"
without waiting out its busy timeout where a connection that has read the file asks for the write lock
another holds, as `PRAGMA journal_mode = WAL` does on a file another worker is still creating."""


def retry_schema_race(open_once: Callable[[], T]) -> T:
    """`open_once()`, called again after a pause while it fails by losing the table-creation race.

    Any other error, and the race's error after the last pause, propagate at once."""
    for delay in SCHEMA_RACE_DELAYS:
        try:
            return open_once()
        except Exception as error:
            if not lost_schema_race(error):
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))
    return open_once()


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and the errors it was raised from (Optuna wraps SQLAlchemy's in StorageInternalError)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def lost_schema_race(error: BaseException) -> bool:
    """Whether opening the database failed because another worker was creating the same tables at that moment."""
    for cause in _causes(error):
        if isinstance(cause, sqlalchemy.exc.IntegrityError):
            return True
        if not isinstance(cause, sqlalchemy.exc.DBAPIError | sqlite3.Error):
            continue
        driver_error = cause.orig if isinstance(cause, sqlalchemy.exc.DBAPIError) else cause  # sqlite3's own: raw
        if getattr(driver_error, "sqlstate", None) in SCHEMA_RACE_SQLSTATES:
            return True
        if any(message in str(driver_error).lower() for message in SCHEMA_RACE_MESSAGES):
            return True
    return False


def redacted(url: str) -> str:
    """A database URL without its password, for messages and records."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest or ":" not in rest.split("@", 1)[0]:
        return url
    credentials, host = rest.split("@", 1)
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
