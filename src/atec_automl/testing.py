"""Small FeatureSets with a planted, learnable signal, for tests and benchmarks of the models.

Events are in time order (row i happens before row i+1), `rows_per_day` per day. Each user has a
hidden risk; an event's fraud logit mixes two numeric columns, one categorical code and the
user's risk, which shows only in the step features of the user's past events (so a sequence
model has something to find). Grey rows are drawn mostly from true positives, as a blocking risk
system would, and their true labels are kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from atec_automl.features.featureset import FeatureSet


@dataclass
class ToyData:
    """A FeatureSet plus the labels (1, 0, -1), the true 0/1 labels and each row's day."""

    features: FeatureSet
    label: np.ndarray
    true_label: np.ndarray
    day: np.ndarray


def previous_events(user: np.ndarray, k: int) -> np.ndarray:
    """N x k positions of each row's k previous rows of the same user, most recent last, -1 padded."""
    order = np.argsort(user, kind="stable")
    sorted_user = user[order]
    seq = np.full((len(user), k), -1, dtype=np.int32)
    for lag in range(1, k + 1):
        same = np.zeros(len(user), dtype=bool)
        same[lag:] = sorted_user[lag:] == sorted_user[:-lag]
        seq[order[same], k - lag] = order[np.flatnonzero(same) - lag]
    return seq


def make_toy(n_rows: int = 6000, n_days: int = 12, n_users: int = 600, n_numeric: int = 6, seq_len: int = 8,
             n_steps: int = 2, base_rate: float = 0.05, grey_if_black: float = 0.3, grey_if_white: float = 0.02,
             seed: int = 0) -> ToyData:
    """A toy timeline of `n_rows` events over `n_days` days with a planted fraud signal (`n_steps` >= 1)."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, n_rows)
    risk = rng.normal(size=n_users)[user]
    numeric = rng.normal(size=(n_rows, n_numeric)).astype(np.float32)
    numeric[rng.random(numeric.shape) < 0.05] = np.nan
    merchant = rng.integers(-1, 20, n_rows).astype(np.int32)
    channel = rng.integers(0, 4, n_rows).astype(np.int32)
    steps = np.column_stack([risk + 0.3 * rng.normal(size=n_rows), rng.normal(size=(n_rows, n_steps - 1))])
    steps = steps.astype(np.float32)
    logit = (1.5 * np.nan_to_num(numeric[:, 0]) - 1.0 * np.nan_to_num(numeric[:, 1]) + 1.5 * (merchant == 3)
             + 1.2 * risk + np.log(base_rate / (1 - base_rate)) - 1.0)
    true_label = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    grey = rng.random(n_rows) < np.where(true_label == 1, grey_if_black, grey_if_white)
    label = np.where(grey, -1, true_label).astype(np.float32)
    table = pd.DataFrame({f"x{j}": numeric[:, j] for j in range(n_numeric)})
    table["merchant"], table["channel"] = merchant, channel
    step_names = ["risk_echo"] + [f"noise{j}" for j in range(1, n_steps)]
    features = FeatureSet(table=table, categorical=["merchant", "channel"], seq_index=previous_events(user, seq_len),
                          steps=steps, step_names=step_names, fingerprint=f"toy-{seed}")
    day = (np.arange(n_rows) * n_days) // n_rows
    return ToyData(features, label, true_label, day)
