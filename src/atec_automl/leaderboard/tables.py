"""The leaderboard's tables (`leaderboard_*`) and how an `Entry` becomes a row of them and back.

One row of `leaderboard_entries` per entry (its metrics, settings and provenance; `entry_key`
unique); one of `leaderboard_predictions` beside it (its score blob, bootstrap replicates and
test-board predictions); the rows those scores belong to once per distinct row set in
`leaderboard_row_sets`; the store format in `leaderboard_version`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import Boolean, Column, Double, ForeignKey, Index, Integer, LargeBinary, MetaData, Table, Text

from atec_automl.leaderboard.entry import METRICS, Entry

SCHEMA_VERSION = 4

TABLES = MetaData()
ENTRIES = Table(
    "leaderboard_entries", TABLES,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_key", Text, nullable=False, unique=True),
    Column("family", Text, nullable=False),
    Column("study", Text, nullable=False),
    Column("trial", Integer),
    *(Column(name, Text, nullable=False) for name in ("params", "config_yaml", "data_fingerprint", "split", "fold_scores")),
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


def json_text(value: Any) -> str:
    """JSON text of params / fold scores; numpy scalars and arrays become plain numbers and lists."""
    def plain(item: Any) -> Any:
        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, np.ndarray):
            return item.tolist()
        raise TypeError(f"leaderboard: cannot store a {type(item).__name__} in params")
    return json.dumps(value, default=plain, sort_keys=True)


def entry_values(entry: Entry, key: str) -> dict[str, Any]:
    """The `leaderboard_entries` row of `entry` under `key` (created now unless it says when)."""
    return dict(entry_key=key, family=entry.family, study=entry.study, trial=entry.trial,
                params=json_text(entry.params), config_yaml=entry.config_yaml,
                data_fingerprint=entry.data_fingerprint, split=entry.split,
                fold_scores=json_text(entry.fold_scores), **{name: getattr(entry, name) for name in METRICS},
                fit_seconds=entry.fit_seconds, predict_seconds=entry.predict_seconds,
                git_commit=entry.git_commit, best_iteration=entry.best_iteration, policy=entry.policy,
                frauds=entry.frauds, score_low=entry.score_low, score_high=entry.score_high,
                true_a=entry.true_a, true_b=entry.true_b, confirmed=bool(entry.confirmed),
                created_at=entry.created_at or datetime.now(timezone.utc).isoformat(timespec="seconds"))


def entry_from_row(row: Mapping[str, Any]) -> Entry:
    """An `Entry` (without predictions) from a row of the entries table."""
    values = dict(row)
    values["key"] = values.pop("entry_key")
    values["params"] = json.loads(values["params"])
    values["fold_scores"] = json.loads(values["fold_scores"])
    values["confirmed"] = bool(values["confirmed"])
    return Entry(**values)
