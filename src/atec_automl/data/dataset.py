"""The timeline: train, test_a and test_b joined in time order, the contract every later stage reads.

`Dataset.frame` columns (one row per event, `RangeIndex` 0..N-1, sorted by `ts`, stable, with the
file order train, test_a, test_b, then row order within a file, breaking ties):

- `event_id`  string: the event's id as in the file (`event_id` semi-final, `id` preliminary)
- `ts`        int64: seconds since 1970-01-01 of the event's time (contest local time, no zone); for a
  time written to the hour (`2017-09-05 13`) the start of that hour
- `label`     float32: 1 black, 0 white, -1 grey; NaN for rows of the test files (no label)
- `part`      category, categories ["train", "test_a", "test_b"]
- `ts_resolution` int32: seconds the written time spans: 1 (to the second), 60 (to the minute),
  3600 (to the hour), 86400 (a YYYYMMDD day); the event happened within `[ts, ts + ts_resolution)`
- the format's own columns: categorical fields as `category` (missing = NaN; `-1` in a file
  means missing), numeric fields as float (missing = NaN). The file's time, date and label
  columns are replaced by `ts` and `label`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

PARTS = ("train", "test_a", "test_b")
TIMELINE_COLUMNS = ("event_id", "ts", "label", "part", "ts_resolution")
SECONDS_PER_DAY = 86_400


@dataclass
class Dataset:
    """The joined, validated, time-sorted timeline and where it came from."""

    frame: pd.DataFrame
    fingerprint: str
    id_column: str
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    sources: dict[str, Path] = field(default_factory=dict)

    def part_rows(self, part: str) -> np.ndarray:
        """Row positions of one part (train, test_a or test_b)."""
        return np.flatnonzero((self.frame["part"] == part).to_numpy())

    def day(self) -> np.ndarray:
        """Calendar day number (days since 1970-01-01) of every event."""
        return self.frame["ts"].to_numpy() // SECONDS_PER_DAY


def visible_from(frame: pd.DataFrame) -> np.ndarray:
    """The first second from which each event may count as past for other events: the end of its written time.

    Event A is in event B's past exactly when `visible_from[A] <= ts[B]` (A surely happened before
    B): a time to the second is seen from the next second, `2017-09-05 13` from 14:00:00.
    """
    return frame["ts"].to_numpy(dtype=np.int64) + frame["ts_resolution"].to_numpy(dtype=np.int64)
