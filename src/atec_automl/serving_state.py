"""Online features from per-entity state: the tabular raw features of new events without the batch pipeline.

`StateFeatures` joins `IncrementalFeatures` (aggregates over each key's past events, from its
groups) and `EventFields` (what reads the event alone) into the feature table the model was
trained on: the columns, their order and types are those of the batch table of one history event
(`compute_features`, read once at start). A request of fewer than `BATCHED_FROM` events reads each
event's features before it joins the state; a larger one joins the state whole and reads every
event's past at once (`features/batched.py`, one numpy pass per key tuple): each event sees the
events before it, the request's earlier ones included, as the batch computation does.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from atec_automl.artifact import SavedSubmission
from atec_automl.data.dataset import TIMELINE_COLUMNS, Dataset
from atec_automl.errors import AtecError
from atec_automl.features.batched import batch_features
from atec_automl.features.event_fields import EventFields, Vocabulary
from atec_automl.features.featureset import BlockFeatures, FeatureSet
from atec_automl.features.incremental import IncrementalFeatures
from atec_automl.features.spec import RawEventFeatures

if TYPE_CHECKING:
    from atec_automl.serving import NewEvents

BATCHED_FROM = 8


class StateFeatures:
    """Per-entity state of the timeline so far and the feature table of new events from it."""

    def __init__(self, saved: SavedSubmission, history: pd.DataFrame, id_column: str, vocabulary: Vocabulary):
        spec = saved.specs()[0]
        if not isinstance(spec, RawEventFeatures):
            raise AtecError("serve: per-entity state needs the raw-format features (features=default)")
        self.columns = list(history.columns)
        self.vocabulary = vocabulary
        self.state = IncrementalFeatures(spec, history)
        self.fields = EventFields(spec, [c for c in self.columns if c not in TIMELINE_COLUMNS], set(self.columns))
        template = self._template(saved, history, id_column)
        self.categorical = list(template.categorical)
        self.numeric = [c for c in template.table.columns if c not in self.categorical]
        if list(template.table.columns) != self.numeric + self.categorical:
            raise AtecError("serve: the feature table does not list its numeric columns before the codes")

    def _template(self, saved: SavedSubmission, history: pd.DataFrame, id_column: str) -> FeatureSet:
        """The batch features of one event (the last of the history): the table's columns, their order and types."""
        frame = history.iloc[-1:].assign(label=np.float32(np.nan)).reset_index(drop=True)
        return saved.features(Dataset(frame, "online", id_column), self.vocabulary.index())[0]

    def add_new(self, new: NewEvents) -> None:
        """Add validated events to the state without scoring them."""
        self.state.add_many(new.records, new.visible, new.ts)

    def features(self, new: NewEvents) -> tuple[BlockFeatures, np.ndarray, Callable[[], None]]:
        """The features of the new events (in time order), each seeing the events before it, the batch's earlier
        ones included; the events join the state; and an undo that takes them out again."""
        events, ts, visible = new.records, new.ts, new.visible
        own = self.fields.numeric(events, ts)
        inserted: list = []
        try:
            if len(events) < BATCHED_FROM:
                aggregates = []
                for event, t, seen_from in zip(events, ts.tolist(), visible.tolist()):
                    aggregates.append(self.state.features(event, t))
                    inserted += self.state.add(event, seen_from, t)
                numeric = np.array([[own[c][i] if c in own else row.get(c, np.nan) for c in self.numeric]
                                    for i, row in enumerate(aggregates)], dtype=np.float64)
            else:
                added, found = self.state.add_many(events, visible, ts)
                inserted += added
                columns = batch_features(self.state, events, ts, found)
                numeric = np.empty((len(events), len(self.numeric)), dtype=np.float64)
                for j, column in enumerate(self.numeric):
                    numeric[:, j] = own[column] if column in own else columns.get(column, np.nan)
        except BaseException:
            self.state.undo(inserted)
            raise
        return self._blocks(numeric, events), np.arange(len(events)), lambda: self.state.undo(inserted)

    def _blocks(self, numeric: np.ndarray, events: list[dict]) -> BlockFeatures:
        """The features from the numeric columns (float64, in order) and the events' codes, typed as the batch table."""
        numeric = numeric.astype(np.float32)
        numeric[np.isinf(numeric)] = np.nan
        codes = self.fields.codes(events, self.vocabulary)
        block = np.empty((len(events), len(self.categorical)), dtype=np.int32)
        for j, column in enumerate(self.categorical):
            block[:, j] = codes[column]
        return BlockFeatures(numeric, block, self.numeric, self.categorical)
