"""The events of one entity value kept in the order the batch feature code sorts them, for one-event updates.

A `Group` holds the events sharing one key value (a user, a payee, a (user, device) pair), sorted by
(`visible_from`, arrival), exactly the order of that value's block in a `windows.KeyIndex`. Beside
each event's times (`visible_from` also as a list, for `bisect`), amount and codes of other columns
it keeps the group's inclusive prefix sums of the amounts (missing as 0) and of their squares,
summed with Kahan compensation the way `pandas` `groupby().cumsum()` (what
`windows.segmented_cumsum` calls) sums them, so a window sum read from it is bit-for-bit the batch
one. New events go where their `visible_from` sorts (at the end, but for a time written to the hour
followed by events of the same hour written to the second) and the prefix sums from the first of
them on are redone: one step per event at the end. Arrays keep spare capacity, so an append writes
in place. A group whose key reads no amount statistic (counts, first-seen and usual flags only) is
built with `summed=False` and keeps no prefix sums: its `sums`, `squares` and `known` rows stay
zero. For each code column a group also answers, on demand, where each event's code occurred before
and the largest count of one code so far (`code_stats`): a distinct count over a window and the
usual flag then read one slice instead of sorting the window's codes. Those statistics follow one-event
appends through each code's last position and count (two dicts per column), so an append costs the
same at a hundred past events and at a hundred thousand.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from itertools import accumulate

import numpy as np

from atec_automl.features.windows import previous_same, running_counts

MISSING = -1
INITIAL_CAPACITY = 8
FEW_NEW = 8
SCAN_UP_TO = 64
"""Events a Python step-through of the code statistics handles faster than the vectorised pass and the tallies
(measured: 64 events of 3 code columns, 100 us either way)."""


class Group:
    """One key value's events in batch order, with compensated prefix sums of amounts and squares.

    Per-event values live in two arrays with spare columns after the `size` events (integers: visible
    from, ts, known amounts so far, the codes; floats: amount, the two prefix sums and their Kahan
    carries), so new events are written in place; `visible`, `ts`, `known`, `codes`, `amount`, `sums` and
    `squares` are row views: read them through `[:size]` slices. `in_order`: the events come sorted by
    `visible` already (stable), so no sort is needed.
    """

    def __init__(self, visible: np.ndarray, ts: np.ndarray, amount: np.ndarray, codes: dict[str, np.ndarray],
                 summed: bool = True, in_order: bool = False):
        order = np.argsort(visible, kind="stable") if len(visible) > 1 and not in_order else slice(None)
        self.visible_list = visible[order].tolist()
        self.size = len(visible)
        self.summed = summed
        self.code_names = list(codes)
        capacity = max(INITIAL_CAPACITY, 2 * self.size)
        self._ints = np.zeros((3 + len(codes), capacity), dtype=np.int64)
        self._floats = np.zeros((5, capacity))
        self._ints[0, :self.size] = visible[order]
        self._ints[1, :self.size] = ts[order]
        for row, values in enumerate(codes.values(), start=3):
            self._ints[row, :self.size] = values[order]
        self._floats[0, :self.size] = amount[order]
        self._stats = np.zeros((2 * len(codes), capacity), dtype=np.int64)
        self._stats_valid = 0
        self._tallies: list[tuple[dict[int, int], dict[int, int]]] | None = None
        self._bind()
        self._prefix_from(0)

    def _bind(self) -> None:
        """Name the rows of the value arrays."""
        self.visible, self.ts, self.known = self._ints[0], self._ints[1], self._ints[2]
        self.codes = {c: self._ints[row] for row, c in enumerate(self.code_names, start=3)}
        self.amount, self.sums, self.squares = self._floats[0], self._floats[1], self._floats[2]

    def code_stats(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(`previous`, `mode`) of a code column, read through `[:size]`: `previous[i]`, the position of the
        previous event with the same known code (-1 for none; `i` itself for a missing code), so the distinct
        known codes of `[lo, hi)` are the positions there with `previous < lo`; `mode[i]`, the largest number
        of events sharing one known code among the first `i + 1`. Brought up to date here, from the first
        position new events changed."""
        self._update_stats()
        row = 2 * self.code_names.index(column)
        return self._stats[row], self._stats[row + 1]

    def _update_stats(self) -> None:
        """Bring the code statistics up to date from the first position not up to date, one step per event from
        each code's last position and count so far (`_tallies`, one dict lookup per step) when there are few
        events to step through; else the whole group at once, vectorised. A group of at most `SCAN_UP_TO`
        events is stepped through from its start when it has no tallies: cheaper than the vectorised pass
        and the tallies after it, which the next append would need."""
        start, end = self._stats_valid, self.size
        if start >= end:
            return
        if self._tallies is None and end <= SCAN_UP_TO:
            start, self._tallies = 0, [({}, {}) for _ in self.code_names]
        if end - start > (FEW_NEW if self._tallies is None else SCAN_UP_TO):
            self._recompute_stats(end)
        else:
            if self._tallies is None:
                self._tallies = [self._tally(number, start) for number in range(len(self.code_names))]
            for number, (last, count) in enumerate(self._tallies):
                self._scan(number, start, end, last, count)
        self._stats_valid = end

    def _recompute_stats(self, end: int) -> None:
        """The code statistics of the first `end` events, vectorised; the tallies are built again when needed."""
        for number in range(len(self.code_names)):
            codes = self._ints[3 + number, :end]
            seen = running_counts(codes)
            missing = np.flatnonzero(codes < 0)
            previous = previous_same(codes)
            previous[missing], seen[missing] = missing, 0
            self._stats[2 * number, :end] = previous
            self._stats[2 * number + 1, :end] = np.maximum.accumulate(seen)
        self._tallies = None

    def _tally(self, number: int, end: int) -> tuple[dict[int, int], dict[int, int]]:
        """(last position, count) of each known code of code column `number` among the first `end` events."""
        codes = self._ints[3 + number, :end]
        known = np.flatnonzero(codes >= 0)
        values, first_from_end, counts = np.unique(codes[known][::-1], return_index=True, return_counts=True)
        last = known[len(known) - 1 - first_from_end]
        return dict(zip(values.tolist(), last.tolist())), dict(zip(values.tolist(), counts.tolist()))

    def _scan(self, number: int, start: int, end: int, last: dict[int, int], count: dict[int, int]) -> None:
        """The code statistics of events `start` to `end` of code column `number`, one step each, from the
        tallies of the events before `start` (which they then include)."""
        previous, mode = self._stats[2 * number], self._stats[2 * number + 1]
        best = int(mode[start - 1]) if start else 0
        for position, code in enumerate(self._ints[3 + number, start:end].tolist(), start):
            if code < 0:
                previous[position], mode[position] = position, best
                continue
            previous[position] = last.get(code, -1)
            last[code] = position
            count[code] = count.get(code, 0) + 1
            best = max(best, count[code])
            mode[position] = best

    def past_end(self, t: int) -> int:
        """First position whose event is not in the past of an event at `t` (`visible_from > t`)."""
        return bisect_right(self.visible_list, t)

    def window_start(self, t: int, seconds: int | None) -> int:
        """First position in the window of `seconds` before `t` (`visible_from > t - seconds`); 0 for all history."""
        return 0 if seconds is None else bisect_right(self.visible_list, t - seconds)

    def sum_before(self, position: int) -> tuple[float, float, int]:
        """(sum of amounts, sum of squares, known amounts) of the events before `position`."""
        if position == 0:
            return 0.0, 0.0, 0
        return float(self.sums[position - 1]), float(self.squares[position - 1]), int(self.known[position - 1])

    def add(self, visible: list[int], ts: list[int], amount: list[float], codes: dict[str, list[int]]) -> None:
        """Add events (in arrival order) where the batch order puts them: after every event with the same or an
        earlier `visible_from`, so the group stays what a stable sort of all its events by `visible_from` gives.
        Written in place when they go at the end in order (the usual case), else merged in; the prefix sums
        are redone from the first position that changed."""
        end, count = self.size, len(visible)
        while end + count > self._ints.shape[1]:
            self._grow()
        self._ints[0, end:end + count] = visible
        self._ints[1, end:end + count] = ts
        self._ints[2, end:end + count] = 0
        for row, column in enumerate(self.code_names, start=3):
            self._ints[row, end:end + count] = codes[column]
        self._floats[0, end:end + count] = amount
        self.size += count
        in_order = all(a <= b for a, b in zip(visible, visible[1:])) and (not end or visible[0] >= self.visible_list[-1])
        if in_order:
            self.visible_list.extend(visible)
            self._changed_from(end)
            return
        first = bisect_right(self.visible_list, min(visible))
        order = first + np.argsort(self._ints[0, first:self.size], kind="stable")
        self._ints[:, first:self.size] = self._ints[:, order]
        self._floats[0, first:self.size] = self._floats[0, order]
        self.visible_list = self._ints[0, :self.size].tolist()
        self._changed_from(first)

    def _changed_from(self, position: int) -> None:
        """The events from `position` on are new or moved: redo the prefix sums, mark the code statistics out of date."""
        self._prefix_from(position)
        if position < self._stats_valid:
            self._stats_valid, self._tallies = position, None

    def _grow(self) -> None:
        """Double the room of the value arrays."""
        capacity = 2 * self._ints.shape[1]
        self._ints = _with_room(self._ints, capacity)
        self._floats = _with_room(self._floats, capacity)
        self._stats = _with_room(self._stats, capacity)
        self._bind()

    def _prefix_from(self, start: int) -> None:
        """Recompute the prefix sums and known counts from `start` on (those before it are unchanged); nothing
        for a group that keeps none."""
        end = self.size
        if start >= end or not self.summed:
            return
        floats = self._floats
        running = floats[1:, start - 1].tolist() if start else [0.0, 0.0, 0.0, 0.0]
        known = int(self._ints[2, start - 1]) if start else 0
        if start == end - 1:  # one event, the usual append: without the list passes below it costs half
            amount = floats[0, start].item()
            finite = math.isfinite(amount)
            floats[1:, start] = [row[0] for row in kahan_prefix([amount if finite else 0.0], running)]
            self._ints[2, start] = known + finite
            return
        amounts = floats[0, start:end].tolist()
        finite = [math.isfinite(amount) for amount in amounts]
        floats[1:, start:end] = kahan_prefix([amount if keep else 0.0 for amount, keep in zip(amounts, finite)], running)
        self._ints[2, start:end] = list(accumulate(finite, initial=known))[1:]


def kahan_prefix(filled: list[float], running: list[float]) -> list[list[float]]:
    """Rows (total, square total, carry, square carry) after each amount (missing already 0) and its square,
    continuing from `running` = [total, square total, carry, square carry], with Kahan compensation step by
    step as pandas' grouped cumsum does it, in Python floats (IEEE doubles). One inline loop: a call per step
    cost three times as much, which the first read of a busy key value paid for each of its past events."""
    total, square_total, carry, square_carry = running
    totals, square_totals, carries, square_carries = [], [], [], []
    for value in filled:
        corrected = value - carry
        new_total = total + corrected
        carry = new_total - total - corrected
        total = new_total
        corrected = value * value - square_carry
        new_square_total = square_total + corrected
        square_carry = new_square_total - square_total - corrected
        square_total = new_square_total
        totals.append(total)
        square_totals.append(square_total)
        carries.append(carry)
        square_carries.append(square_carry)
    return [totals, square_totals, carries, square_carries]


def _with_room(values: np.ndarray, capacity: int) -> np.ndarray:
    """A 2-D array's columns copied into the front of a zeroed array of `capacity` columns."""
    out = np.zeros((values.shape[0], capacity), dtype=values.dtype)
    out[:, :values.shape[1]] = values
    return out
