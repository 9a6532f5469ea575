"""Column helpers: integer codes of fields and key pairs, shared code spaces, calendar features."""
from __future__ import annotations

import numpy as np
import pandas as pd

from atec_automl.data.dataset import SECONDS_PER_DAY


def key_codes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """int64 code per row of the value (or value tuple) in `columns`; -1 when any part is missing.

    Codes only group equal values; their numbering carries no meaning.
    """
    codes = _column_codes(frame[columns[0]])
    for column in columns[1:]:
        other = _column_codes(frame[column])
        both = (codes >= 0) & (other >= 0)
        combined = np.where(both, codes * (int(other.max()) + 1) + other, -1)
        codes = np.full(len(frame), -1, dtype=np.int64)
        codes[both] = pd.factorize(combined[both])[0]
    return codes


def appearance_codes(series: pd.Series) -> np.ndarray:
    """int32 codes numbered by first appearance in the timeline (-1 missing).

    Numbering by first appearance keeps an earlier event's code independent of later rows.
    """
    return pd.factorize(series, use_na_sentinel=True)[0].astype(np.int32)


def frozen_codes(series: pd.Series, known: pd.Index) -> np.ndarray:
    """int32 codes against a frozen vocabulary (-1 missing): a value of `known` gets its place there,
    any other value `len(known)` plus its order of first appearance among such values.

    With `known` the values of a timeline in first-appearance order (what `appearance_codes`
    numbered), each event of that timeline, or of that timeline followed by new events, gets the
    code `appearance_codes` gives it on the whole: the code space of a saved model's training data.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if not len(uniques):
        return codes.astype(np.int32)
    place = known.get_indexer(pd.Index(np.asarray(uniques, dtype=object), dtype=known.dtype)).astype(np.int64)
    unseen = place < 0
    place[unseen] = len(known) + np.arange(int(unseen.sum()))
    return np.where(codes >= 0, place[np.maximum(codes, 0)], -1).astype(np.int32)


def shared_codes(frame: pd.DataFrame, columns: list[str]) -> list[np.ndarray]:
    """Codes of several columns in one code space, so that equal values compare equal."""
    categoricals = [pd.Categorical(frame[c]) for c in columns]
    labels = [_normalised_labels(c.categories) for c in categoricals]
    union = pd.Index(np.concatenate(labels)).unique()
    out = []
    for cat, lab in zip(categoricals, labels):
        mapping = np.append(union.get_indexer(lab), -1)  # code -1 (missing) picks the appended -1
        out.append(mapping[np.asarray(cat.codes, dtype=np.int64)])
    return out


def _normalised_labels(categories: pd.Index) -> np.ndarray:
    """Category labels as comparable values, each on its own: a number as float text ("11" and "11.0"
    compare equal), anything else as its text; so no other value, earlier or later, changes how one compares."""
    text = np.asarray(categories.astype(str), dtype=object).astype(str)
    numeric = pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    return np.where(np.isnan(numeric), text, numeric.astype(str))


def _column_codes(series: pd.Series) -> np.ndarray:
    """int64 codes of one column, -1 for missing."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return np.asarray(series.cat.codes, dtype=np.int64)
    return pd.factorize(series, use_na_sentinel=True)[0].astype(np.int64)


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
