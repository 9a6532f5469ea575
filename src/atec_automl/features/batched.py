"""The history-dependent features of a batch of new events at once, read from the groups after the batch joined them.

`IncrementalFeatures.features` reads one event before it joins its groups. For a batch this
module adds every event first (`IncrementalFeatures.add`, which keeps each group in the batch
code's order with its compensated prefix sums) and then reads all of them together. That gives
each event the same past: its past is the events of its group with `visible_from <= t`, and
neither the event itself nor a later event of the batch is among them (`visible_from = ts +
resolution > t` for every event at or after it), while the earlier events of the batch that are
visible at `t` are, at the positions and with the prefix sums they had when it came. Ties in time
do not see each other, as in the batch computation.

For each key tuple the groups the batch touches are laid end to end (`Blocks`); an event's past
and windows are binary searches of (block, time) composites, sums come from the groups' prefix
sums, maxima and distinct counts from the batch kernels of `windows.py` (exact), the usual flags
from running counts of each value: one numpy pass per key tuple instead of one per event.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atec_automl.features.groups import Group
from atec_automl.features.incremental import IncrementalFeatures, Key, has_missing, is_missing
from atec_automl.features.spec import EntitySpec, window_seconds
from atec_automl.features.windows import distinct_in_ranges, previous_same, range_max, running_counts


@dataclass
class Blocks:
    """The groups of one key tuple touched by a batch, end to end, and where each batch event reads them.

    Flat arrays cover every touched group's events (in group order); per-event arrays cover the
    batch events whose key is known (`rows`, their indices in the batch)."""

    rows: np.ndarray
    block: np.ndarray
    start: np.ndarray
    hi: np.ndarray
    t: np.ndarray
    groups: list[Group]
    flat_block: np.ndarray
    composite: np.ndarray
    base: int
    span: int
    cache: dict[str, np.ndarray] = field(default_factory=dict)

    def lo(self, seconds: int | None) -> np.ndarray:
        """First flat position of each event's window of `seconds` (its block's start for all history)."""
        if seconds is None:
            return self.start
        return np.searchsorted(self.composite, self.block * self.span + (self.t - seconds - self.base), side="right")

    def flat(self, name: str) -> np.ndarray:
        """A per-event array of the groups (`ts`, `amount`, `sums`, `squares`, `known`), end to end."""
        if name not in self.cache:
            self.cache[name] = np.concatenate([getattr(g, name)[:g.size] for g in self.groups])
        return self.cache[name]

    def codes(self, column: str) -> np.ndarray:
        """The codes of `column` of the groups' events, end to end."""
        if f"codes:{column}" not in self.cache:
            self.cache[f"codes:{column}"] = np.concatenate([g.codes[column][:g.size] for g in self.groups])
        return self.cache[f"codes:{column}"]

    def before(self, values: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Inclusive prefix `values` at `position - 1`; 0 where `position` is its block's start."""
        return np.where(position > self.start, values[np.maximum(position - 1, 0)], 0)


def add_batch(state: IncrementalFeatures, events: list[dict], ts: np.ndarray, visible: np.ndarray,
              inserted: list[tuple[Group, int]]) -> dict[Key, tuple[list[int], list[Group]]]:
    """Add the batch's events to their groups, key tuple by key tuple (each group takes its events in batch
    order, as one by one), recording each insertion in `inserted` (for `IncrementalFeatures.undo`);
    returns, per key tuple, the rows whose key is known (ascending) and their groups."""
    amount = [np.nan if is_missing(e[state.spec.amount]) else float(e[state.spec.amount]) for e in events]
    coded = {c for columns in state.code_columns.values() for c in columns}
    codes = {c: [state.values[c].code(e[c]) for e in events] for c in coded}
    times, seen_from = ts.tolist(), visible.tolist()
    found: dict[Key, tuple[list[int], list[Group]]] = {}
    for key in state.keys:
        columns = state.code_columns.get(key, [])
        by_value: dict[tuple, list[int]] = {}
        for row, event in enumerate(events):
            value = tuple([event[c] for c in key])
            if not has_missing(value):
                by_value.setdefault(value, []).append(row)
        group_of_row: dict[int, Group] = {}
        for value, rows in by_value.items():
            group = state.group_of(key, value)
            positions = group.add([seen_from[r] for r in rows], [times[r] for r in rows], [amount[r] for r in rows],
                                  {c: [codes[c][r] for r in rows] for c in columns})
            inserted.extend([(group, position) for position in positions])
            group_of_row.update(dict.fromkeys(rows, group))
        rows = sorted(group_of_row)
        found[key] = rows, [group_of_row[r] for r in rows]
    return found


def gather(rows: list[int], row_groups: list[Group], ts: np.ndarray, longest: int) -> Blocks | None:
    """The blocks of one key tuple for the batch events `rows` (with their groups); None when there are none.
    `longest`: the longest window, in seconds."""
    if not rows:
        return None
    index: dict[int, int] = {}
    groups: list[Group] = []
    block = []
    for group in row_groups:
        number = index.setdefault(id(group), len(groups))
        if number == len(groups):
            groups.append(group)
        block.append(number)
    rows_array, block_array = np.asarray(rows, dtype=np.int64), np.asarray(block, dtype=np.int64)
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    visible = np.concatenate([g.visible[:g.size] for g in groups])
    t = ts[rows_array]
    base = int(min(visible.min(), t.min() - longest))
    span = int(max(visible.max(), t.max())) - base + 1
    flat_block = np.repeat(np.arange(len(groups), dtype=np.int64), sizes)
    composite = flat_block * span + (visible - base)
    hi = np.searchsorted(composite, block_array * span + (t - base), side="right")
    return Blocks(rows_array, block_array, starts[block_array], hi, t, groups, flat_block, composite, base, span)


def batch_features(state: IncrementalFeatures, events: list[dict], ts: np.ndarray,
                   added: dict[Key, tuple[list[int], list[Group]]]) -> dict[str, np.ndarray]:
    """The history-dependent features of the batch's events, once `add_batch` added them to `state` (`added`
    is what it returned), NaN where a key part is missing."""
    n = len(events)
    longest = max([s for s in (window_seconds(w) for e in state.entities.values() for w in _windows(e)) if s] + [0])
    blocks = {k: gather(*added[k], ts, longest) for k in state.keys}
    amount = np.array([np.nan if is_missing(e[state.spec.amount]) else float(e[state.spec.amount]) for e in events])
    out: dict[str, np.ndarray] = {}

    def put(name: str, found: Blocks, values: np.ndarray) -> None:
        column = out.setdefault(name, np.full(n, np.nan))
        column[found.rows] = values

    for name, entity in state.entities.items():
        found = blocks[tuple(entity.columns)]
        if found is not None:
            for column, values in entity_columns(found, name, entity, amount[found.rows]).items():
                put(column, found, values)
    for name, pair in state.first_seen.items():
        found = blocks[pair]
        if found is not None:
            put(f"new_{name}", found, (found.hi == found.start).astype(np.float64))
    user = blocks[(state.spec.user,)]
    for column in state.usual:
        pair = blocks[(state.spec.user, column)]
        if user is not None and pair is not None:
            put(f"usual_{column}", pair, usual_flags(user, column, pair))
    return out


def _windows(entity: EntitySpec) -> list[str]:
    """Every window an entity reads (aggregates and distinct counts), once each."""
    return list(dict.fromkeys(entity.windows + [w for ws in entity.distinct.values() for w in ws]))


def entity_columns(found: Blocks, name: str, entity: EntitySpec, value: np.ndarray) -> dict[str, np.ndarray]:
    """One entity's aggregates for the events of `found`, by the formulas of `incremental.entity_values`."""
    lo = {w: found.lo(window_seconds(w)) for w in _windows(entity)}
    out: dict[str, np.ndarray] = {}
    if set(entity.stats) - {"count"}:
        out.update(amount_columns(found, name, entity, value, [lo[w] for w in entity.windows]))
    if "count" in entity.stats:
        out.update({f"{name}_count_{w}": (found.hi - lo[w]).astype(np.float64) for w in entity.windows})
    if entity.since_prev:
        out[f"{name}_since_prev"] = since_previous(found)
    for other, other_windows in entity.distinct.items():
        prev = distinct_prev(found, other)
        counts = distinct_in_ranges(prev, [(lo[w], found.hi) for w in other_windows])
        out.update({f"{name}_nuniq_{other}_{w}": c.astype(np.float64) for w, c in zip(other_windows, counts)})
    return out


def amount_columns(found: Blocks, name: str, entity: EntitySpec, value: np.ndarray, lows: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Sum, mean, max, std of the past amounts per window and the amount against them (`incremental.amount_values`)."""
    sums, squares, known = found.flat("sums"), found.flat("squares"), found.flat("known")
    sums_hi, squares_hi, known_hi = (found.before(a, found.hi) for a in (sums, squares, known))
    wanted = set(entity.stats)
    maxima = range_max(found.flat("amount"), [(lo, found.hi) for lo in lows]) if {"amt_max", "amt_vs_max"} & wanted else None
    out: dict[str, np.ndarray] = {}
    for i, (w, lo) in enumerate(zip(entity.windows, lows)):
        n = (known_hi - found.before(known, lo)).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            total = sums_hi - found.before(sums, lo)
            mean = np.where(n > 0, total / n, np.nan)
            variance = np.maximum(squares_hi - found.before(squares, lo) - total * mean, 0.0) / (n - 1)
            largest = maxima[i] if maxima is not None else np.full(len(n), np.nan)
            stats = {"amt_sum": np.where(n > 0, total, np.nan), "amt_mean": mean,
                     "amt_std": np.where(n > 1, np.sqrt(variance), np.nan), "amt_vs_mean": value / mean,
                     "amt_max": largest, "amt_vs_max": value / largest}
        out.update({f"{name}_{s}_{w}": stats[s] for s in entity.stats if s in stats})
    return out


def since_previous(found: Blocks) -> np.ndarray:
    """Seconds since the latest `ts` among each event's past events (NaN for none)."""
    ts = found.flat("ts")
    low = int(ts.min())
    stride = int(ts.max()) - low + 1
    running = np.maximum.accumulate(found.flat_block * stride + (ts - low)) - found.flat_block * stride + low
    latest = running[np.maximum(found.hi - 1, 0)]
    return np.where(found.hi > found.start, (found.t - latest).astype(np.float64), np.nan)


def distinct_prev(found: Blocks, column: str) -> np.ndarray:
    """`windows.previous_same` of the codes within each block; a missing code points at itself (never counted)."""
    codes = found.codes(column)
    prev = previous_same(found.flat_block * (int(codes.max()) + 2) + codes + 1)
    missing = np.flatnonzero(codes < 0)
    prev[missing] = missing
    return prev


def usual_flags(user: Blocks, column: str, pair: Blocks) -> np.ndarray:
    """`incremental.usual_flag` of the events of `pair` (each has a user block, the user being required for it):
    1.0 when the event's (user, value) past count equals the largest past count of any of the user's values."""
    codes = user.codes(column)
    seen = running_counts(user.flat_block * (int(codes.max()) + 2) + codes + 1)
    seen[codes < 0] = 0
    stride = int(seen.max()) + 1
    mode = np.maximum.accumulate(user.flat_block * stride + seen) - user.flat_block * stride
    user_row = np.searchsorted(user.rows, pair.rows)
    hi, start = user.hi[user_row], user.start[user_row]
    largest = np.where(hi > start, mode[np.maximum(hi - 1, 0)], 0)
    return np.where(largest == 0, np.nan, (pair.hi - pair.start == largest).astype(np.float64))
