"""Online features by the batch code on a sub-timeline: the path of models that read user sequences.

`SubTimelineFeatures` keeps the timeline (the history files, then every accepted event) in memory,
column by column, with the rows of each entity key. New events (in time order) get their features
by running the same `compute_features` as training on a small sub-timeline: the past events that
share an entity key with them, then the events themselves, taking their rows. That is exact because
every feature of an event depends only on the events before it that share one of its keys (see
`serving.py`). It pays the whole batch pipeline per request, a cost that grows with the entities'
histories; `serving_state.StateFeatures` serves the models that read the table alone.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from atec_automl.artifact import SavedSubmission
from atec_automl.data.dataset import Dataset
from atec_automl.data.formats import TableFormat
from atec_automl.features.event_fields import Vocabulary
from atec_automl.features.featureset import FeatureSet
from atec_automl.features.spec import RawEventFeatures

if TYPE_CHECKING:
    from atec_automl.serving import NewEvents


class Column:
    """A growable numpy column (doubling capacity)."""

    def __init__(self, values: np.ndarray):
        self._data = np.asarray(values)
        self.size = len(values)

    def extend(self, values: np.ndarray) -> None:
        """Append values."""
        needed = self.size + len(values)
        if needed > len(self._data):
            grown = np.empty(max(needed, 2 * len(self._data), 16), dtype=self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size:needed] = values
        self.size = needed

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Values at `rows` (positions below `size`)."""
        return self._data[rows]


def key_tuples(spec: RawEventFeatures) -> list[tuple[str, ...]]:
    """The fewest keys whose groups hold every event any feature of an event may read.

    Every feature reads the events sharing one of the spec's key tuples; a tuple containing a
    column that is itself a key is covered by that column's group.
    """
    keys = [tuple(e.columns) for e in spec.entities.values()] + [tuple(p) for p in spec.first_seen.values()]
    keys += [(spec.user,)] + [(spec.user, c) for c in spec.usual]
    singles = {k[0] for k in keys if len(k) == 1}
    return list(dict.fromkeys(k for k in keys if len(k) == 1 or not singles & set(k)))


def known_keys(frame: pd.DataFrame, key: tuple[str, ...]) -> list[tuple[int, tuple]]:
    """(row offset, key value) of the rows of `frame` whose key columns are all known."""
    columns = [frame[c].to_numpy() for c in key]
    return [(offset, value) for offset, value in enumerate(zip(*columns))
            if not any(v is None or v != v for v in value)]


class SubTimelineFeatures:
    """The timeline so far, column by column, and the batch features of new events on their sub-timeline."""

    def __init__(self, saved: SavedSubmission, columns: list[str], file_format: TableFormat, vocabulary: Vocabulary):
        self.saved, self.columns, self.file_format, self.vocabulary = saved, columns, file_format, vocabulary
        spec = saved.specs()[0]
        keys = key_tuples(spec) if isinstance(spec, RawEventFeatures) else []
        self.groups: dict[tuple[str, ...], dict[tuple, list[int]]] = {k: {} for k in keys if set(k) <= set(columns)}
        self.data: dict[str, Column] = {}
        self.size = 0

    def add(self, frame: pd.DataFrame) -> None:
        """Append events (in timeline order) to the columns and the key groups."""
        start = self.size
        for column in self.columns:
            values = frame[column].to_numpy()
            if column in self.data:
                self.data[column].extend(values)
            else:
                self.data[column] = Column(values.copy())
        for key, groups in self.groups.items():
            for offset, value in known_keys(frame, key):
                groups.setdefault(value, []).append(start + offset)
        self.size += len(frame)

    def add_new(self, new: NewEvents) -> None:
        """`add` for validated new events."""
        self.add(new.frame)

    def features(self, new: NewEvents) -> tuple[FeatureSet, np.ndarray, Callable[[], None]]:
        """The features of the new events (rows of the returned set), added to the timeline; and an undo."""
        new = new.frame
        dataset = self.sub_timeline(self.past_rows(new), new)
        features = self.saved.features(dataset, self.vocabulary.index())[0]
        rows = np.arange(len(dataset.frame) - len(new), len(dataset.frame))
        size = self.size
        self.add(new)
        return features, rows, lambda: self._truncate(size)

    def _truncate(self, size: int) -> None:
        """Forget the events from timeline row `size` on."""
        for column in self.data.values():
            column.size = size
        for groups in self.groups.values():
            for rows in groups.values():
                while rows and rows[-1] >= size:
                    rows.pop()
        self.size = size

    def past_rows(self, new: pd.DataFrame) -> np.ndarray:
        """Timeline rows sharing a key with any new event, ascending."""
        parts = []
        for key, groups in self.groups.items():
            for _, value in known_keys(new, key):
                rows = groups.get(value)
                if rows:
                    parts.append(np.asarray(rows, dtype=np.int64))
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def sub_timeline(self, rows: np.ndarray, new: pd.DataFrame) -> Dataset:
        """The events at `rows` followed by the new ones, as a timeline."""
        frame = pd.DataFrame({c: np.concatenate([self.data[c].take(rows), new[c].to_numpy()]) for c in self.columns})
        frame.insert(2, "label", np.float32(np.nan))
        return Dataset(frame, "online", self.file_format.id_column)
