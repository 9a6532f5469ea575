"""The timeline rows of each value of one key tuple, each value known by an int id.

The history's rows of every value are one flat array in the groups' order (`visible`, then row)
with each id's offsets, not a numpy array per value (about 100 bytes of object each: at 1 M rows the
warm service holds 1,318 instead of 1,486 MiB), and a batch gathers the rows of many ids with numpy
(`history_of`). A value is hashed once per event and key tuple, when the event joins (`add`); the
online events of an id are a list, kept only for the ids that have some. Values first seen online
get their ids from a dictionary of their own: inserting them into the history's would now and then
resize it, a copy of every entry (10-14 ms at a million rows, which made batches 10 % slower).
"""
from __future__ import annotations

from itertools import chain

import numpy as np
import pandas as pd

NO_ROWS = np.zeros(0, dtype=np.int64)


class KeyRows:
    """History rows and online events of each value of one key tuple (no missing part), by value id."""

    def __init__(self, frame: pd.DataFrame, key: tuple[str, ...], visible: np.ndarray):
        indices = frame.groupby(list(key), sort=False, dropna=True).indices if len(frame) else {}
        self.ids: dict[tuple, int] = {(v if isinstance(v, tuple) else (v,)): i for i, v in enumerate(indices)}
        self.fresh: dict[tuple, int] = {}
        """Ids of the values first seen online, numbered on from the history's."""
        sizes = np.fromiter(map(len, indices.values()), dtype=np.int64, count=len(indices))
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        rows = np.concatenate(list(indices.values())).astype(np.int64) if indices else NO_ROWS
        self.flat = rows[np.lexsort((rows, visible[rows], np.repeat(np.arange(len(sizes)), sizes)))]
        self.online: dict[int, list[int]] = {}

    @property
    def history_values(self) -> int:
        """How many values the history holds (ids below it have history rows)."""
        return len(self.offsets) - 1

    def id_of(self, value: tuple) -> int:
        """The value's id (a value not seen before gets the next one)."""
        found = self.ids.get(value)
        return found if found is not None else self.fresh.setdefault(value, len(self.ids) + len(self.fresh))

    def add(self, value: tuple, index: int) -> int:
        """List online event `index` under `value`; returns the value's id."""
        return self.add_many([value], [index])[0]

    def add_many(self, values: list[tuple], indices: list[int]) -> list[int]:
        """`add` of many online events (their values and indices); returns their values' ids. `id_of` is written out
        in the loop: a method call per event and key tuple costs about 1.4 ms a batch of 1,000."""
        ids, fresh, online, out = self.ids, self.fresh, self.online, []
        for value, index in zip(values, indices):
            found = ids.get(value)
            if found is None:
                found = fresh.setdefault(value, len(ids) + len(fresh))
            online.setdefault(found, []).append(index)
            out.append(found)
        return out

    def remove_last(self, found: int) -> None:
        """Take back the latest online event listed under id `found` (its id stays)."""
        listed = self.online[found]
        listed.pop()
        if not listed:
            del self.online[found]

    def history(self, found: int) -> np.ndarray:
        """History rows of id `found`, in the groups' order."""
        if found >= self.history_values:
            return NO_ROWS
        return self.flat[self.offsets[found]:self.offsets[found + 1]]

    def online_of(self, found: int) -> list[int]:
        """Online events of id `found`, in arrival order."""
        return self.online.get(found, [])

    def history_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """History rows of many ids, end to end in the order of `ids`, and how many each has."""
        capped = np.minimum(ids, self.history_values)  # an id beyond the history: the empty range at the end
        starts = self.offsets[capped]
        sizes = self.offsets[np.minimum(capped + 1, self.history_values)] - starts
        ends = np.cumsum(sizes)
        total = int(ends[-1]) if len(ends) else 0
        return self.flat[np.arange(total) + np.repeat(starts - (ends - sizes), sizes)], sizes

    def online_of_many(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Online events of many ids, end to end in the order of `ids`, and how many each has."""
        lists = [self.online.get(i, []) for i in ids]
        sizes = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        return np.fromiter(chain.from_iterable(lists), dtype=np.int64, count=int(sizes.sum())), sizes
