"""Calendar features of event times: hour, weekday, day of month and a holiday flag."""
from __future__ import annotations

import numpy as np

from atec_automl.data.dataset import SECONDS_PER_DAY


def calendar_features(ts: np.ndarray, holidays: list[list[str]], with_hour: bool = True) -> dict[str, np.ndarray]:
    """Hour, weekday (Monday 0), day of month and a holiday flag of each timestamp."""
    days = ts // SECONDS_PER_DAY
    dates = days.astype("datetime64[D]")
    out = {}
    if with_hour:
        out["hour"] = ((ts % SECONDS_PER_DAY) // 3600).astype(np.float32)
    out["weekday"] = ((days + 3) % 7).astype(np.float32)
    out["day_of_month"] = ((dates - dates.astype("datetime64[M]")).astype(np.int64) + 1).astype(np.float32)
    out["holiday"] = holiday_flags(days, holidays)
    return out


def holiday_flags(days: np.ndarray, holidays: list[list[str]]) -> np.ndarray:
    """1.0 for days inside any inclusive [start, end] holiday range, else 0.0."""
    flag = np.zeros(len(days), dtype=np.float32)
    for start, end in holidays:
        first, last = (int(np.datetime64(d, "D").astype(np.int64)) for d in (start, end))
        flag[(days >= first) & (days <= last)] = 1.0
    return flag
