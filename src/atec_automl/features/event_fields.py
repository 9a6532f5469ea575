"""Features that read an event alone, per event and without pandas, equal to what the batch code gives.

`RawFeatureBuilder.build` derives some columns from the event's own fields: the calendar fields,
the amount, the count of missing fields, the province mismatches (`columns.shared_codes`: two
values compare equal when their normalised labels do) and the categorical codes frozen to a
vocabulary (`columns.frozen_codes`). `EventFields` computes them for a request's events from
plain values: every value conversion (a value's label, its normalised label) is done once by the
batch helper itself on that one value and cached, so the per-event path cannot drift from it.
`Vocabulary` holds the coded columns' values (training vocabulary, then values first seen since,
in order) that number the codes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from atec_automl.features.calendar import calendar_features
from atec_automl.features.codes import normalised_labels
from atec_automl.features.incremental import is_missing
from atec_automl.features.spec import RawEventFeatures

MISSING_CODE = -1


class Vocabulary:
    """Each coded column's values in code order: the training vocabulary, then values first seen since."""

    def __init__(self, training: dict[str, pd.Index]):
        self.values = {c: [str(v) for v in values] for c, values in training.items()}
        self.position = {c: {v: i for i, v in enumerate(values)} for c, values in self.values.items()}
        self._labels: dict[str, dict[object, str]] = {c: {} for c in self.values}
        self._index: dict[str, pd.Index] = {}

    def label(self, column: str, value: object) -> str:
        """The text a value is compared as (`frozen_codes` converts values to the vocabulary's str type)."""
        cache = self._labels[column]
        if value not in cache:
            cache[value] = str(pd.Index(np.asarray([value], dtype=object), dtype="str")[0])
        return cache[value]

    def codes(self, column: str, values: list[object]) -> np.ndarray:
        """`frozen_codes` of values (a request's, in time order): a known value's place, else the number of
        known values plus its order of first appearance among the unknown ones; -1 for missing."""
        known, pending, labels = self.position[column], {}, self._labels[column]
        out = []
        for value in values:
            if value is None or value != value:
                out.append(MISSING_CODE)
                continue
            label = labels[value] if value in labels else self.label(column, value)
            code = known.get(label)
            out.append(code if code is not None else len(known) + pending.setdefault(label, len(pending)))
        return np.array(out, dtype=np.int32)

    def extend(self, column: str, values: list[object]) -> None:
        """Add the values not known yet, in order."""
        position, labels = self.position[column], self._labels[column]
        for value in values:
            if value is None or value != value:
                continue
            label = labels[value] if value in labels else self.label(column, value)
            if label not in position:
                position[label] = len(self.values[column])
                self.values[column].append(label)
                self._index.pop(column, None)

    def extend_frame(self, frame: pd.DataFrame) -> None:
        """Add the unknown values of many events at once (the history)."""
        for column in self.values:
            if column in frame.columns:
                unique = pd.unique(frame[column].dropna().astype(str))
                self.extend(column, [v for v in unique if v not in self.position[column]])

    def index(self) -> dict[str, pd.Index]:
        """The values per column as the `vocabulary` argument of `compute_features`."""
        for column, values in self.values.items():
            if column not in self._index:
                self._index[column] = pd.Index(values, dtype="str")
        return self._index


class EventFields:
    """The event-alone columns of the raw features, for events given as plain values."""

    def __init__(self, spec: RawEventFeatures, format_columns: list[str], present: set[str]):
        self.spec = spec
        self.format_columns = format_columns
        self.mismatches = {n: p for n, p in spec.mismatches.items() if set(p) <= present}
        self.categorical = [c for c in spec.categorical if c in present]
        self._normalised: dict[object, object] = {}

    def normalised(self, value: object) -> object:
        """A value's label as `shared_codes` compares it (numbers as float text), cached."""
        if value not in self._normalised:
            labels = pd.Categorical(pd.Series([value], dtype=object)).categories
            self._normalised[value] = normalised_labels(labels)[0]
        return self._normalised[value]

    def numeric(self, events: list[dict], ts: np.ndarray) -> dict[str, np.ndarray]:
        """Mismatch flags, calendar fields, missing count and amount of each event."""
        out: dict[str, np.ndarray] = {}
        for name, (first, second) in self.mismatches.items():
            out[f"mismatch_{name}"] = np.array([
                np.nan if is_missing(e[first]) or is_missing(e[second])
                else float(self.normalised(e[first]) != self.normalised(e[second])) for e in events])
        out.update(calendar_features(ts, self.spec.holidays))
        out["missing_count"] = self.missing_count(events)
        out["amount"] = np.array([np.nan if is_missing(e[self.spec.amount]) else float(e[self.spec.amount]) for e in events])
        return out

    def missing_count(self, events: list[dict]) -> np.ndarray:
        """How many of the format's fields each event misses (None or NaN, as `is_missing`, tested inline)."""
        return np.array([sum([value is None or value != value for value in map(event.__getitem__, self.format_columns)])
                         for event in events], dtype=np.float64)

    def codes(self, events: list[dict], vocabulary: Vocabulary) -> dict[str, np.ndarray]:
        """`cat_<column>` codes of each event, frozen to the vocabulary."""
        return {f"cat_{c}": vocabulary.codes(c, [e[c] for e in events]) for c in self.categorical}
