"""The numeric scaler's three methods, computed as their plain formulas, without touching the caller's array."""
from __future__ import annotations

import numpy as np
import pytest

from atec_automl.models.preprocess import STANDARD_CLIP, NumericScaler


def scaled_input() -> np.ndarray:
    """Columns of several scales with missing values, one constant column and one all-missing column."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 5)) * [1.0, 1e3, 1e-3, 1.0, 1.0]
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 3] = 7.0
    x[:, 4] = np.nan
    return x


def plain_formula(scaler: NumericScaler, x: np.ndarray) -> np.ndarray:
    """The scaled values written out step by step, each step a new array."""
    p = scaler.params
    if scaler.method == "minmax":
        out = np.clip((x - p["lo"]) / np.where(p["hi"] > p["lo"], p["hi"] - p["lo"], 1.0), 0.0, 1.0)
    else:
        out = np.clip((x - p["mean"]) / np.where(p["std"] > 0, p["std"], 1.0), -STANDARD_CLIP, STANDARD_CLIP)
    return np.where(np.isnan(out), 0.0, out).astype(np.float32)


@pytest.mark.parametrize("method", ["minmax", "standard"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scaling_is_the_plain_formula_and_leaves_the_input_alone(method, dtype):
    x = scaled_input().astype(dtype)
    scaler = NumericScaler.fit(x, method)
    kept = x.copy()
    with np.errstate(invalid="ignore"):
        out = scaler.transform(x)
        expected = plain_formula(scaler, x.astype(np.float64))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(x, kept)  # the working array is a copy, never the caller's


def test_quantile_scaling_maps_missing_to_zero_and_leaves_the_input_alone():
    x = scaled_input()
    kept = x.copy()
    with np.errstate(invalid="ignore"):
        out = NumericScaler.fit(x, "quantile").transform(x)
    assert out.dtype == np.float32
    assert ((out >= 0) & (out <= 1)).all()
    assert (out[np.isnan(x)] == 0).all()
    np.testing.assert_array_equal(x, kept)
