"""Input preparation for the neural families, fitted on training rows only.

Numeric columns are mapped to a bounded range (`minmax` to [0, 1] as seed 000 recommends,
`quantile` to [0, 1] by the training distribution, robust to outliers and drift, or `standard`
z-scores clipped to +-5); NaN becomes 0 plus a missing-indicator column for every column that
had NaN in training. Categorical codes become embedding indices: 0 for missing, rare or unseen
codes, 1.. for the `max_categories` most frequent codes seen at least `min_count` times.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from atec_automl.errors import AtecError
from atec_automl.features.featureset import BlockFeatures

SCALINGS = ("minmax", "quantile", "standard")
FIT_SAMPLE_ROWS = 200_000
N_QUANTILES = 101
STANDARD_CLIP = 5.0


@dataclass
class NumericScaler:
    """Per-column scaling of a float matrix; `lo`/`hi` (minmax), `quantiles` or `mean`/`std`."""

    method: str
    params: dict[str, np.ndarray]

    @classmethod
    def fit(cls, x: np.ndarray, method: str, seed: int = 0) -> "NumericScaler":
        """Fit on the rows of `x` (a seeded sample of at most FIT_SAMPLE_ROWS), sampled before they are made
        float64: a float64 copy of every training row first was half a gigabyte at 450 k rows."""
        if method not in SCALINGS:
            raise AtecError(f"model.scaling: {method!r} is not one of {SCALINGS}")
        x = np.asarray(_sample_rows(np.asarray(x), seed), dtype=np.float64)
        finite = np.where(np.isnan(x).all(axis=0, keepdims=True), 0.0, x)
        if method == "minmax":
            params = {"lo": np.nanmin(finite, axis=0), "hi": np.nanmax(finite, axis=0)}
        elif method == "quantile":
            params = {"quantiles": np.nanquantile(finite, np.linspace(0, 1, N_QUANTILES), axis=0).T.copy()}
        else:
            params = {"mean": np.nanmean(finite, axis=0), "std": np.nanstd(finite, axis=0)}
        return cls(method, {k: v.astype(np.float64) for k, v in params.items()})

    @property
    def n_columns(self) -> int:
        """Number of columns the scaler was fitted on."""
        return len(next(iter(self.params.values())))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of `x`, NaN replaced by 0.

        The float64 steps run in one working array (in place after the first), not a new array per
        step: at 450 k rows each step's array is half a gigabyte of fresh pages for the kernel to zero.
        """
        x = np.asarray(x, dtype=np.float64)
        if self.method == "minmax":
            lo, hi = self.params["lo"], self.params["hi"]
            out = np.subtract(x, lo)
            out /= np.where(hi > lo, hi - lo, 1.0)
            np.clip(out, 0.0, 1.0, out=out)
        elif self.method == "quantile":
            grid = np.linspace(0, 1, N_QUANTILES)
            out = np.column_stack([np.interp(x[:, j], q, grid) for j, q in enumerate(self.params["quantiles"])]) \
                if x.shape[1] else x.copy()
            out[np.isnan(x)] = np.nan
        else:
            out = np.subtract(x, self.params["mean"])
            out /= np.where(self.params["std"] > 0, self.params["std"], 1.0)
            np.clip(out, -STANDARD_CLIP, STANDARD_CLIP, out=out)
        return np.nan_to_num(out, copy=False, nan=0.0).astype(np.float32)


def _sample_rows(x: np.ndarray, seed: int) -> np.ndarray:
    """At most FIT_SAMPLE_ROWS rows of `x`, chosen with a seeded generator, order kept."""
    if len(x) <= FIT_SAMPLE_ROWS:
        return x
    keep = np.sort(np.random.default_rng(seed).choice(len(x), FIT_SAMPLE_ROWS, replace=False))
    return x[keep]


def fit_vocabulary(codes: np.ndarray, max_categories: int, min_count: int) -> np.ndarray:
    """Sorted codes kept for embedding: the most frequent non-missing codes, at least `min_count` each."""
    codes = codes[codes >= 0]
    values, counts = np.unique(codes, return_counts=True)
    frequent = counts >= min_count
    values, counts = values[frequent], counts[frequent]
    top = np.argsort(-counts, kind="stable")[:max_categories]
    return np.sort(values[top])


CODE_BITS = 40
"""Bits of a code in the keys of `CodeEncoder` (codes are int32; a column's number goes above them)."""


class CodeEncoder:
    """Embedding index of each code of each categorical column: 1 + its place in the column's vocabulary, 0 when
    absent or missing; every column of a block in one binary search over all vocabularies at once (one search
    per column cost about a quarter of a one-event MLP predict)."""

    def __init__(self, vocabularies: list[np.ndarray]):
        self.keys = np.concatenate([(np.int64(j) << CODE_BITS) + np.asarray(v, dtype=np.int64) + 1
                                    for j, v in enumerate(vocabularies)]) if vocabularies else np.zeros(0, np.int64)
        """Each column's codes (sorted) + 1 with the column's number above them: sorted as a whole."""
        self.starts = np.cumsum([0] + [len(v) for v in vocabularies])[:-1].astype(np.int64)
        self.columns = np.arange(len(vocabularies), dtype=np.int64) << CODE_BITS

    def encode(self, codes: np.ndarray) -> np.ndarray:
        """int64 embedding indices of an n x C block of codes (column j read with vocabulary j)."""
        codes = np.asarray(codes, dtype=np.int64).reshape(len(codes), len(self.columns))
        if not len(self.keys):
            return np.zeros(codes.shape, dtype=np.int64)
        keys = codes + 1 + self.columns
        place = np.searchsorted(self.keys, keys)
        found = (self.keys[np.minimum(place, len(self.keys) - 1)] == keys) & (codes >= 0)
        return np.where(found, place - self.starts + 1, 0)


@dataclass
class TabularPreprocessor:
    """Numeric scaling, missing indicators and categorical vocabularies of a FeatureSet table."""

    numeric: list[str]
    categorical: list[str]
    scaler: NumericScaler
    indicator_columns: list[str]
    vocabularies: list[np.ndarray]

    @classmethod
    def fit(cls, table: pd.DataFrame, categorical: list[str], rows: np.ndarray, scaling: str,
            max_categories: int, min_count: int, seed: int = 0) -> "TabularPreprocessor":
        """Learn scaling and vocabularies from the training `rows` of `table`."""
        numeric = [c for c in table.columns if c not in set(categorical)]
        x = _numeric_block(table, numeric, rows)
        scaler = NumericScaler.fit(x, scaling, seed)
        indicators = [c for c, has_nan in zip(numeric, np.isnan(x).any(axis=0)) if has_nan]
        vocabularies = [fit_vocabulary(_codes(table, c, rows), max_categories, min_count) for c in categorical]
        return cls(numeric, list(categorical), scaler, indicators, vocabularies)

    @cached_property
    def code_encoder(self) -> CodeEncoder:
        """The embedding indices of the vocabularies."""
        return CodeEncoder(self.vocabularies)

    @property
    def n_inputs(self) -> int:
        """Width of the numeric block `transform` returns."""
        return len(self.numeric) + len(self.indicator_columns)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table size per categorical column (index 0 = missing, rare or unseen)."""
        return [len(v) + 1 for v in self.vocabularies]

    def transform(self, table: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(numeric float32 n x n_inputs, categorical int64 n x C) for `rows` of `table`."""
        missing = [c for c in self.numeric + self.categorical if c not in table.columns]
        if missing:
            raise AtecError(f"features table: column {missing[0]!r} the model was trained on is missing")
        x = _numeric_block(table, self.numeric, rows)
        indicators = np.isnan(_numeric_block(table, self.indicator_columns, rows)).astype(np.float32)
        numeric = np.concatenate([self.scaler.transform(x), indicators], axis=1)
        codes = np.column_stack([_codes(table, c, rows) for c in self.categorical]) if self.categorical else \
            np.zeros((len(rows), 0), dtype=np.int64)
        return numeric, self.code_encoder.encode(codes)

    def transform_blocks(self, features: BlockFeatures, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`transform` of a `BlockFeatures`, read from its arrays (the same values, no frame)."""
        positions = features.positions(self.numeric + self.indicator_columns, self.categorical)
        if positions is None:
            return self.transform(features.table, rows)
        numeric, codes = positions
        block = features.numeric_block[rows]
        x = block[:, numeric[:len(self.numeric)]].astype(np.float64)
        indicators = np.isnan(block[:, numeric[len(self.numeric):]]).astype(np.float32)
        categorical = self.code_encoder.encode(features.code_block[rows][:, codes])
        return np.concatenate([self.scaler.transform(x), indicators], axis=1), categorical

    def state(self) -> dict:
        """Everything needed to rebuild this preprocessor, JSON-serialisable."""
        return {"numeric": self.numeric, "categorical": self.categorical, "indicator_columns": self.indicator_columns,
                "scaling": self.scaler.method, "scaler": {k: v.tolist() for k, v in self.scaler.params.items()},
                "vocabularies": [v.tolist() for v in self.vocabularies]}

    @classmethod
    def from_state(cls, state: dict) -> "TabularPreprocessor":
        """Inverse of `state`."""
        params = {k: np.asarray(v, dtype=np.float64) for k, v in state["scaler"].items()}
        scaler = NumericScaler(state["scaling"], params)
        vocabularies = [np.asarray(v, dtype=np.int64) for v in state["vocabularies"]]
        return cls(state["numeric"], state["categorical"], scaler, state["indicator_columns"], vocabularies)


def _numeric_block(table: pd.DataFrame, columns: list[str], rows: np.ndarray) -> np.ndarray:
    """float64 matrix of `columns` at `rows` (NaN kept)."""
    if not columns:
        return np.zeros((len(rows), 0), dtype=np.float64)
    return table[columns].iloc[rows].to_numpy(dtype=np.float64, na_value=np.nan)


def _codes(table: pd.DataFrame, column: str, rows: np.ndarray) -> np.ndarray:
    """int64 codes of a categorical column at `rows` (-1 = missing)."""
    return table[column].to_numpy()[rows].astype(np.int64)
