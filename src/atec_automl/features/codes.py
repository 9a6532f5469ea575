"""Integer codes of fields and key tuples: per-row codes, codes frozen to known values, code spaces shared by columns."""
from __future__ import annotations

import numpy as np
import pandas as pd


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
    labels = [normalised_labels(c.categories) for c in categoricals]
    union = pd.Index(np.concatenate(labels)).unique()
    out = []
    for cat, lab in zip(categoricals, labels):
        mapping = np.append(union.get_indexer(lab), -1)  # code -1 (missing) picks the appended -1
        out.append(mapping[np.asarray(cat.codes, dtype=np.int64)])
    return out


def normalised_labels(categories: pd.Index) -> np.ndarray:
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
