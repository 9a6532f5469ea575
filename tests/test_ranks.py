"""Average ranks and Spearman's rho in numpy against scipy.stats, and the tasks that rank without scipy."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from atec_automl.ranks import average_ranks, spearman


def random_cases(count: int):
    """Samples with many ties (few distinct values), with none (floats) and with infinities, of any length."""
    rng = np.random.default_rng(7)
    for case in range(count):
        n = int(rng.integers(0, 60))
        kind = case % 3
        if kind == 0:
            yield rng.integers(0, 4, n).astype(float), rng.integers(0, 3, n).astype(float)
        elif kind == 1:
            yield rng.normal(size=n), rng.normal(size=n)
        else:
            x = rng.choice([-np.inf, -1.0, 0.0, 2.5, np.inf], n)
            yield x, x + rng.integers(0, 2, n)


def test_average_ranks_are_scipys_rankdata() -> None:
    for x, y in random_cases(300):
        for values in (x, y, x.astype(np.float32), x.astype(np.int64) if np.isfinite(x).all() else x):
            assert average_ranks(values).dtype == np.float64
            np.testing.assert_array_equal(average_ranks(values), rankdata(values))


def test_spearman_is_scipys_and_nan_when_a_sample_is_constant() -> None:
    compared = 0
    for x, y in random_cases(300):
        if len(x) < 2:
            continue
        expected = spearmanr(x, y).statistic if len(set(x)) > 1 and len(set(y)) > 1 else np.nan
        if np.isnan(expected):
            assert np.isnan(spearman(x, y))
        else:
            assert spearman(x, y) == pytest.approx(expected, abs=1e-12)
            compared += 1
    assert compared > 200
    assert spearman([1, 2, 3], [3, 2, 1]) == -1.0 and spearman([1, 2, 3], [10, 20, 30]) == 1.0


RANK_WITHOUT_SCIPY = textwrap.dedent("""
    import sys
    import numpy as np
    from atec_automl.artifact import rank_average
    from atec_automl.metric import auc
    from atec_automl.truth import trust
    print(trust([0.5, 0.4, 0.3, 0.2], [0.45, 0.41, 0.2, 0.25], [None, 0.3, 0.2, 0.1]).line())
    print(rank_average([np.array([0.1, 0.9, 0.5]), np.array([3.0, 1.0, 2.0])]).tolist())
    print(auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.8, 0.9])))
    print(sorted(name for name in sys.modules if name.startswith("scipy.stats")))
""")


def test_the_trust_line_a_blend_and_the_auc_rank_without_scipy_stats() -> None:
    """A CatBoost-only sweep ends with the trust line; a blend's predict ranks; neither loads scipy.stats
    (most of a second of start-up), and each gives scipy's values."""
    done = subprocess.run([sys.executable, "-c", RANK_WITHOUT_SCIPY], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    line, blend, area, modules = done.stdout.strip().splitlines()
    rho_a = spearmanr([0.5, 0.4, 0.3, 0.2], [0.45, 0.41, 0.2, 0.25]).statistic
    rho_b = spearmanr([0.4, 0.3, 0.2], [0.3, 0.2, 0.1]).statistic
    assert f"Spearman(local, true A) {rho_a:.3f}, Spearman(local, true B) {rho_b:.3f}" in line
    assert blend == str(((rankdata([0.1, 0.9, 0.5]) + rankdata([3.0, 1.0, 2.0])) / 6).tolist())
    assert float(area) == 0.875
    assert modules == "[]"
