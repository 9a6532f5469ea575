"""What feature building hands to the models: one row per timeline event, in timeline order."""
from __future__ import annotations

from dataclasses import dataclass, field

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
    def numeric(self) -> list[str]:
        """Columns of `table` that are not categorical codes."""
        cats = set(self.categorical)
        return [c for c in self.table.columns if c not in cats]
