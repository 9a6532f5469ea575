"""The three files' time windows and how the data drifts from train to the tests.

Drift between train and tests: more device-farm fraud, missing fields (-1) 1.6x more in test_a
and 2.8x more in test_b (where the card-mobile location and IP city lose much more, see `labels`),
amounts inflated 6 % and 9 %, newer app versions, fewer 3G connections, new users; rings adapt to
velocity rules by spreading campaigns over more days (up to 4, 6, 8) and larger pools (4-12, 6-16, 8-20).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atec_automl.data.dataset import SECONDS_PER_DAY


@dataclass(frozen=True)
class Window:
    """One file's time window, its share of the rows and its drift settings."""

    part: str
    first_day: str
    last_day: str
    row_share: float
    fraud_rate: float
    tactic_mix: tuple[float, float, float]
    missing_scale: float
    amount_inflation: float
    share_3g: float
    campaign_max_days: int
    pool_sizes: tuple[int, int]
    blocked_share: float

    def days(self) -> np.ndarray:
        """Days (since 1970-01-01) of the window, first to last inclusive."""
        return np.arange(day_number(self.first_day), day_number(self.last_day) + 1)

WINDOWS = (
    Window("train", "2017-09-05", "2017-11-05", 0.50, 0.0170, (0.55, 0.38, 0.07), 1.0, 1.00, 0.20, 4, (4, 12), 0.009),
    Window("test_a", "2018-01-05", "2018-02-05", 0.25, 0.0170, (0.47, 0.33, 0.20), 1.6, 1.06, 0.12, 6, (6, 16), 0.008),
    Window("test_b", "2018-02-06", "2018-03-06", 0.25, 0.0175, (0.38, 0.30, 0.32), 2.8, 1.09, 0.10, 8, (8, 20), 0.011),
)


def day_number(date: str) -> int:
    """Days since 1970-01-01 of an ISO date."""
    return int(np.datetime64(date, "D").astype(np.int64))


def window_last_second(window: Window) -> int:
    """The window's last second (23:59:59 of its last day)."""
    return (day_number(window.last_day) + 1) * SECONDS_PER_DAY - 1
