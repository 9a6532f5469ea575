"""The numeric scaler's three methods, computed as their plain formulas (infinite inputs included), without
touching the caller's array."""
from __future__ import annotations

import numpy as np
import pytest

from atec_automl.models.preprocess import STANDARD_CLIP, NumericScaler


def scaled_input() -> np.ndarray:
    """Columns of several scales with missing values, one constant, one all missing, some infinite values."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 6)) * [1.0, 1e3, 1e-3, 1.0, 1.0, 1.0]
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 3] = 7.0
    x[:, 4] = np.nan
    x[::7, 5] = np.inf
    x[3::11, 5] = -np.inf
    x[5, 1], x[6, 1] = np.inf, -np.inf
    return x


def plain_formula(scaler: NumericScaler, x: np.ndarray) -> np.ndarray:
    """The scaled values written out step by step, each step a new array, NaN and infinities made finite."""
    p = scaler.params
    if scaler.method == "minmax":
        out = np.clip((x - p["lo"]) / np.where(p["hi"] > p["lo"], p["hi"] - p["lo"], 1.0), 0.0, 1.0)
    elif scaler.method == "quantile":
        grid = np.linspace(0, 1, len(p["quantiles"][0]))
        out = np.column_stack([np.interp(x[:, j], q, grid) for j, q in enumerate(p["quantiles"])])
        out[np.isnan(x)] = np.nan
    else:
        out = np.clip((x - p["mean"]) / np.where(p["std"] > 0, p["std"], 1.0), -STANDARD_CLIP, STANDARD_CLIP)
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


@pytest.mark.parametrize("method", ["minmax", "quantile", "standard"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scaling_is_the_plain_formula_and_leaves_the_input_alone(method, dtype):
    x = scaled_input().astype(dtype)
    kept = x.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        scaler = NumericScaler.fit(x, method)
        out = scaler.transform(x)
        expected = plain_formula(scaler, x.astype(np.float64))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(x, kept)  # the working array is a copy, never the caller's


def test_missing_values_scale_to_zero():
    x = scaled_input()
    with np.errstate(invalid="ignore", divide="ignore"):
        for method in ("minmax", "quantile", "standard"):
            assert (NumericScaler.fit(x, method).transform(x)[np.isnan(x)] == 0).all()
