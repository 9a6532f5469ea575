"""Assembling the feature table column by column without an N x F copy at the end."""
from __future__ import annotations

import numpy as np
import pandas as pd

BLOCK_COLUMNS = 32


class TableSink:
    """Collects numeric columns (float32, infinities as NaN) and categorical codes (int32).

    Numeric columns are written into float32 blocks of `BLOCK_COLUMNS` rows as they arrive, so
    the peak memory is the table plus one block, not twice the table.
    """

    def __init__(self, n_rows: int):
        self.n_rows = n_rows
        self._blocks: list[pd.DataFrame] = []
        self._block: np.ndarray | None = None
        self._names: list[str] = []
        self._codes: dict[str, np.ndarray] = {}

    def add(self, name: str, values: np.ndarray) -> None:
        """A numeric column, written straight into the current block; infinity becomes NaN."""
        if len(values) != self.n_rows:
            raise ValueError(f"feature {name!r} has {len(values)} rows, expected {self.n_rows}")
        row = self._next_row()
        row[:] = values
        self._close_row(name, row)

    def add_scattered(self, name: str, rows: np.ndarray, values: np.ndarray) -> None:
        """A numeric column given at some rows only (`values[i]` at row `rows[i]`), NaN elsewhere.

        Written straight into the block: no N-row intermediate per column.
        """
        if len(values) != len(rows):
            raise ValueError(f"feature {name!r} has {len(values)} values for {len(rows)} rows")
        row = self._next_row()
        row.fill(np.nan)
        row[rows] = values
        self._close_row(name, row)

    def _next_row(self) -> np.ndarray:
        """The block row the next column goes to."""
        if self._block is None:
            self._block = np.empty((BLOCK_COLUMNS, self.n_rows), dtype=np.float32)
        return self._block[len(self._names)]

    def _close_row(self, name: str, row: np.ndarray) -> None:
        """Infinity to NaN, name the column, close the block when full."""
        np.copyto(row, np.nan, where=np.isinf(row))
        self._names.append(name)
        if len(self._names) == BLOCK_COLUMNS:
            self._flush()

    def add_all(self, columns: dict[str, np.ndarray]) -> None:
        """Several numeric columns."""
        for name, values in columns.items():
            self.add(name, values)

    def add_codes(self, name: str, codes: np.ndarray) -> None:
        """A categorical column of int32 codes (-1 missing)."""
        self._codes[name] = np.asarray(codes, dtype=np.int32)

    def _flush(self) -> None:
        """Close the current block as one float32 frame (no copy)."""
        if self._names:
            block = self._block[: len(self._names)]
            self._blocks.append(pd.DataFrame(block.T, columns=self._names, copy=False))
            self._block, self._names = None, []

    def frame(self) -> pd.DataFrame:
        """The table: numeric columns in the order added, then the categorical codes."""
        self._flush()
        parts = self._blocks + ([pd.DataFrame(self._codes)] if self._codes else [])
        if not parts:
            return pd.DataFrame(index=pd.RangeIndex(self.n_rows))
        return pd.concat(parts, axis=1)

    @property
    def categorical(self) -> list[str]:
        """Names of the categorical columns."""
        return list(self._codes)
