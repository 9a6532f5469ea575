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

    Arrays hold `size` events and spare room after them; read them through `[:size]` slices.
    """

    def __init__(self, visible: np.ndarray, ts: np.ndarray, amount: np.ndarray, codes: dict[str, np.ndarray]):
        order = np.argsort(visible, kind="stable")
        self.visible_list = visible[order].astype(np.int64).tolist()
        self.size = len(order)
        capacity = max(INITIAL_CAPACITY, 2 * self.size)
        self.visible = _with_room(visible[order].astype(np.int64), capacity)
        self.ts = _with_room(ts[order].astype(np.int64), capacity)
        self.amount = _with_room(amount[order].astype(np.float64), capacity)
        self.codes = {c: _with_room(v[order].astype(np.int64), capacity) for c, v in codes.items()}
        self.sums, self.squares = np.zeros(capacity), np.zeros(capacity)
        self._carries = np.zeros((2, capacity))
        self.known = np.zeros(capacity, dtype=np.int64)
        self._prefix_from(0)

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

    def _columns(self) -> list[np.ndarray]:
        """The per-event arrays that move with an event."""
        return [self.visible, self.ts, self.amount, *self.codes.values()]

    def insert(self, visible: int, ts: int, amount: float, codes: dict[str, int]) -> int:
        """Add an event where the batch order puts it; returns its position."""
        position = bisect_right(self.visible_list, visible)
        self.visible_list.insert(position, visible)
        if self.size == len(self.ts):
            self._grow()
        end = self.size
        for array, value in zip(self._columns(), [visible, ts, amount, *(codes[c] for c in self.codes)]):
            array[position + 1:end + 1] = array[position:end]
            array[position] = value
        self.size += 1
        self._prefix_from(position)
        return position

    def remove(self, position: int) -> None:
        """Undo an `insert` (the event at `position` goes)."""
        del self.visible_list[position]
        end = self.size
        for array in self._columns():
            array[position:end - 1] = array[position + 1:end]
        self.size -= 1
        self._prefix_from(position)

    def _grow(self) -> None:
        """Double the room of every array."""
        capacity = 2 * len(self.ts)
        self.visible = _with_room(self.visible, capacity)
        self.ts, self.amount = _with_room(self.ts, capacity), _with_room(self.amount, capacity)
        self.codes = {c: _with_room(v, capacity) for c, v in self.codes.items()}
        self.sums, self.squares = _with_room(self.sums, capacity), _with_room(self.squares, capacity)
        self._carries = np.stack([_with_room(c, capacity) for c in self._carries])
        self.known = _with_room(self.known, capacity)

    def _prefix_from(self, start: int) -> None:
        """Recompute the prefix sums and known counts from `start` on (those before it are unchanged).

        Kahan summation step by step as pandas' grouped cumsum does it, in Python floats (IEEE doubles),
        over plain lists written back in one slice per array.
        """
        end = self.size
        if start >= end:
            return
        total, square_total, carry, square_carry, known = (
            (float(self.sums[start - 1]), float(self.squares[start - 1]), float(self._carries[0, start - 1]),
             float(self._carries[1, start - 1]), int(self.known[start - 1])) if start else (0.0, 0.0, 0.0, 0.0, 0))
        sums, squares, carries, square_carries, knowns = [], [], [], [], []
        for value in self.amount[start:end].tolist():
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
        self.sums[start:end], self.squares[start:end], self.known[start:end] = sums, squares, knowns
        self._carries[0, start:end], self._carries[1, start:end] = carries, square_carries


def _with_room(values: np.ndarray, capacity: int) -> np.ndarray:
    """`values` copied into the front of a zeroed array of `capacity` (at least its length)."""
    out = np.zeros(max(capacity, len(values)), dtype=values.dtype)
    out[: len(values)] = values
    return out
