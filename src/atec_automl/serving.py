"""Online scoring: a saved submission, the timeline of every event seen so far, and the offline feature code.

`OnlineScorer` keeps the timeline (the history files, then every accepted event) in memory, column
by column, with the rows of each entity key. A new event (or a batch, in time order) is scored by
running the same `compute_features` as training on a small sub-timeline: the past events that
share an entity key with it, then the event itself, taking its row. That is exact because every
feature of an event depends only on the events before it that share one of its keys: entity
windows, distinct counts, since-previous gaps, first-seen and usual flags and the user's sequence
are computed within a key's group (`windows.py`); calendar fields, the amount, the missing count
and the province mismatches read the event alone (`columns.shared_codes` compares each value on
its own); categorical codes are frozen to the training vocabulary, extended by new values in
their order of first appearance on this timeline, which is what the batch computation numbers them.

Events older than the timeline's clock (the latest accepted time), ids seen before and malformed
events are refused with one line and change nothing. Accepted events are appended to a log
(`events.jsonl`, fsynced before the scores are returned) that `OnlineScorer.replay` reads back at
start, so a restart loses no acknowledged event.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from atec_automl.artifact import SavedSubmission, coded_columns
from atec_automl.data.dataset import TIMELINE_COLUMNS, Dataset
from atec_automl.data.load import events_from_records
from atec_automl.errors import AtecError
from atec_automl.features.spec import RawEventFeatures

log = logging.getLogger(__name__)
LOG_FILE = "events.jsonl"
REPLAY_CHUNK = 1000


class Rejected(AtecError):
    """An event the service refuses (the state is unchanged)."""


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


@dataclass
class Scored:
    """Scores (and, when asked, feature rows) of accepted events, in timeline order."""

    event_ids: list[str]
    scores: np.ndarray
    features: list[dict[str, float | None]] | None = None


class OnlineScorer:
    """The timeline so far and a submission scoring each new event from it."""

    def __init__(self, saved: SavedSubmission, history: Dataset, log_dir: Path | None = None):
        if len(saved.members) != 1:
            raise AtecError(f"serve: submission {saved.name} is a blend of {len(saved.members)} models; its rank "
                            "average is defined over a batch of events, not one at a time: serve one entry's submission")
        self.saved = saved
        self.spec = saved.specs()[0]
        self.file_format = saved.file_format()
        self.columns = [c for c in history.frame.columns if c not in ("label", "part")]
        self.categorical = [c for c in self.columns if isinstance(history.frame[c].dtype, pd.CategoricalDtype)]
        self.keys = key_tuples(self.spec) if isinstance(self.spec, RawEventFeatures) else []
        self.keys = [k for k in self.keys if set(k) <= set(self.columns)]
        self.vocabulary = {c: list(v) for c, v in saved.vocabulary.items()}
        self._vocabulary_seen = {c: set(v) for c, v in self.vocabulary.items()}
        self._vocabulary_index: dict[str, pd.Index] = {}
        self.data: dict[str, Column] = {}
        self.groups: dict[tuple[str, ...], dict[tuple, list[int]]] = {k: {} for k in self.keys}
        self.ids: set[str] = set()
        self.size = 0
        self.clock = np.iinfo(np.int64).min
        self.log_path = None if log_dir is None else Path(log_dir) / LOG_FILE
        self._append(self._plain(history.frame))

    def _plain(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The timeline columns of loaded files, categorical fields as object arrays of text (NaN missing)."""
        return pd.DataFrame({c: frame[c].astype(object) if c in self.categorical else frame[c] for c in self.columns})

    def _append(self, frame: pd.DataFrame) -> None:
        """Add events (in timeline order, checked) to the columns, the key groups, the ids and the vocabulary."""
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
        for column, known in self.vocabulary.items():
            seen = self._vocabulary_seen[column]
            unseen = [v for v in pd.unique(frame[column].dropna().astype(str)) if v not in seen] \
                if column in frame.columns else []
            if unseen:
                known.extend(unseen)
                seen.update(unseen)
                self._vocabulary_index.pop(column, None)
        self.ids.update(frame["event_id"].tolist())
        self.size += len(frame)
        if len(frame):
            self.clock = max(self.clock, int(frame["ts"].max()))

    def vocabulary_index(self) -> dict[str, pd.Index]:
        """The training vocabulary followed by the values first seen since, per coded column."""
        for column, values in self.vocabulary.items():
            if column not in self._vocabulary_index:
                self._vocabulary_index[column] = pd.Index(values, dtype="str")
        return self._vocabulary_index

    def parse(self, records: list[dict], source: str = "POST /score") -> pd.DataFrame:
        """Validate new events as a file's rows and against the timeline: new ids, no earlier than the clock."""
        frame = events_from_records(records, self.file_format, source)
        seen = [i for i in frame["event_id"] if i in self.ids]
        if seen:
            raise Rejected(f"{source}: event_id {seen[0]!r} was already accepted")
        earliest = int(frame["ts"].min())
        if earliest < self.clock:
            first = frame["event_id"].iloc[int(np.argmin(frame["ts"].to_numpy()))]
            raise Rejected(f"{source}: event {first!r} at {pd.Timestamp(earliest, unit='s')} is older than the "
                           f"latest accepted time {pd.Timestamp(self.clock, unit='s')}")
        return frame

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

    def score(self, records: list[dict], with_features: bool = False) -> Scored:
        """Score new events from the timeline, log them (fsynced), then add them to it."""
        new = self.parse(records)
        dataset = self.sub_timeline(self.past_rows(new), new)
        features = self.saved.features(dataset, self.vocabulary_index())
        rows = np.arange(len(dataset.frame) - len(new), len(dataset.frame))
        scores = self.saved.score(features, rows)
        table = features[0].table.iloc[rows] if with_features else None
        self._log(records)
        self._append(new)
        rows_out = None if table is None else [
            {c: (None if pd.isna(v) else float(v)) for c, v in row.items()} for row in table.to_dict("records")]
        return Scored(new["event_id"].tolist(), scores, rows_out)

    def _log(self, records: list[dict]) -> None:
        """Append the accepted events to the log and fsync it."""
        if self.log_path is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with open(self.log_path, "a", encoding="utf-8") as stream:
            stream.write(lines)
            stream.flush()
            os.fsync(stream.fileno())

    def replay(self) -> int:
        """Add the logged events (accepted before a restart) to the timeline; returns how many."""
        if self.log_path is None or not self.log_path.is_file():
            return 0
        records = read_log(self.log_path)
        for start in range(0, len(records), REPLAY_CHUNK):
            self._append(self.parse(records[start:start + REPLAY_CHUNK], source=str(self.log_path)))
        return len(records)


def read_log(path: Path) -> list[dict]:
    """The logged events; a last line cut short by a crash (never acknowledged) is dropped from the file."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete, tail = lines[:-1], lines[-1]
    if tail:
        log.warning("serve: dropping an unfinished last line of %s (written during a crash, never acknowledged)", path)
        with open(path, "r+", encoding="utf-8") as stream:
            stream.truncate(len(text.encode("utf-8")) - len(tail.encode("utf-8")))
    records = []
    for number, line in enumerate(complete, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AtecError(f"serve: {path} line {number} is not an event (damaged log)") from None
    return records
