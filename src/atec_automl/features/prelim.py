"""Features of the preliminary format: the f-columns, the per-row missing count, date features.

There are no entity ids, so nothing is aggregated across events and there are no sequences;
every value of a row comes from the row itself and its date.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from atec_automl.features.columns import calendar_features
from atec_automl.features.spec import PrelimFeatures


def build_prelim_table(frame: pd.DataFrame, spec: PrelimFeatures) -> pd.DataFrame:
    """f-columns as float32, `missing_count` over them, weekday, day of month and holiday flag."""
    names = spec.feature_columns(list(frame.columns))
    raw = frame[names].to_numpy(dtype=np.float32, na_value=np.nan)
    columns = {name: raw[:, i] for i, name in enumerate(names)}
    columns["missing_count"] = np.isnan(raw).sum(axis=1).astype(np.float32)
    columns.update(calendar_features(frame["ts"].to_numpy(dtype=np.int64), spec.holidays, with_hour=False))
    return pd.DataFrame(columns)
