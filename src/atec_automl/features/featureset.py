"""What feature building hands to the models: one row per timeline event, in timeline order."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd


@dataclass
class FeatureSet:
    """Features of every event of a `Dataset`, row i describing `dataset.frame` row i.

    - `table`: N x F; numeric columns float32 (NaN = unknown), categorical columns int32 codes
      (-1 = missing) listed in `categorical`.
    - `seq_index`: N x K int32, row positions of each event's K previous events of the same user
      (strictly earlier, most recent last, -1 padded); None when the format has no users.
    - `steps`: N x S float32 per-event step features gathered through `seq_index`.
    """

    table: pd.DataFrame
    categorical: list[str] = field(default_factory=list)
    seq_index: np.ndarray | None = None
    steps: np.ndarray | None = None
    step_names: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def n_rows(self) -> int:
        """Number of rows (events)."""
        return len(self.table)

    @property
    def numeric(self) -> list[str]:
        """Columns of `table` that are not categorical codes."""
        cats = set(self.categorical)
        return [c for c in self.table.columns if c not in cats]


class BlockFeatures(FeatureSet):
    """A `FeatureSet` held as two arrays, the numeric columns (float32) then the codes (int32), the raw-feature
    table's layout; `table` is built from them when first read. The scoring service's models read the arrays
    (`numeric_block`, `code_block`) instead: pandas' fixed cost per frame and per column selection was most
    of a one-event request's model call."""

    def __init__(self, numeric: np.ndarray, codes: np.ndarray, numeric_columns: list[str], categorical: list[str]):
        self.numeric_block, self.code_block = numeric, codes
        self.numeric_columns, self.categorical = list(numeric_columns), list(categorical)
        self.seq_index, self.steps, self.step_names, self.fingerprint = None, None, [], ""
        self._table: pd.DataFrame | None = None

    @property
    def n_rows(self) -> int:
        """Number of rows (events), without building the table."""
        return len(self.numeric_block)

    def positions(self, numeric: list[str], categorical: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """Where `numeric` lie in the numeric block and `categorical` in the code block; None when one is absent."""
        return _positions(tuple(self.numeric_columns), tuple(self.categorical), tuple(numeric), tuple(categorical))

    @property
    def table(self) -> pd.DataFrame:
        """The arrays as the feature table (numeric columns, then the codes)."""
        if self._table is None:
            self._table = pd.concat([pd.DataFrame(self.numeric_block, columns=self.numeric_columns),
                                     pd.DataFrame(self.code_block, columns=self.categorical)], axis=1)
        return self._table


@lru_cache(maxsize=16)
def _positions(numeric_have: tuple[str, ...], codes_have: tuple[str, ...], numeric: tuple[str, ...],
               categorical: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """`BlockFeatures.positions`, worked out once per layout."""
    places = {c: j for j, c in enumerate(numeric_have)}
    code_places = {c: j for j, c in enumerate(codes_have)}
    if not (set(numeric) <= places.keys() and set(categorical) <= code_places.keys()):
        return None
    return (np.array([places[c] for c in numeric], dtype=np.int64),
            np.array([code_places[c] for c in categorical], dtype=np.int64))
