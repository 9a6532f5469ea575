"""Online scoring: a saved submission, the state of the timeline so far, and features equal to the batch ones.

`OnlineScorer` validates new events (one or a batch, in time order), gets their features from a
feature source, scores them with the submission's model, logs them and adds them to the timeline.
Every feature of an event depends only on the events before it that share one of its keys:
entity windows, distinct counts, since-previous gaps, first-seen and usual flags and the user's
sequence are computed within a key's group (`features/windows.py`); calendar fields, the amount,
the missing count and the province mismatches read the event alone (`columns.shared_codes`
compares each value on its own); categorical codes are frozen to the training vocabulary,
extended by new values in their order of first appearance on this timeline (`Vocabulary`),
which is what the batch computation numbers them. Two sources use that:

- `serving_state.StateFeatures` (models that read the feature table: CatBoost, MLP): per-key
  groups of past events with compensated prefix sums (`features/groups.py`), read in a few binary
  searches and O(window) numpy per feature (`features/incremental.py`), a request of many events
  all at once (`features/batched.py`), and the event-alone fields per event
  (`features/event_fields.py`); no pandas pipeline per request.
- `serving_timeline.SubTimelineFeatures` (models that read user sequences: CNN-LSTM): the batch
  `compute_features` rerun on the sub-timeline of the past events sharing a key with the new ones.

The parity tests (`tests/test_serve.py`) compare both with the batch features over the same timeline.
Events older than the timeline's clock (the latest accepted time), ids seen before, events further
ahead of the machine's clock than `max_ahead_s` and malformed events are refused with one line and
change nothing; a request that fails after its features were read takes its events back out of the
state (and out of the log). Accepted events are appended to a log (`serving_log.EventLog`:
`events.jsonl`, in the order they joined the timeline, fsynced while the model scores them and
before the scores are returned) that `OnlineScorer.replay` reads back at start, so a restart loses
no acknowledged event.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from atec_automl.artifact import SavedSubmission
from atec_automl.data.dataset import Dataset
from atec_automl.data.load import event_frame, event_table_from_records
from atec_automl.data.one_event import PlainEvents
from atec_automl.errors import AtecError, DataError
from atec_automl.features.event_fields import Vocabulary
from atec_automl.features.spec import RawEventFeatures
from atec_automl.serving_log import EventLog
from atec_automl.serving_state import StateFeatures
from atec_automl.serving_timeline import SubTimelineFeatures

LOG_FILE = "events.jsonl"
REPLAY_CHUNK = 1000
SEQUENCE_FAMILIES = ("cnn_lstm",)


class Rejected(AtecError):
    """An event the service refuses (the state is unchanged)."""


class NewEvents:
    """Validated new events, in time order (stable), as plain values; as a frame when one is asked for (events
    validated by the general path only: `table`)."""

    def __init__(self, records: list[dict], ts: np.ndarray, visible: np.ndarray, order: np.ndarray,
                 table: pa.Table | None = None):
        self.records, self.ts, self.visible, self.order, self.table = records, ts, visible, order, table
        self.ids = [r["event_id"] for r in records]

    @classmethod
    def from_table(cls, table: pa.Table) -> "NewEvents":
        """The events of `event_table_from_records`."""
        ts = table["ts"].to_numpy()
        order = np.argsort(ts, kind="stable")
        visible = ts[order].astype(np.int64) + table["ts_resolution"].to_numpy()[order].astype(np.int64)
        names = table.column_names
        columns = [column.to_pylist() for column in table.columns]  # then rows: faster than table.to_pylist()
        rows = [dict(zip(names, row)) for row in zip(*columns)]
        return cls([rows[i] for i in order], ts[order].astype(np.int64), visible, order, table)

    @classmethod
    def from_row(cls, row: dict) -> "NewEvents":
        """One event converted by `PlainEvents.row`."""
        ts = np.array([row["ts"]], dtype=np.int64)
        return cls([row], ts, ts + row["ts_resolution"], np.zeros(1, dtype=np.int64))

    def __len__(self) -> int:
        """Number of events."""
        return len(self.records)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The events as `events_from_records` gives them."""
        if self.table is None:
            raise AtecError("serve: a frame of events is only kept for events validated by the general path")
        return event_frame(self.table)


@dataclass
class Scored:
    """Scores (and, when asked, feature rows) of accepted events, in timeline order."""

    event_ids: list[str]
    scores: np.ndarray
    features: list[dict[str, float | None]] | None = None


class OnlineScorer:
    """The timeline so far and a submission scoring each new event from it."""

    def __init__(self, saved: SavedSubmission, history: Dataset, log_dir: Path | None = None,
                 max_ahead_s: float | None = None):
        if len(saved.members) != 1:
            raise AtecError(f"serve: submission {saved.name} is a blend of {len(saved.members)} models; its rank "
                            "average is defined over a batch of events, not one at a time: serve one entry's submission")
        self.saved = saved
        self.spec = saved.specs()[0]
        self.file_format = saved.file_format()
        self.columns = [c for c in history.frame.columns if c not in ("label", "part")]
        self.categorical = [c for c in self.columns if isinstance(history.frame[c].dtype, pd.CategoricalDtype)]
        self.vocabulary = Vocabulary(saved.vocabulary)
        self.ids: set[str] = set()
        self.size = 0
        self.clock = np.iinfo(np.int64).min
        self.log = None if log_dir is None else EventLog(Path(log_dir) / LOG_FILE)
        self.max_ahead_s = max_ahead_s
        plain = self._plain(history.frame)
        self.vocabulary.extend_frame(plain)
        if isinstance(self.spec, RawEventFeatures) and saved.members[0].family not in SEQUENCE_FAMILIES and len(plain):
            self.source: StateFeatures | SubTimelineFeatures = StateFeatures(saved, plain, self.file_format.id_column,
                                                                            self.vocabulary)
        else:
            self.source = SubTimelineFeatures(saved, self.columns, self.file_format, self.vocabulary)
            self.source.add(plain)
        self.plain = PlainEvents(self.file_format, self.file_format.kinds([self.columns])) \
            if isinstance(self.source, StateFeatures) else None
        self._count(plain["event_id"].tolist(), plain["ts"].to_numpy())

    def _plain(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The timeline columns of loaded files, categorical fields as object arrays of text (NaN missing)."""
        return pd.DataFrame({c: frame[c].astype(object) if c in self.categorical else frame[c] for c in self.columns})

    def _accept(self, new: NewEvents) -> None:
        """Count in new events added to the source: the vocabulary, their ids, the clock."""
        for column in self.vocabulary.values:
            if column in self.columns:
                self.vocabulary.extend(column, [r[column] for r in new.records])
        self._count(new.ids, new.ts)

    def _count(self, ids: list[str], ts: np.ndarray) -> None:
        """Count in events added to the source and the vocabulary: their ids, the clock."""
        self.ids.update(ids)
        self.size += len(ids)
        if len(ts):
            self.clock = max(self.clock, int(ts.max()))

    def parse(self, records: list[dict], source: str = "POST /score") -> NewEvents:
        """Validate new events as a file's rows and against the timeline: new ids, no earlier than the clock."""
        row = self.plain.row(records[0]) if len(records) == 1 and self.plain is not None else None
        new = NewEvents.from_row(row) if row is not None else \
            NewEvents.from_table(event_table_from_records(records, self.file_format, source))
        seen = [i for i in new.ids if i in self.ids]
        if seen:
            raise Rejected(f"{source}: event_id {seen[0]!r} was already accepted")
        earliest = int(new.ts[0])
        if earliest < self.clock:
            first = new.ids[0]
            raise Rejected(f"{source}: event {first!r} at {pd.Timestamp(earliest, unit='s')} is older than the "
                           f"latest accepted time {pd.Timestamp(self.clock, unit='s')}")
        return new

    def _check_not_ahead(self, new: NewEvents) -> None:
        """Refuse events more than `max_ahead_s` ahead of this machine's clock (times are naive: the margin covers
        the time zone): accepted, a mistyped year would become the timeline's clock and hold back every later event."""
        if self.max_ahead_s is None:
            return
        latest, now = int(new.ts[-1]), time.time()
        if latest > now + self.max_ahead_s:
            raise DataError("POST /score", f"event {new.ids[-1]!r} at {pd.Timestamp(latest, unit='s')} is more than "
                            f"{self.max_ahead_s / 3600:g} h ahead of this machine's clock "
                            f"({pd.Timestamp(int(now), unit='s')} UTC; serve.max_ahead_hours)",
                            column=self.file_format.time_column, row=int(new.order[-1]) + 1)

    def score(self, records: list[dict], with_features: bool = False) -> Scored:
        """Score new events from the timeline and log them (fsynced while the model scores), then count them in."""
        new = self.parse(records)
        self._check_not_ahead(new)
        features, rows, undo = self.source.features(new)
        written = None
        try:
            if self.log is not None:
                written = self.log.append([records[i] for i in new.order])
            scores = self.saved.score([features], rows)
            if written is not None:
                self.log.wait(written)
        except BaseException:
            undo()
            if written is not None:
                self.log.take_back(written)
            raise
        self._accept(new)
        rows_out = None if not with_features else [
            {c: (None if pd.isna(v) else float(v)) for c, v in row.items()}
            for row in features.table.iloc[rows].to_dict("records")]
        return Scored(new.ids, scores, rows_out)

    def replay(self, chunk: int = REPLAY_CHUNK) -> int:
        """Add the logged events (accepted before a restart) to the timeline, `chunk` at a time; returns how many."""
        if self.log is None:
            return 0
        records = self.log.read()
        for start in range(0, len(records), chunk):
            new = self.parse(records[start:start + chunk], source=str(self.log.path))
            self.source.add_new(new)
            self._accept(new)
        return len(records)
