"""The events the serving state took in after its history: growable columns, in arrival order.

Each event is stored once (its `visible_from`, `ts`, amount and the codes of the columns the groups
keep); `IncrementalFeatures` lists, per key value, the indices of that value's events here, so a
batch appends its events with a few numpy writes and the per-key groups catch up when read.
"""
from __future__ import annotations

import numpy as np

INITIAL_CAPACITY = 1024


class OnlineEvents:
    """Columns `visible`, `ts`, `amount` and one per code column, read through `column(name)` (`[:size]`)."""

    def __init__(self, code_columns: list[str]):
        self.code_names = list(code_columns)
        self.size = 0
        self._ints = np.zeros((2 + len(self.code_names), INITIAL_CAPACITY), dtype=np.int64)
        self._amount = np.zeros(INITIAL_CAPACITY)
        self._rows = {"visible": 0, "ts": 1} | {c: row for row, c in enumerate(self.code_names, start=2)}

    def append(self, visible: np.ndarray | list[int], ts: np.ndarray | list[int], amount: np.ndarray | list[float],
               codes: dict[str, list[int]]) -> int:
        """Append events (a code for every code column); returns the index of the first."""
        first, count = self.size, len(visible)
        self._make_room(count)
        self._ints[0, first:first + count] = visible
        self._ints[1, first:first + count] = ts
        for column in self.code_names:
            self._ints[self._rows[column], first:first + count] = codes[column]
        self._amount[first:first + count] = amount
        self.size += count
        return first

    def append_one(self, visible: int, ts: int, amount: float, codes: list[int]) -> int:
        """Append one event (its codes in the order of `code_names`) in two writes; returns its index."""
        index = self.size
        self._make_room(1)
        self._ints[:, index] = [visible, ts, *codes]
        self._amount[index] = amount
        self.size += 1
        return index

    def _make_room(self, count: int) -> None:
        """Double the columns' capacity until `count` more events fit."""
        while self.size + count > len(self._amount):
            self._ints = np.concatenate([self._ints, np.zeros_like(self._ints)], axis=1)
            self._amount = np.concatenate([self._amount, np.zeros_like(self._amount)])

    def truncate(self, size: int) -> None:
        """Drop the events from index `size` on (an undo of the latest appends)."""
        self.size = min(self.size, size)

    def row(self, name: str) -> int:
        """The row of `visible` (0), `ts` (1) or a code column in the integer columns (`ints`)."""
        return self._rows[name]

    def ints(self, rows: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Integer columns `rows` (a column vector of `row`s) of the stored events at `indices`, one row each."""
        return self._ints[rows, indices]

    def column(self, name: str) -> np.ndarray:
        """The stored events' `visible`, `ts`, `amount` or codes of a code column."""
        return self._amount[:self.size] if name == "amount" else self._ints[self._rows[name], :self.size]
