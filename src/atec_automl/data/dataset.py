"""The timeline: train, test_a and test_b joined in time order, the contract every later stage reads.

`Dataset.frame` columns (one row per event, `RangeIndex` 0..N-1, sorted by `ts`, stable, with the
file order train, test_a, test_b, then row order within a file, breaking ties):

- `event_id`  string: the event's id as in the file (`event_id` semi-final, `id` preliminary)
- `ts`        int64: seconds since 1970-01-01 of the event's time (contest local time, no zone)
- `label`     float32: 1 black, 0 white, -1 grey; NaN for rows of the test files (no label)
- `part`      category, categories ["train", "test_a", "test_b"]
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
