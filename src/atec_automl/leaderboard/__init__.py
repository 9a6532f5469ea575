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

This package is a store: it computes no metric and reads no data set (see `evaluation.py`).
`entry.py` holds the records (`Entry`, `Predictions` and their encoding), `tables.py` the tables and
the Entry <-> row mapping, `store.py` the `Leaderboard` itself.
"""
from atec_automl.leaderboard.entry import FAMILIES, METRICS, OUTSIDE_FAMILIES, Entry, Predictions
from atec_automl.leaderboard.store import DuplicateEntryError, Leaderboard

__all__ = ["FAMILIES", "METRICS", "OUTSIDE_FAMILIES", "DuplicateEntryError", "Entry", "Leaderboard", "Predictions"]
