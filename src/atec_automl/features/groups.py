"""The events of one entity value kept in the order the batch feature code sorts them, for one-event updates.

A `Group` holds the events sharing one key value (a user, a payee, a (user, device) pair), sorted
by (`visible_from`, arrival), exactly the order of that value's block in a `windows.KeyIndex`.
Beside each event's times, amount and codes of other columns it keeps the group's inclusive
prefix sums of the amounts (missing as 0) and of their squares, summed with Kahan compensation
the way `pandas` `groupby().cumsum()` (what `windows.segmented_cumsum` calls) sums them, so a
window sum read from it is bit-for-bit the batch one. An event is inserted where its
`visible_from` sorts (at the end, but for a time written to the hour followed by events of the
same hour written to the second) and the prefix sums after it are redone.
"""
from __future__ import annotations

from bisect import bisect_right

import numpy as np

MISSING = -1


def kahan_prefix(values: np.ndarray, start: int, sums: np.ndarray, compensation: np.ndarray) -> None:
    """Fill `sums[start:]` (and the running compensation) with the compensated inclusive cumsum of `values`."""
    total = float(sums[start - 1]) if start else 0.0
    carry = float(compensation[start - 1]) if start else 0.0
    for position in range(start, len(values)):
        corrected = float(values[position]) - carry
        running = total + corrected
        carry = running - total - corrected
        total = running
        sums[position], compensation[position] = total, carry


class Group:
    """One key value's events in batch order, with compensated prefix sums of amounts and squares."""

    def __init__(self, visible: np.ndarray, ts: np.ndarray, amount: np.ndarray, codes: dict[str, np.ndarray]):
        order = np.argsort(visible, kind="stable")
        self.visible = visible[order].astype(np.int64)
        self.visible_list = self.visible.tolist()
        self.ts = ts[order].astype(np.int64)
        self.amount = amount[order].astype(np.float64)
        self.codes = {c: v[order].astype(np.int64) for c, v in codes.items()}
        self._prefix_from(0)

    @property
    def size(self) -> int:
        """Number of events."""
        return len(self.visible)

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
        self.visible = np.insert(self.visible, position, visible)
        self.ts = np.insert(self.ts, position, ts)
        self.amount = np.insert(self.amount, position, amount)
        self.codes = {c: np.insert(v, position, codes[c]) for c, v in self.codes.items()}
        self._prefix_from(position)
        return position

    def remove(self, position: int) -> None:
        """Undo an `insert` (the event at `position` goes)."""
        del self.visible_list[position]
        self.visible = np.delete(self.visible, position)
        self.ts = np.delete(self.ts, position)
        self.amount = np.delete(self.amount, position)
        self.codes = {c: np.delete(v, position) for c, v in self.codes.items()}
        self._prefix_from(position)

    def _prefix_from(self, start: int) -> None:
        """Recompute the prefix sums from `start` on (those before it are unchanged)."""
        known = np.isfinite(self.amount)
        filled = np.where(known, self.amount, 0.0)
        self.known = np.cumsum(known)
        size = len(filled)
        self.sums, self._sums_carry, self.squares, self._squares_carry = (
            _resized(getattr(self, name, None), size) for name in ("sums", "_sums_carry", "squares", "_squares_carry"))
        kahan_prefix(filled, start, self.sums, self._sums_carry)
        kahan_prefix(filled * filled, start, self.squares, self._squares_carry)


def _resized(values: np.ndarray | None, size: int) -> np.ndarray:
    """The first `size` values of `values` (positions kept), zero-extended: a new float64 array."""
    out = np.zeros(size, dtype=np.float64)
    if values is not None:
        keep = min(size, len(values))
        out[:keep] = values[:keep]
    return out
