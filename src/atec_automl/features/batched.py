"""The history-dependent features of a batch of new events at once, read after the batch joined the timeline.

`IncrementalFeatures.features` reads one event before it joins its groups. For a batch this
module adds every event first (`IncrementalFeatures.add_many`: stored once, listed under each of
its key values; no per-value group is touched) and then reads all of them together. That gives
each event the same past: its past is the events of its key value with `visible_from <= t`, and
neither the event itself nor a later event of the batch is among them (`visible_from = ts +
resolution > t` for every event at or after it), while the earlier events of the batch that are
visible at `t` are, in the order one-by-one insertion gives them. Ties in time do not see each
other, as in the batch computation.

For each key tuple the past of every value the batch touches (its history rows, then its online
events) is laid end to end in the groups' order (`Blocks`): an event's past and windows are binary
searches of (block, time) composites, sums come from pandas' compensated grouped cumsum (what the
batch code and `groups.Group` compute), maxima and distinct counts of windows from the batch kernels
of `windows.py` (exact) and of all history from running maxima and running counts of first
occurrences (as `semifinal.py` reads them), the usual flags from running counts of each value: one
numpy pass per key tuple instead of one per event.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from atec_automl.features.incremental import IncrementalFeatures, Key, is_missing
from atec_automl.features.spec import ALL_HISTORY, EntitySpec, window_seconds
from atec_automl.features.windows import (distinct_codes_in_ranges, first_occurrences, range_max, running_counts,
                                          segmented_cummax, segmented_cumsum)


@dataclass
class Blocks:
    """The past of one key tuple's values touched by a batch, end to end, and where each batch event reads it.

    Flat arrays cover every touched value's events (history, then online ones, in the groups' order:
    `visible`, history first, then arrival); per-event arrays cover the batch events whose key is
    known (`rows`, their indices in the batch). `block_start`: each block's first flat position; `pick(name)`
    gives a stored column in flat order."""

    rows: np.ndarray
    block: np.ndarray
    block_start: np.ndarray
    hi: np.ndarray
    t: np.ndarray
    flat_block: np.ndarray
    composite: np.ndarray
    base: int
    span: int
    pick: Callable[[str], np.ndarray]
    cache: dict[str, np.ndarray] = field(default_factory=dict)

    def lo(self, seconds: int | None) -> np.ndarray:
        """First flat position of each event's window of `seconds` (its block's start for all history)."""
        if seconds is None:
            return self.start
        return np.searchsorted(self.composite, self.block * self.span + (self.t - seconds - self.base), side="right")

    def flat(self, name: str) -> np.ndarray:
        """A per-event array of the blocks: `ts`, `amount`, the codes of a code column, or the inclusive prefix
        `sums` and `squares` of the amounts (missing as 0; pandas' compensated grouped cumsum, as `groups.Group`
        and the batch code sum them) and the `known` amounts so far."""
        if name not in self.cache:
            if name in ("sums", "squares", "known"):
                amount = self.flat("amount")
                filled = np.where(np.isfinite(amount), amount, 0.0)
                self.cache["sums"], self.cache["squares"] = segmented_cumsum(
                    np.column_stack([filled, filled * filled]), self.flat_block).T
                running = np.cumsum(np.isfinite(amount))
                self.cache["known"] = running - np.r_[0, running][self.block_start][self.flat_block]
            else:
                self.cache[name] = self.pick(name)
        return self.cache[name]

    @cached_property
    def start(self) -> np.ndarray:
        """Flat position where each event's block starts."""
        return self.block_start[self.block]

    def before(self, values: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Inclusive prefix `values` at `position - 1`; 0 where `position` is its block's start."""
        return np.where(position > self.start, values[np.maximum(position - 1, 0)], 0)


def gather(state: IncrementalFeatures, key: Key, rows: list[int], ids: list[int], ts: np.ndarray,
           longest: int) -> Blocks | None:
    """The blocks of one key tuple for the batch events `rows` (with their value ids in `state.rows[key]`), from the
    history rows and the online events listed under each value; None when there are none. `longest`: the longest
    window, in seconds."""
    if not rows:
        return None
    values, block_array = np.unique(np.asarray(ids, dtype=np.int64), return_inverse=True)
    history_rows, history_sizes = state.rows[key].history_of(values)
    online_rows, online_sizes = state.rows[key].online_of_many(values.tolist())
    blocks = np.arange(len(values))
    unsorted_block = np.concatenate([np.repeat(blocks, history_sizes), np.repeat(blocks, online_sizes)])

    def pick_unsorted(name: str) -> np.ndarray:
        return np.concatenate([state.history_column(name)[history_rows], state.online.column(name)[online_rows]])

    unsorted_visible = pick_unsorted("visible")
    rows_array = np.asarray(rows, dtype=np.int64)
    t = ts[rows_array]
    base = int(min(unsorted_visible.min(), t.min() - longest))
    span = int(max(unsorted_visible.max(), t.max())) - base + 1
    unsorted_composite = unsorted_block * span + (unsorted_visible - base)
    order = np.argsort(unsorted_composite, kind="stable")  # history first, then arrival, at equal times
    composite, flat_block = unsorted_composite[order], unsorted_block[order]
    starts = np.concatenate([[0], np.cumsum(history_sizes + online_sizes)[:-1]])
    hi = np.searchsorted(composite, block_array * span + (t - base), side="right")
    return Blocks(rows_array, block_array, starts, hi, t, flat_block, composite, base, span,
                  lambda name: pick_unsorted(name)[order])


def batch_features(state: IncrementalFeatures, events: list[dict], ts: np.ndarray,
                   added: dict[Key, tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
    """The history-dependent features of the batch's events, once `IncrementalFeatures.add_many` added them to `state`
    (`added`: the rows and value ids it returned), NaN where a key part is missing."""
    n = len(events)
    longest = max([s for s in (window_seconds(w) for e in state.entities.values() for w in _windows(e)) if s] + [0])
    blocks = {k: gather(state, k, *added[k], ts, longest) for k in state.keys}
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
        counts = distinct_counts(found, other, {w: lo[w] for w in other_windows})
        out.update({f"{name}_nuniq_{other}_{w}": counts[w] for w in other_windows})
    return out


def distinct_counts(found: Blocks, column: str, lows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Distinct known codes of `column` in each window (`lows`: first flat positions), as `semifinal.distinct_features`
    counts them: the finite windows by `distinct_codes_in_ranges` (over the positions they cover), all history by a
    running count of each block's first occurrences. The batch code reads those from the `prev` its windows need over
    every position; here the windows cover a few positions of long pasts, so one hash pass finds them instead."""
    codes = found.flat(column)
    block_codes = np.where(codes >= 0, found.flat_block * (int(codes.max()) + 1) + codes, -1)
    finite = [w for w in lows if w != ALL_HISTORY]
    counts = distinct_codes_in_ranges(block_codes, [(lows[w], found.hi) for w in finite]) if finite else []
    out = {w: c.astype(np.float64) for w, c in zip(finite, counts)}
    if ALL_HISTORY in lows:
        firsts = np.concatenate([[0], np.cumsum(first_occurrences(block_codes))])
        out[ALL_HISTORY] = (firsts[found.hi] - firsts[found.start]).astype(np.float64)
    return out


def amount_columns(found: Blocks, name: str, entity: EntitySpec, value: np.ndarray, lows: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Sum, mean, max, std of the past amounts per window and the amount against them (`incremental.amount_values`)."""
    sums, squares, known = found.flat("sums"), found.flat("squares"), found.flat("known")
    sums_hi, squares_hi, known_hi = (found.before(a, found.hi) for a in (sums, squares, known))
    wanted = set(entity.stats)
    maxima = window_maxima(found, dict(zip(entity.windows, lows))) if {"amt_max", "amt_vs_max"} & wanted else None
    out: dict[str, np.ndarray] = {}
    for w, lo in zip(entity.windows, lows):
        n = (known_hi - found.before(known, lo)).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            total = sums_hi - found.before(sums, lo)
            mean = np.where(n > 0, total / n, np.nan)
            variance = np.maximum(squares_hi - found.before(squares, lo) - total * mean, 0.0) / (n - 1)
            largest = maxima[w] if maxima is not None else np.full(len(n), np.nan)
            stats = {"amt_sum": np.where(n > 0, total, np.nan), "amt_mean": mean,
                     "amt_std": np.where(n > 1, np.sqrt(variance), np.nan), "amt_vs_mean": value / mean,
                     "amt_max": largest, "amt_vs_max": value / largest}
        out.update({f"{name}_{s}_{w}": stats[s] for s in entity.stats if s in stats})
    return out


def window_maxima(found: Blocks, lows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Largest known past amount per window (NaN for none), as `semifinal.window_maxima` finds it: range maxima of the
    finite windows, a running maximum of each block for all history."""
    amount = found.flat("amount")
    finite = [w for w in lows if w != ALL_HISTORY]
    out = dict(zip(finite, range_max(amount, [(lows[w], found.hi) for w in finite])))
    if ALL_HISTORY in lows:
        running = segmented_cummax(np.where(np.isnan(amount), -np.inf, amount), found.flat_block)
        best = np.where(found.hi > found.start, running[np.maximum(found.hi - 1, 0)], -np.inf)
        out[ALL_HISTORY] = np.where(best > -np.inf, best, np.nan)
    return out


def since_previous(found: Blocks) -> np.ndarray:
    """Seconds since the latest `ts` among each event's past events (NaN for none)."""
    ts = found.flat("ts")
    low = int(ts.min())
    stride = int(ts.max()) - low + 1
    running = np.maximum.accumulate(found.flat_block * stride + (ts - low)) - found.flat_block * stride + low
    latest = running[np.maximum(found.hi - 1, 0)]
    return np.where(found.hi > found.start, (found.t - latest).astype(np.float64), np.nan)


def usual_flags(user: Blocks, column: str, pair: Blocks) -> np.ndarray:
    """`incremental.usual_flag` of the events of `pair` (each has a user block, the user being required for it):
    1.0 when the event's (user, value) past count equals the largest past count of any of the user's values."""
    codes = user.flat(column)
    seen = running_counts(user.flat_block * (int(codes.max()) + 2) + codes + 1)
    seen[codes < 0] = 0
    stride = int(seen.max()) + 1
    mode = np.maximum.accumulate(user.flat_block * stride + seen) - user.flat_block * stride
    user_row = np.searchsorted(user.rows, pair.rows)
    hi, start = user.hi[user_row], user.start[user_row]
    largest = np.where(hi > start, mode[np.maximum(hi - 1, 0)], 0)
    return np.where(largest == 0, np.nan, (pair.hi - pair.start == largest).astype(np.float64))
