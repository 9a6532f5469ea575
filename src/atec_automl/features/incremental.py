"""The tabular raw-format features of one new event from per-key state: the batch features, one event at a time.

`IncrementalFeatures` keeps the events taken in after the history once (`OnlineEvents`) and, for
every key tuple a feature reads (each entity's columns, each first-seen pair, the user and each
(user, column) of the usual flags), the list of each key value's events among them. The
`groups.Group` of a key value (its history and online events in the batch code's order with
compensated prefix sums) is built when first read and brought up to date when read again. A new
event at time `t` reads each of its groups with a few binary searches (its past ends before the
first event with `visible_from > t`, a window of `w` starts at the first one with
`visible_from > t - w`) and O(window) numpy over slices (distinct counts and usual flags over the groups' running code
statistics, `Group.code_stats`), with the formulas of `semifinal.py` applied to the same numbers in
the same order, so every value equals the one `compute_features` gives over the whole timeline (the
parity tests in `tests/test_serve.py` compare them).
Fields that read the event alone are `event_fields.py`'s.
The user's event sequences (for `cnn_lstm`) are not kept here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pandas as pd

from atec_automl.features.groups import MISSING, Group
from atec_automl.features.key_rows import KeyRows
from atec_automl.features.online_events import OnlineEvents
from atec_automl.features.semifinal import AMOUNT_STATS
from atec_automl.features.spec import EntitySpec, RawEventFeatures, window_seconds

Key = tuple[str, ...]
Added = tuple[Key, int, int]
"""One event listed under one key value: (key tuple, the value's id in `KeyRows`, index in `OnlineEvents`), for
`undo`."""


FEW_VALUES = 64
"""Window sizes whose maximum or distinct count a Python loop finds faster than numpy's fixed cost per call."""


def is_missing(value: object) -> bool:
    """Whether a field's value is missing (None or NaN)."""
    return value is None or value != value


def has_missing(value: tuple) -> bool:
    """Whether a part of a key's value is missing (None or NaN)."""
    for part in value:
        if part is None or part != part:
            return True
    return False


class ValueCodes:
    """int codes of one column's values (equal values, equal codes), numbered as they come; -1 missing."""

    def __init__(self, history: np.ndarray):
        codes, uniques = pd.factorize(pd.Series(history, dtype=object), use_na_sentinel=True)
        self.history = codes.astype(np.int64)
        self.known = {value: code for code, value in enumerate(uniques.tolist())}

    def code(self, value: object) -> int:
        """The value's code (a new one for a value not seen before)."""
        if is_missing(value):
            return MISSING
        return self.known.setdefault(value, len(self.known))


class IncrementalFeatures:
    """Per-key groups of the timeline so far and the tabular features of a new event from them."""

    def __init__(self, spec: RawEventFeatures, history: pd.DataFrame):
        self.spec = spec
        present = set(history.columns)
        self.entities = {n: e for n, e in spec.entities.items() if set(e.columns) | set(e.distinct) <= present}
        self.first_seen = {n: tuple(p) for n, p in spec.first_seen.items() if set(p) <= present}
        self.usual = [c for c in spec.usual if {spec.user, c} <= present]
        self.code_columns = self._code_columns()
        self.keys = list(dict.fromkeys([tuple(e.columns) for e in self.entities.values()]
                                       + list(self.first_seen.values()) + [(spec.user,)]
                                       + [(spec.user, c) for c in self.usual]))
        self.keys = [k for k in self.keys if set(k) <= present]
        self.summed = {tuple(e.columns) for e in self.entities.values() if set(e.stats) - {"count"}}
        self.values = {c: ValueCodes(history[c].to_numpy()) for c in {c for cs in self.code_columns.values() for c in cs}}
        self.online = OnlineEvents(sorted(self.values))
        ts = history["ts"].to_numpy(dtype=np.int64)
        visible = ts + history["ts_resolution"].to_numpy(dtype=np.int64)
        columns = {"visible": visible, "ts": ts} | {c: self.values[c].history for c in self.online.code_names}
        self.history_ints = np.empty((len(columns), len(history)), dtype=np.int64)
        """The history's integer columns by row, in the rows of `OnlineEvents`: one fancy index picks a group's."""
        for name, values in columns.items():
            self.history_ints[self.online.row(name)] = values
        self.visible, self.ts = self.history_ints[self.online.row("visible")], self.history_ints[self.online.row("ts")]
        for c in self.online.code_names:
            self.values[c].history = self.history_ints[self.online.row(c)]
        self.amount = history[spec.amount].to_numpy(dtype=np.float64, na_value=np.nan)
        self.int_rows = {k: np.array([self.online.row(n) for n in ("visible", "ts", *self.code_columns.get(k, []))])
                         [:, None] for k in self.keys}
        self.rows = {k: KeyRows(history, k, self.visible) for k in self.keys}
        self.groups: dict[Key, dict[int, Group]] = {k: {} for k in self.keys}
        self.plans = [EntityPlan.of(name, entity) for name, entity in self.entities.items()]
        self.first_seen_names = [(f"new_{name}", pair) for name, pair in self.first_seen.items()]
        self.usual_names = [(column, (spec.user, column), f"usual_{column}") for column in self.usual]

    def _code_columns(self) -> dict[Key, list[str]]:
        """Per key tuple, the columns whose codes its groups keep (distinct counts, usual flags)."""
        out: dict[Key, list[str]] = {}
        for entity in self.entities.values():
            out.setdefault(tuple(entity.columns), []).extend(entity.distinct)
        out.setdefault((self.spec.user,), []).extend(self.usual)
        return {k: list(dict.fromkeys(v)) for k, v in out.items()}

    def group(self, key: Key, event: dict) -> Group | None:
        """The group of the event's value of `key` (see `group_of`); None when a part is missing."""
        value = tuple([event[c] for c in key])
        return None if has_missing(value) else self.group_of(key, value)

    def group_of(self, key: Key, value: tuple) -> Group:
        """The group of a value of `key` with no missing part: built from its history and online events on first
        use, then brought up to date with the online events added since."""
        known = self.rows[key].id_of(value)
        online = self.rows[key].online_of(known)
        rows = self.rows[key].history(known)
        found = self.groups[key].get(known)
        if found is None:
            ints, amount = self.history_ints[self.int_rows[key], rows], self.amount[rows]
            if online:
                added = np.asarray(online, dtype=np.int64)
                ints = np.concatenate([ints, self.online.ints(self.int_rows[key], added)], axis=1)
                amount = np.concatenate([amount, self.online.column("amount")[added]])
            codes = {c: ints[row] for row, c in enumerate(self.code_columns.get(key, []), start=2)}
            found = self.groups[key][known] = Group(ints[0], ints[1], amount, codes, summed=key in self.summed,
                                                    in_order=not online)
        elif found.size < len(rows) + len(online):  # it holds the history and the online events read before
            added = np.asarray(online[found.size - len(rows):], dtype=np.int64)
            found.add(*(self.online.column(name)[added].tolist() for name in ("visible", "ts", "amount")),
                      {c: self.online.column(c)[added].tolist() for c in found.code_names})
        return found

    def history_column(self, name: str) -> np.ndarray:
        """The history's `visible`, `ts`, `amount` or codes of a code column, by row."""
        return getattr(self, name) if name in ("visible", "ts", "amount") else self.values[name].history

    def features(self, event: dict, t: int) -> dict[str, float]:
        """The history-dependent features of an event at time `t` (absent names are NaN: a key part is missing)."""
        amount = float(event[self.spec.amount]) if not is_missing(event[self.spec.amount]) else np.nan
        out: dict[str, float] = {}
        for plan in self.plans:
            group = self.group(plan.key, event)
            if group is not None:
                entity_values(group, plan, amount, t, out)
        for name, pair in self.first_seen_names:
            group = self.group(pair, event)
            if group is not None:
                out[name] = float(group.past_end(t) == 0)
        user = self.group((self.spec.user,), event)
        for column, pair_key, name in self.usual_names:
            pair = self.group(pair_key, event)
            if user is not None and pair is not None:
                out[name] = usual_flag(user, column, pair.past_end(t), t)
        return out

    def add(self, event: dict, visible: int, ts: int) -> list[Added]:
        """Add one event to the timeline (`add_many` of one event, without its per-column lists); returns what
        `undo` takes back."""
        amount = event[self.spec.amount]
        index = self.online.append_one(visible, ts, np.nan if is_missing(amount) else float(amount),
                                       [self.values[c].code(event[c]) for c in self.online.code_names])
        added: list[Added] = []
        for key in self.keys:
            value = tuple([event[c] for c in key])
            if not has_missing(value):
                added.append((key, self.rows[key].add(value, index), index))
        return added

    def add_many(self, events: list[dict], visible: np.ndarray,
                 ts: np.ndarray) -> tuple[list[Added], dict[Key, tuple[list[int], list[int]]]]:
        """Add events (in time order) to the timeline: stored once, listed under each of their key values (the
        groups catch up when read). Returns what `undo` takes back and, per key tuple, the events whose key
        is known (their positions in `events`, ascending) with their values' ids."""
        amount = [np.nan if is_missing(e[self.spec.amount]) else float(e[self.spec.amount]) for e in events]
        codes = {c: [self.values[c].code(e[c]) for e in events] for c in self.online.code_names}
        first = self.online.append(visible, ts, amount, codes)
        columns = {c: [e[c] for e in events] for c in {c for key in self.keys for c in key}}
        missing = {c: [value is None or value != value for value in values] for c, values in columns.items()}
        added: list[Added] = []
        found: dict[Key, tuple[list[int], list[int]]] = {}
        for key in self.keys:
            gaps = missing[key[0]] if len(key) == 1 else [any(parts) for parts in zip(*(missing[c] for c in key))]
            known = [row for row, gap in enumerate(gaps) if not gap]
            values = list(zip(*([columns[c][row] for row in known] for c in key))) if known else []
            indices = [first + row for row in known]
            ids = self.rows[key].add_many(values, indices)
            added.extend(zip(repeat(key), ids, indices))
            found[key] = known, ids
        return added, found

    def undo(self, added: list[Added]) -> None:
        """Take back events added by `add` or `add_many`, latest first; the groups they reached are rebuilt when
        next read."""
        for key, found, index in reversed(added):
            self.rows[key].remove_last(found)
            self.groups[key].pop(found, None)
            self.online.truncate(index)


@dataclass(frozen=True)
class EntityPlan:
    """What one entity's features read, worked out once: its key, its windows (seconds) and the name of each
    value, so that a one-event read formats no name and rebuilds no list."""

    key: Key
    windows: tuple[tuple[str, int | None], ...]
    """Every window the entity reads (its own and its distinct counts'), with its length."""
    amount_stats: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    """Per window of `EntitySpec.windows`, the (statistic, feature name) pairs of its amount statistics."""
    with_max: bool
    counts: tuple[tuple[str, str], ...]
    """(window, feature name) of the window counts."""
    since_prev: str | None
    distinct: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    """Per counted column, its (window, feature name) pairs."""

    @classmethod
    def of(cls, name: str, entity: EntitySpec) -> "EntityPlan":
        """The plan of entity `name`, in the batch code's feature order."""
        windows = list(dict.fromkeys(entity.windows + [w for ws in entity.distinct.values() for w in ws]))
        summed = bool(set(entity.stats) - {"count"})
        amount_stats = tuple((w, tuple((s, f"{name}_{s}_{w}") for s in entity.stats if s in AMOUNT_STATS))
                             for w in entity.windows) if summed else ()
        return cls(key=tuple(entity.columns), windows=tuple((w, window_seconds(w)) for w in windows),
                   amount_stats=amount_stats, with_max=bool({"amt_max", "amt_vs_max"} & set(entity.stats)),
                   counts=tuple((w, f"{name}_count_{w}") for w in entity.windows) if "count" in entity.stats else (),
                   since_prev=f"{name}_since_prev" if entity.since_prev else None,
                   distinct=tuple((other, tuple((w, f"{name}_nuniq_{other}_{w}") for w in ws))
                                  for other, ws in entity.distinct.items()))


def entity_values(group: Group, plan: EntityPlan, amount: float, t: int, out: dict[str, float]) -> dict[str, float]:
    """One event's aggregates of one entity, by the formulas of `raw.entity_features` on the same numbers, written
    into `out` (returned)."""
    hi = group.past_end(t)
    lo = {w: group.window_start(t, seconds) for w, seconds in plan.windows}
    if plan.amount_stats:
        amount_values(group, plan, amount, hi, lo, out)
    for w, column in plan.counts:
        out[column] = float(hi - lo[w])
    if plan.since_prev:
        out[plan.since_prev] = float(t - int(group.ts[:hi].max())) if hi else np.nan
    for other, columns in plan.distinct:
        previous = group.code_stats(other)[0][:hi]
        if hi <= FEW_VALUES:
            previous = previous.tolist()
            for w, column in columns:
                start = lo[w]
                out[column] = float(sum([p < start for p in previous[start:]]))
        else:
            for w, column in columns:
                out[column] = float(np.count_nonzero(previous[lo[w]:] < lo[w]))
    return out


def amount_values(group: Group, plan: EntityPlan, amount: float, hi: int, lows: dict[str, int],
                  out: dict[str, float]) -> dict[str, float]:
    """Sum, mean, max, std of the past amounts per window and the amount against them (`raw.amount_features`), in
    Python floats, written into `out` (returned): the same IEEE double operations on the same numbers as the
    batch's numpy, without a numpy call's fixed cost per value. Where the batch divides by zero (an infinity,
    NaN once the table is typed) the value is NaN."""
    sums_hi, squares_hi, known_hi = group.sum_before(hi)
    for w, columns in plan.amount_stats:
        lo = lows[w]
        sums_lo, squares_lo, known_lo = group.sum_before(lo)
        n = float(known_hi - known_lo)
        total = sums_hi - sums_lo
        mean = total / n if n > 0 else math.nan
        largest = window_max(group.amount, lo, hi) if plan.with_max else math.nan
        stats = {"amt_sum": total if n > 0 else math.nan, "amt_mean": mean,
                 "amt_std": math.sqrt(max(squares_hi - squares_lo - total * mean, 0.0) / (n - 1)) if n > 1 else math.nan,
                 "amt_vs_mean": amount / mean if mean else math.nan,
                 "amt_max": largest, "amt_vs_max": amount / largest if largest else math.nan}
        for stat, column in columns:
            out[column] = stats[stat]
    return out


def window_max(amounts: np.ndarray, lo: int, hi: int) -> float:
    """Largest known amount in `[lo, hi)`; NaN where there is none."""
    if hi - lo <= FEW_VALUES:
        return max([a for a in amounts[lo:hi].tolist() if a == a], default=math.nan)
    window = amounts[lo:hi]
    known = window[~np.isnan(window)]
    return float(known.max()) if len(known) else math.nan


def usual_flag(user: Group, column: str, past_pair: int, t: int) -> float:
    """1.0 when the event's value is (one of) the user's most frequent past values, NaN when the user has none."""
    past = user.past_end(t)
    mode = int(user.code_stats(column)[1][past - 1]) if past else 0
    return np.nan if mode == 0 else float(past_pair == mode)

