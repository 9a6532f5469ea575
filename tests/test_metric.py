"""The ATEC metric against a straightforward row-by-row implementation of the official rule."""
import numpy as np
import pytest

from atec_automl.errors import AtecError
from atec_automl.metric import atec_score, auc


def reference_score(y: list[int], p: list[float]) -> tuple[float, float, float, float]:
    """Walk rows sorted by score (stable, descending) and keep the nearest-FPR row per target."""
    rows = sorted(zip(p, y, range(len(y))), key=lambda row: -row[0])
    n_pos = sum(y)
    n_neg = len(y) - n_pos
    tprs = []
    for target in (0.001, 0.005, 0.01):
        tp = fp = 0
        best_distance, best_tpr = None, None
        for _, label, _ in rows:
            tp += label
            fp += 1 - label
            distance = abs(fp / n_neg - target)
            if best_distance is None or distance < best_distance:
                best_distance, best_tpr = distance, tp / n_pos
        tprs.append(best_tpr)
    return (0.4 * tprs[0] + 0.3 * tprs[1] + 0.3 * tprs[2], *tprs)


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels with both classes and scores that are tied often, sometimes entirely."""
    n = int(rng.integers(2, 3000))
    y = (rng.random(n) < rng.uniform(0.005, 0.5)).astype(int)
    y[rng.integers(n)] = 1
    y[rng.integers(n)] = 0
    if y.sum() in (0, n):
        y[0], y[1] = 1, 0
    signal = y * rng.uniform(0, 3) + rng.normal(size=n)
    levels = [None, 1, 3, 20, 200][int(rng.integers(5))]
    p = signal if levels is None else np.round(signal * levels) / levels
    return y, p


def test_matches_reference_on_thousands_of_random_cases_with_ties() -> None:
    rng = np.random.default_rng(20180205)
    for _ in range(2000):
        y, p = random_case(rng)
        assert atec_score(y, p) == pytest.approx(reference_score(list(y), list(p)), abs=1e-12)


def test_ties_keep_input_order() -> None:
    y = np.array([0] * 1000 + [1, 1])
    p = np.concatenate([np.ones(1000), [1.0, 0.0]])
    assert atec_score(y, p).tpr1 == 0.0
    assert atec_score(y[::-1], p[::-1]).tpr1 == 0.5


def test_perfect_and_reversed_rankings() -> None:
    y = np.array([1] * 10 + [0] * 990)
    assert atec_score(y, -np.arange(1000.0)) == (1.0, 1.0, 1.0, 1.0)
    assert atec_score(y, np.arange(1000.0)).score == 0.0


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "without both classes"),
        ([0, 0], [0.1, 0.2], "without both classes"),
        ([1, -1, 0], [0.1, 0.2, 0.3], "labels must be 0 or 1"),
        ([1, 0], [0.1, float("nan")], "NaN"),
        ([1, 0, 1], [0.1, 0.2], "equal length"),
    ],
)
def test_clear_errors(y: list, p: list, message: str) -> None:
    with pytest.raises(AtecError, match=message):
        atec_score(np.array(y), np.array(p))


def test_auc() -> None:
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
