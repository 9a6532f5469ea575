"""The ATEC metric against a straightforward row-by-row implementation of the official rule."""
import numpy as np
import pytest

from atec_automl.errors import AtecError
from atec_automl.metric import TARGET_FPRS, WEIGHTS, AtecScore, _checked, atec_score, auc


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


def _atec_score_full_sort(y_true: np.ndarray, y_score: np.ndarray) -> AtecScore:
    """The official rule with one stable argsort of every row (the previous implementation)."""
    positive, p = _checked(y_true, y_score)
    hits = positive[np.argsort(-p, kind="stable")]
    tp = np.cumsum(hits)
    fp = np.arange(1, len(hits) + 1) - tp
    tpr, fpr = tp / tp[-1], fp / fp[-1]
    tprs = [float(tpr[np.argmin(np.abs(fpr - target))]) for target in TARGET_FPRS]
    return AtecScore(float(np.dot(WEIGHTS, tprs)), *tprs)


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


def test_equals_full_sort_on_500_random_cases_of_all_sizes() -> None:
    """Sizes up to 400 k rows (past the sampled floor), 1-3 positives or many, tie-free to all tied."""
    rng = np.random.default_rng(9)
    for case in range(500):
        n = int(np.exp(rng.uniform(np.log(2), np.log(400_000))))
        if case % 4 == 0:
            y = np.zeros(n, dtype=int)
            y[rng.choice(n, size=min(int(rng.integers(1, 4)), n - 1), replace=False)] = 1
        else:
            y = (rng.random(n) < rng.uniform(0.001, 0.6)).astype(int)
            y[int(rng.integers(n))], y[int(rng.integers(n))] = 1, 0
            if y.sum() in (0, n):
                y[0], y[1] = 1, 0
        signal = y * rng.uniform(0, 3) + rng.normal(size=n)
        levels = [None, 0, 1, 3, 20, 1000][case % 6]
        p = signal if levels is None else np.round(signal * levels) / max(levels, 1)
        assert atec_score(y, p) == _atec_score_full_sort(y, p), f"case {case}: n={n}, levels={levels}"


def test_many_ties_exactly_at_the_fpr_cut() -> None:
    """A block of 20,000 tied rows, positives scattered in it, straddles the FPR-0.01 cut: input order decides."""
    rng = np.random.default_rng(3)
    n = 300_000
    p = rng.uniform(0.0, 0.4, size=n)
    y = (rng.random(n) < 0.01).astype(int)
    p[:1500] = rng.uniform(0.6, 1.0, size=1500)
    block = np.arange(100_000, 120_000)
    p[block] = 0.5
    y[block] = rng.random(len(block)) < 0.05
    assert atec_score(y, p) == _atec_score_full_sort(y, p)
    y[block] = np.sort(y[block])
    positives_last = atec_score(y, p)
    assert positives_last == _atec_score_full_sort(y, p)
    y[block] = y[block][::-1]
    positives_first = atec_score(y, p)
    assert positives_first == _atec_score_full_sort(y, p)
    assert positives_first.tpr3 > positives_last.tpr3


def test_sample_that_misleads_falls_back_to_an_exact_cut() -> None:
    """Every 4th row (what the strided sample sees) is a high negative, all others low: still exact."""
    n = 1 << 18
    rng = np.random.default_rng(4)
    y = (rng.random(n) < 0.02).astype(int)
    p = rng.uniform(0.0, 0.5, size=n)
    y[::4], p[::4] = 0, rng.uniform(0.9, 1.0, size=len(p[::4]))
    p[y == 1] = rng.uniform(0.9, 1.0, size=int(y.sum()))
    score = atec_score(y, p)
    assert score == _atec_score_full_sort(y, p)
    assert 0 < score.tpr3 < 1


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


def test_auc_is_sklearns_on_random_cases_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    for case in range(300):
        n = int(rng.integers(2, 3000))
        y = (rng.random(n) < rng.uniform(0.01, 0.5)).astype(int)
        y[:2] = [0, 1]
        p = rng.integers(0, int(rng.integers(2, 50)), n).astype(float) if case % 2 else rng.random(n)
        assert auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12), case
        top, bottom = rng.random(n) < 0.02, rng.random(n) < 0.02
        infinite, finite = p.copy(), p.copy()
        infinite[top], finite[top] = np.inf, p.max() + 1  # sklearn refuses infinities: same ranks, finite
        infinite[bottom], finite[bottom] = -np.inf, p.min() - 1
        assert auc(y, infinite) == pytest.approx(roc_auc_score(y, finite), abs=1e-12), case
