"""Features of the preliminary format: the f-columns, the per-row missing count, date features.

There are no entity ids, so nothing is aggregated across events and there are no sequences;
every value of a row comes from the row itself and its date.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from atec_automl.features.calendar import calendar_features
from atec_automl.features.spec import PrelimFeatures
from atec_automl.features.table_sink import TableSink


def build_prelim_table(frame: pd.DataFrame, spec: PrelimFeatures) -> pd.DataFrame:
    """f-columns as float32, `missing_count` over them, weekday, day of month and holiday flag."""
    sink = TableSink(len(frame))
    missing = np.zeros(len(frame), dtype=np.float32)
    for name in spec.feature_columns(list(frame.columns)):
        values = frame[name].to_numpy(dtype=np.float32, na_value=np.nan)
        missing += np.isnan(values)
        sink.add(name, values)
    sink.add("missing_count", missing)
    sink.add_all(calendar_features(frame["ts"].to_numpy(dtype=np.int64), spec.holidays, with_hour=False))
    return sink.frame()
