"""Assembling the feature table column by column without an N x F copy at the end."""
from __future__ import annotations

import numpy as np
import pandas as pd

BLOCK_COLUMNS = 32


class TableSink:
    """Collects numeric columns (float32, infinities as NaN) and categorical codes (int32).

    Numeric columns are stacked into blocks of `BLOCK_COLUMNS` as they arrive, so the peak
    memory is the table plus one block, not twice the table.
    """

    def __init__(self, n_rows: int):
        self.n_rows = n_rows
        self._blocks: list[pd.DataFrame] = []
        self._pending: dict[str, np.ndarray] = {}
        self._codes: dict[str, np.ndarray] = {}

    def add(self, name: str, values: np.ndarray) -> None:
        """A numeric column; a ratio against a zero (infinity) becomes NaN."""
        column = np.asarray(values, dtype=np.float32)
        if len(column) != self.n_rows:
            raise ValueError(f"feature {name!r} has {len(column)} rows, expected {self.n_rows}")
        if column is values:
            column = column.copy()
        column[np.isinf(column)] = np.nan
        self._pending[name] = column
        if len(self._pending) == BLOCK_COLUMNS:
            self._flush()

    def add_all(self, columns: dict[str, np.ndarray]) -> None:
        """Several numeric columns."""
        for name, values in columns.items():
            self.add(name, values)

    def add_codes(self, name: str, codes: np.ndarray) -> None:
        """A categorical column of int32 codes (-1 missing)."""
        self._codes[name] = np.asarray(codes, dtype=np.int32)

    def _flush(self) -> None:
        """Stack the pending columns into one float32 block."""
        if self._pending:
            block = np.empty((len(self._pending), self.n_rows), dtype=np.float32)
            for row, values in enumerate(self._pending.values()):
                block[row] = values
            self._blocks.append(pd.DataFrame(block.T, columns=list(self._pending), copy=False))
            self._pending = {}

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
