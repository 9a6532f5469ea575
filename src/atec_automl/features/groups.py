"""The events of one entity value kept in the order the batch feature code sorts them, for one-event updates.

A `Group` holds the events sharing one key value (a user, a payee, a (user, device) pair), sorted
by (`visible_from`, arrival), exactly the order of that value's block in a `windows.KeyIndex`.
Beside each event's times (`visible_from` also as a list, for `bisect`), amount and codes of other columns it keeps the group's inclusive
prefix sums of the amounts (missing as 0) and of their squares, summed with Kahan compensation
the way `pandas` `groupby().cumsum()` (what `windows.segmented_cumsum` calls) sums them, so a
window sum read from it is bit-for-bit the batch one. An event is inserted where its
`visible_from` sorts (at the end, but for a time written to the hour followed by events of the
same hour written to the second) and the prefix sums from it on are redone: one step when it
goes at the end. Arrays keep spare capacity, so an append writes in place.
"""
from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

MISSING = -1
INITIAL_CAPACITY = 8


class Group:
    """One key value's events in batch order, with compensated prefix sums of amounts and squares.

    Per-event values live in two arrays with spare columns after the `size` events (integers: visible
    from, ts, known amounts so far, the codes; floats: amount, the two prefix sums and their Kahan
    carries), so an insertion moves two blocks; `visible`, `ts`, `known`, `codes`, `amount`, `sums` and
    `squares` are row views: read them through `[:size]` slices.
    """

    def __init__(self, visible: np.ndarray, ts: np.ndarray, amount: np.ndarray, codes: dict[str, np.ndarray]):
        order = np.argsort(visible, kind="stable") if len(visible) > 1 else np.arange(len(visible))
        self.visible_list = visible[order].tolist()
        self.size = len(order)
        self.code_names = list(codes)
        capacity = max(INITIAL_CAPACITY, 2 * self.size)
        self._ints = np.zeros((3 + len(codes), capacity), dtype=np.int64)
        self._floats = np.zeros((5, capacity))
        self._ints[0, :self.size] = visible[order]
        self._ints[1, :self.size] = ts[order]
        for row, values in enumerate(codes.values(), start=3):
            self._ints[row, :self.size] = values[order]
        self._floats[0, :self.size] = amount[order]
        self._bind()
        self._prefix_from(0)

    def _bind(self) -> None:
        """Name the rows of the value arrays."""
        self.visible, self.ts, self.known = self._ints[0], self._ints[1], self._ints[2]
        self.codes = {c: self._ints[row] for row, c in enumerate(self.code_names, start=3)}
        self.amount, self.sums, self.squares = self._floats[0], self._floats[1], self._floats[2]

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

    def insert(self, visible: int, ts: int, amount: float, codes: dict[str, int]) -> int:
        """Add an event where the batch order puts it; returns its position."""
        position = bisect_right(self.visible_list, visible)
        self.visible_list.insert(position, visible)
        end = self.size
        if end == self._ints.shape[1]:
            self._grow()
        if position < end:
            self._ints[:, position + 1:end + 1] = self._ints[:, position:end]
            self._floats[0, position + 1:end + 1] = self._floats[0, position:end]
        self._ints[:, position] = [visible, ts, 0, *(codes[c] for c in self.code_names)]
        self._floats[0, position] = amount
        self.size += 1
        self._prefix_from(position)
        return position

    def remove(self, position: int) -> None:
        """Undo an `insert` (the event at `position` goes)."""
        del self.visible_list[position]
        end = self.size
        self._ints[:, position:end - 1] = self._ints[:, position + 1:end]
        self._floats[0, position:end - 1] = self._floats[0, position + 1:end]
        self.size -= 1
        self._prefix_from(position)

    def _grow(self) -> None:
        """Double the room of the value arrays."""
        capacity = 2 * self._ints.shape[1]
        self._ints = _with_room(self._ints, capacity)
        self._floats = _with_room(self._floats, capacity)
        self._bind()

    def _prefix_from(self, start: int) -> None:
        """Recompute the prefix sums and known counts from `start` on (those before it are unchanged).

        Kahan summation step by step as pandas' grouped cumsum does it, in Python floats (IEEE doubles),
        over plain lists written back in one slice per array.
        """
        end = self.size
        if start >= end:
            return
        floats = self._floats
        total, square_total, carry, square_carry = floats[1:, start - 1].tolist() if start else (0.0, 0.0, 0.0, 0.0)
        known = int(self._ints[2, start - 1]) if start else 0
        sums, squares, carries, square_carries, knowns = [], [], [], [], []
        for value in floats[0, start:end].tolist():
            finite = math.isfinite(value)
            filled = value if finite else 0.0
            corrected = filled - carry
            running = total + corrected
            carry = running - total - corrected
            total = running
            corrected = filled * filled - square_carry
            running = square_total + corrected
            square_carry = running - square_total - corrected
            square_total = running
            known += finite
            sums.append(total)
            squares.append(square_total)
            carries.append(carry)
            square_carries.append(square_carry)
            knowns.append(known)
        floats[1:, start:end] = [sums, squares, carries, square_carries]
        self._ints[2, start:end] = knowns


def _with_room(values: np.ndarray, capacity: int) -> np.ndarray:
    """A 2-D array's columns copied into the front of a zeroed array of `capacity` columns."""
    out = np.zeros((values.shape[0], capacity), dtype=values.dtype)
    out[:, :values.shape[1]] = values
    return out
