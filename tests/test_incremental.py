"""One event's amount statistics from the serving state (`incremental.amount_values`, Python floats) against
the batch code's (`semifinal.amount_features`, numpy) over the same events.

The awkward cases are the ones where the two could part: windows of no known amount and of one,
a mean of zero (the batch divides by it: an infinity, NaN once the table is typed), missing
amounts, amounts whose sums lose digits without compensation, and windows long enough for
`window_max`'s numpy branch.
"""
from __future__ import annotations

import numpy as np
import pytest

from atec_automl.features.groups import Group
from atec_automl.features.incremental import EntityPlan, amount_values
from atec_automl.features.semifinal import AMOUNT_STATS, amount_features
from atec_automl.features.spec import ALL_HISTORY, EntitySpec, window_seconds
from atec_automl.features.windows import Timeline, build_key_index

WINDOWS = ["1h", "24h", ALL_HISTORY]


def typed(values: np.ndarray) -> np.ndarray:
    """Values as the feature table holds them: float32, infinities as NaN."""
    out = np.asarray(values, dtype=np.float64).astype(np.float32)
    out[np.isinf(out)] = np.nan
    return out


def awkward_timeline(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Times (seconds, some equal) and amounts: zero runs, missing values, mixed magnitudes, one burst of 100
    events within an hour."""
    gaps = rng.choice([0, 30, 600, 5_000, 90_000], size=n)
    gaps[n // 2: n // 2 + 100] = rng.integers(0, 3, size=100)
    ts = 1_500_000_000 + np.cumsum(gaps)
    amount = rng.choice([0.0, 0.0, 1e9, 1e-3, 0.1, 3.0, 7e5, np.nan], size=n) * rng.random(n)
    amount[:5] = 0.0
    return ts.astype(np.int64), amount


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_amount_statistics_of_one_event_are_the_batch_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ts, amount = awkward_timeline(rng, 400)
    visible = ts + 1
    entity = EntitySpec(columns=["user"], windows=WINDOWS, stats=list(AMOUNT_STATS))
    ki = build_key_index(np.zeros(len(ts), dtype=np.int64), Timeline.of(ts, visible), max(
        s for s in (window_seconds(w) for w in WINDOWS) if s))
    batch = amount_features(ki, "user", entity, amount, {w: ki.lo(window_seconds(w)) for w in WINDOWS})
    group = Group(visible, ts, amount, {})
    for position, row in enumerate(ki.order.tolist()):
        t = int(ts[row])
        lows = {w: group.window_start(t, window_seconds(w)) for w in WINDOWS}
        online = amount_values(group, EntityPlan.of("user", entity), float(amount[row]), group.past_end(t), lows, {})
        names = list(batch)
        assert list(online) == names
        np.testing.assert_array_equal(typed([online[c] for c in names]),
                                      typed([batch[c][position] for c in names]), err_msg=f"event {row}")
