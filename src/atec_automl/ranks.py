"""Average ranks and Spearman's rank correlation in numpy, the values scipy.stats gives.

The AUC, a blend's rank average, the sweep's trust line and the report's parameter importances
rank values; importing scipy.stats for that costs most of a second of start-up in every task.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def average_ranks(values: ArrayLike) -> np.ndarray:
    """1-based ranks of `values` (float64), tied values sharing their mean rank: scipy's `rankdata`."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rho of two equally long samples (the Pearson correlation of their average ranks);
    NaN when either is constant, as scipy's `spearmanr` gives."""
    dx, dy = average_ranks(x), average_ranks(y)
    dx, dy = dx - dx.mean(), dy - dy.mean()
    scale = float(np.sqrt((dx * dx).sum() * (dy * dy).sum()))
    return float("nan") if scale == 0.0 else float(np.clip((dx * dy).sum() / scale, -1.0, 1.0))
