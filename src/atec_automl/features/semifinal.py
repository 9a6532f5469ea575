"""Tabular features of the semi-final raw format, each from strictly earlier events only.

Feature names: `<entity>_<stat>_<window>` (e.g. `user_amt_mean_24h`), `<entity>_nuniq_<column>_<window>`
(distinct values of another column among the entity's past events), `<entity>_since_prev`
(seconds since the entity's previous event), `new_<name>` (first time this pair is seen),
`usual_<column>` (the value is the user's most frequent past value), `mismatch_<name>`
(two province fields differ), calendar fields, `missing_count`, the amount and the configured
categorical fields as codes. A value whose key field is missing is NaN.

How each is computed (see `windows.py`): counts are index differences; sums and means come from
cumulative sums restarted at every entity (so later events cannot change an earlier value's
rounding); std is the sample std (ddof=1) from cumulative sums of amounts and their squares
(float64, clipped at 0 against cancellation); maxima are exact range maxima (sparse-table
doubling, O(n) memory); distinct counts are exact (first occurrence inside the window).
Nothing reads the label: `build.compute_features` drops it before calling this module.
"""
from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from atec_automl.data.dataset import visible_from
from atec_automl.features.calendar import calendar_features
from atec_automl.features.codes import appearance_codes, frozen_codes, key_codes, shared_codes
from atec_automl.features.sequences import sequence_index, step_table
from atec_automl.features.table_sink import TableSink
from atec_automl.features.spec import ALL_HISTORY, EntitySpec, RawEventFeatures, window_seconds
from atec_automl.features.windows import (
    KeyIndex,
    Timeline,
    build_key_index,
    distinct_in_ranges,
    prefix_before,
    previous_same,
    range_max,
    run_starts,
    segmented_cummax,
    segmented_cumsum,
)

log = logging.getLogger(__name__)
AMOUNT_STATS = ("amt_sum", "amt_mean", "amt_max", "amt_std", "amt_vs_mean", "amt_vs_max")


class RawFeatureBuilder:
    """Computes the raw-format features of one timeline, sharing sorted key indexes between them.

    Categorical fields become codes numbered by first appearance in the timeline, or, given a
    `vocabulary` (column -> values in a training timeline's first-appearance order), the codes
    that training timeline gave them (`frozen_codes`): how a saved model's code space is kept.
    """

    def __init__(self, frame: pd.DataFrame, spec: RawEventFeatures, format_columns: list[str],
                 vocabulary: dict[str, pd.Index] | None = None):
        self.frame, self.spec, self.format_columns = frame, spec, format_columns
        self.vocabulary = vocabulary or {}
        self.ts = frame["ts"].to_numpy(dtype=np.int64)
        self.timeline = Timeline.of(self.ts, visible_from(frame))
        self.n = len(frame)
        self.amount = frame[spec.amount].to_numpy(dtype=np.float64, na_value=np.nan)
        self.max_window = max([window_seconds(w) or 0 for w in self._all_windows()] + [0])
        self._indexes: dict[tuple[str, ...], KeyIndex] = {}
        self._planned = self._planned_index_uses()

    def _all_windows(self) -> list[str]:
        """Every window named anywhere in the spec."""
        names = []
        for entity in self.spec.entities.values():
            names += entity.windows + [w for ws in entity.distinct.values() for w in ws]
        return names

    def has(self, columns: list[str], what: str) -> bool:
        """Whether all `columns` exist; logs what is skipped when not."""
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            log.warning("features: skipping %s, the data has no column %s", what, missing)
        return not missing

    def _planned_index_uses(self) -> Counter:
        """How many times each key's index will be asked for, so it is freed after its last use."""
        spec, user = self.spec, [self.spec.user]
        uses = [e.columns for e in spec.entities.values()] + list(spec.first_seen.values())
        uses += [u for column in spec.usual for u in (user, [spec.user, column])]
        uses += [user] if spec.sequence is not None else []
        return Counter(tuple(columns) for columns in uses)

    def codes(self, columns: list[str]) -> np.ndarray:
        """Key codes of a column or column tuple."""
        return key_codes(self.frame, list(columns))

    def index(self, columns: list[str]) -> KeyIndex:
        """The (key, time) index of a column or column tuple: built once, dropped after its last planned use."""
        key = tuple(columns)
        index = self._indexes.get(key) or build_key_index(self.codes(columns), self.timeline, self.max_window)
        self._planned[key] -= 1
        if self._planned[key] > 0:
            self._indexes[key] = index
        else:
            self._indexes.pop(key, None)
        return index

    def build(self, progress: tqdm) -> tuple[pd.DataFrame, list[str]]:
        """The feature table (timeline order) and the names of its categorical columns."""
        spec, sink = self.spec, TableSink(self.n)
        for name, entity in spec.entities.items():
            progress.set_postfix_str(name)
            if self.has(entity.columns + list(entity.distinct), f"entity {name!r}"):
                ki = self.index(entity.columns)
                sorted_values = entity_features(ki, name, entity, self.amount, self._other_codes(ki, entity))
                for column, values in sorted_values.items():
                    sink.add_scattered(column, ki.order, values)
            progress.update()
        sink.add_all(self.first_seen())
        progress.update()
        sink.add_all(self.usual())
        sink.add_all(self.mismatches())
        sink.add_all(calendar_features(self.ts, spec.holidays))
        sink.add("missing_count", self.frame[self.format_columns].isna().sum(axis=1).to_numpy())
        sink.add("amount", self.amount)
        for column in spec.categorical:
            if self.has([column], f"categorical field {column!r}"):
                sink.add_codes(f"cat_{column}", self.category_codes(column))
        progress.update()
        return sink.frame(), sink.categorical

    def sequences(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The user's past-event index and the step table (log amount, log gap, flags, codes)."""
        seq = self.spec.sequence
        users = self.index([self.spec.user])
        gap = users.scatter(users.since_previous(), self.n)
        steps = {
            "log_amount": np.log1p(np.maximum(self.amount, 0.0)),
            "amount_missing": np.isnan(self.amount).astype(np.float32),
            "log_gap": np.log1p(gap),
            "first_event": np.isnan(gap).astype(np.float32),
            "hour": table["hour"].to_numpy() / 23.0,
            "weekday": table["weekday"].to_numpy() / 6.0,
        }
        steps.update({f"new_{n}": table[f"new_{n}"].to_numpy() for n in seq.novelty if f"new_{n}" in table})
        codes = [c for c in seq.categorical if self.has([c], f"sequence code {c!r}")]
        steps.update({f"code_{c}": self._sequence_codes(table, c) + 1.0 for c in codes})
        steps_array, names = step_table(steps)
        return sequence_index(users, self.n, seq.length), steps_array, names

    def _sequence_codes(self, table: pd.DataFrame, column: str) -> np.ndarray:
        """`category_codes` of a column, taken from the table when it already holds them as `cat_<column>`."""
        if f"cat_{column}" in table:
            return table[f"cat_{column}"].to_numpy()
        return self.category_codes(column)

    def category_codes(self, column: str) -> np.ndarray:
        """Codes of a categorical field: by first appearance, or frozen to the vocabulary's when it has the column."""
        if column in self.vocabulary:
            return frozen_codes(self.frame[column], self.vocabulary[column])
        return appearance_codes(self.frame[column])

    def _other_codes(self, ki: KeyIndex, entity: EntitySpec) -> dict[str, np.ndarray]:
        """Codes, in the entity's sorted order, of the columns whose distinct values are counted."""
        return {other: self.codes([other])[ki.order] for other in entity.distinct}

    def first_seen(self) -> dict[str, np.ndarray]:
        """`new_<name>`: 1.0 when the pair of values never occurred before, NaN when one is missing."""
        out = {}
        for name, pair in self.spec.first_seen.items():
            if self.has(pair, f"first_seen {name!r}"):
                ki = self.index(pair)
                out[f"new_{name}"] = ki.scatter((ki.hi == ki.group_start).astype(np.float32), self.n)
        return out

    def usual(self) -> dict[str, np.ndarray]:
        """`usual_<column>`: 1.0 when the value is (one of) the user's most frequent past values.

        NaN when the value is missing or the user has no past event with a known value.
        """
        out, user = {}, self.spec.user
        for column in self.spec.usual:
            if not self.has([user, column], f"usual {column!r}"):
                continue
            users, pairs = self.index([user]), self.index([user, column])
            pair_codes = self.codes([user, column])[users.order]
            mode_before = prefix_max_before(occurrence_number(pair_codes), users.hi, users.group_start, empty=0)
            mode = users.scatter(mode_before, self.n, fill=0.0)
            past = pairs.scatter((pairs.hi - pairs.group_start).astype(np.float64), self.n)
            flag = np.where(np.isnan(past) | (mode == 0), np.nan, past == mode)
            out[f"usual_{column}"] = flag.astype(np.float32)
        return out

    def mismatches(self) -> dict[str, np.ndarray]:
        """`mismatch_<name>`: 1.0 when two fields differ, 0.0 when equal, NaN when one is missing."""
        out = {}
        for name, pair in self.spec.mismatches.items():
            if self.has(pair, f"mismatch {name!r}"):
                first, second = shared_codes(self.frame, pair)
                both = (first >= 0) & (second >= 0)
                out[f"mismatch_{name}"] = np.where(both, first != second, np.nan).astype(np.float32)
        return out


def entity_features(ki: KeyIndex, name: str, entity: EntitySpec, amount: np.ndarray, others: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Window aggregates of one entity, one value per position of `ki` (sorted order)."""
    out: dict[str, np.ndarray] = {}
    lows = {w: ki.lo(window_seconds(w)) for w in entity.windows}
    if set(entity.stats) & set(AMOUNT_STATS):
        out.update(amount_features(ki, name, entity, amount, lows))
    if "count" in entity.stats:
        out.update({f"{name}_count_{w}": (ki.hi - lo).astype(np.float64) for w, lo in lows.items()})
    if entity.since_prev:
        out[f"{name}_since_prev"] = ki.since_previous()
    for other, windows in entity.distinct.items():
        bounds = {w: lows[w] if w in lows else ki.lo(window_seconds(w)) for w in windows}
        out.update(distinct_features(ki, f"{name}_nuniq_{other}", others[other], bounds))
    return out


def amount_features(ki: KeyIndex, name: str, entity: EntitySpec, amount: np.ndarray, lows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sum, mean, max, std of the past amounts per window and the current amount against them."""
    values = amount[ki.order]
    known = np.isfinite(values)
    filled = np.where(known, values, 0.0)
    known_before = np.concatenate([[0], np.cumsum(known)])
    sums, squares = segmented_cumsum(np.column_stack([filled, filled * filled]), ki.group_start).T
    maxima = window_maxima(ki, values, lows) if {"amt_max", "amt_vs_max"} & set(entity.stats) else {}
    out = {}
    sums_to_hi, squares_to_hi = prefix_before(sums, ki.hi, ki.group_start), prefix_before(squares, ki.hi, ki.group_start)
    with np.errstate(divide="ignore", invalid="ignore"):
        for w, lo in lows.items():
            n = (known_before[ki.hi] - known_before[lo]).astype(np.float64)
            total = sums_to_hi - prefix_before(sums, lo, ki.group_start)
            mean = np.where(n > 0, total / n, np.nan)
            variance = np.maximum(squares_to_hi - prefix_before(squares, lo, ki.group_start) - total * mean, 0.0) / (n - 1)
            stats = {
                "amt_sum": np.where(n > 0, total, np.nan),
                "amt_mean": mean,
                "amt_std": np.where(n > 1, np.sqrt(variance), np.nan),
                "amt_vs_mean": values / mean,
                "amt_max": maxima.get(w),
                "amt_vs_max": values / maxima[w] if w in maxima else None,
            }
            out.update({f"{name}_{s}_{w}": stats[s] for s in entity.stats if s in AMOUNT_STATS})
    return out


def window_maxima(ki: KeyIndex, values: np.ndarray, lows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Exact maximum past amount per window: range maxima, a prefix maximum for all history."""
    finite = [w for w in lows if w != ALL_HISTORY]
    out = dict(zip(finite, range_max(values, [(lows[w], ki.hi) for w in finite])))
    if ALL_HISTORY in lows:
        best = prefix_max_before(np.where(np.isnan(values), -np.inf, values), ki.hi, ki.group_start, empty=-np.inf)
        out[ALL_HISTORY] = np.where(best > -np.inf, best, np.nan)
    return out


def distinct_features(ki: KeyIndex, prefix: str, other_codes: np.ndarray, lows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Distinct known values of another column among the entity's events of each window (`lows`: its first positions)."""
    pair = ki.group_start * (int(other_codes.max(initial=0)) + 2) + (other_codes + 1)
    prev = previous_same(pair)
    known = other_codes >= 0
    prev = np.where(known, prev, np.arange(len(prev)))
    out = {}
    finite = [w for w in lows if w != ALL_HISTORY]
    counts = distinct_in_ranges(prev, [(lows[w], ki.hi) for w in finite])
    out.update({f"{prefix}_{w}": c.astype(np.float64) for w, c in zip(finite, counts)})
    if ALL_HISTORY in lows:
        firsts = np.concatenate([[0], np.cumsum(known & (prev < 0))])
        out[f"{prefix}_{ALL_HISTORY}"] = (firsts[ki.hi] - firsts[ki.group_start]).astype(np.float64)
    return out


def occurrence_number(codes: np.ndarray) -> np.ndarray:
    """1 for the first occurrence of a code, 2 for its second, ...; 0 where the code is -1."""
    order = np.argsort(codes, kind="stable")
    starts = run_starts(codes[order])
    number = np.empty(len(codes), dtype=np.int64)
    number[order] = np.arange(len(codes)) - starts + 1
    return np.where(codes >= 0, number, 0)


def prefix_max_before(values: np.ndarray, hi: np.ndarray, group_start: np.ndarray, empty: float) -> np.ndarray:
    """Maximum of the group's values at positions `< hi`; `empty` where there is none."""
    running = segmented_cummax(values, group_start)
    return np.where(hi > group_start, running[np.maximum(hi - 1, 0)], empty)
