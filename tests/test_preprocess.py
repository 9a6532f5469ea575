"""The numeric scaler's three methods, computed as their plain formulas (infinite inputs included), without
touching the caller's array."""
from __future__ import annotations

import numpy as np
import pytest

from atec_automl.models.preprocess import STANDARD_CLIP, CodeEncoder, NumericScaler


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


def test_codes_become_their_place_in_their_own_columns_vocabulary() -> None:
    """Every column is encoded with its own vocabulary in one search over all of them: 1 + the code's place,
    0 for a missing code (-1), a code outside the vocabulary (between, below or above its codes, or in another
    column's vocabulary only) and any code of a column with an empty vocabulary."""
    rng = np.random.default_rng(0)
    vocabularies = [np.array([0, 3, 7, 2_000_000_000]), np.array([], dtype=np.int64), np.array([5]),
                    np.sort(rng.choice(50, size=20, replace=False))]
    codes = rng.integers(-1, 60, size=(500, 4))
    codes[:5] = [[2_000_000_000, 3, 5, 0], [7, -1, 4, 49], [-1, 0, 6, -1], [8, 5, 5, 60], [1, 7, -1, 3]]
    expected = np.array([[{int(code): place + 1 for place, code in enumerate(v)}.get(int(c), 0) for c, v in zip(row, vocabularies)]
                         for row in codes])
    got = CodeEncoder(vocabularies).encode(codes.astype(np.int32))
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    assert got[0, :3].tolist() == [4, 0, 1] and got[1, :3].tolist() == [3, 0, 0] and got[3, :3].tolist() == [0, 0, 1]
    assert CodeEncoder([]).encode(np.zeros((3, 0), dtype=np.int64)).shape == (3, 0)
