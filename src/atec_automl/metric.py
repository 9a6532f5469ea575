"""The ATEC weighted TPR, by the organisers' rule, and AUC for reporting.

score = 0.4 * TPR@FPR=0.001 + 0.3 * TPR@FPR=0.005 + 0.3 * TPR@FPR=0.01

The official rule (`tpr_weight_funtion`): sort rows by score descending, ties keeping input order
(a stable sort); walk the rows accumulating TP and FP; for each target FPR take the TPR of the row
whose cumulative FPR is nearest to the target, the earliest such row on a tie.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from atec_automl.errors import AtecError
from atec_automl.ranks import average_ranks

TARGET_FPRS = (0.001, 0.005, 0.01)
WEIGHTS = (0.4, 0.3, 0.3)
FLOOR_SAMPLE_ROWS = 1 << 16  # rows sampled to bound the FPR cut from below before the exact search


class AtecScore(NamedTuple):
    """The weighted score and its three TPRs."""

    score: float
    tpr1: float
    tpr2: float
    tpr3: float


def _checked(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels as bool, scores as float64) or raise a one-line error."""
    y = np.asarray(y_true)
    p = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape:
        raise AtecError(f"metric: labels and scores must be 1-D of equal length, got {y.shape} and {p.shape}")
    if np.isnan(p).any():
        raise AtecError(f"metric: {int(np.isnan(p).sum())} scores are NaN (first at position {int(np.flatnonzero(np.isnan(p))[0])})")
    positive = y == 1
    n_pos = int(np.count_nonzero(positive))
    n_neg = int(np.count_nonzero(y == 0))
    if n_pos + n_neg != len(y):
        first = int(np.flatnonzero((y != 0) & (y != 1))[0])
        raise AtecError(f"metric: labels must be 0 or 1 (drop grey and unlabelled rows first); got {y[first]!r} at position {first}")
    if n_pos == 0 or n_neg == 0:
        raise AtecError(f"metric: undefined without both classes ({n_pos} positives, {n_neg} negatives)")
    return positive, p


def atec_score(y_true: np.ndarray, y_score: np.ndarray) -> AtecScore:
    """The ATEC weighted TPR of scores `y_score` for 0/1 labels `y_true` (official rule).

    Only the head of the ranking can hold the chosen rows, so only that head is sorted: see `_head`.
    """
    positive, p = _checked(y_true, y_score)
    n_pos = int(np.count_nonzero(positive))
    n_neg = len(p) - n_pos
    head = _head(p, ~positive, math.ceil(max(TARGET_FPRS) * n_neg) + 1)
    hits = positive[head]
    tp = np.cumsum(hits)
    fp = np.arange(1, len(hits) + 1) - tp
    tpr = tp / n_pos
    fpr = fp / n_neg
    tprs = [float(tpr[np.argmin(np.abs(fpr - target))]) for target in TARGET_FPRS]
    return AtecScore(float(np.dot(WEIGHTS, tprs)), *tprs)


def _head(p: np.ndarray, negative: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the first rows of the full stable descending order, up to at least the `k`-th negative.

    The cut is the `k`-th highest negative score; every row scoring at or above it (ties with the
    cut included) is taken, and that set is exactly a prefix of the full stable order, in which it
    is sorted the same way. The prefix holds a row whose FPR exceeds the largest target (k negatives,
    k > max target * negatives); from the first row at or past a target, FPR and thus the distance
    to the target only grow, so the earliest nearest row of every target lies in the prefix.
    """
    rows = _rows_at_or_above_cut(p, negative, k)
    return rows[np.argsort(-p[rows], kind="stable")]


def _rows_at_or_above_cut(p: np.ndarray, negative: np.ndarray, k: int) -> np.ndarray:
    """Indices, in input order, of the rows scoring at or above the `k`-th highest negative score.

    The cut is searched among the rows reaching a sampled floor; if fewer than `k` negatives reach
    it (the sample misled), among all rows. Either way the `k` highest negatives are among those
    searched, so the cut is exact.
    """
    if k >= np.count_nonzero(negative):
        return np.arange(len(p))
    candidates = np.flatnonzero(p >= _sampled_floor(p, negative, k))
    candidate_negatives = p[candidates[negative[candidates]]]
    if len(candidate_negatives) < k:
        candidates, candidate_negatives = np.arange(len(p)), p[negative]
    cut = _kth_largest(candidate_negatives, k)
    return candidates[p[candidates] >= cut]


def _sampled_floor(p: np.ndarray, negative: np.ndarray, k: int) -> float:
    """A score that about 2 * `k` negatives reach, judged on a strided sample (-inf for small inputs)."""
    stride = len(p) // FLOOR_SAMPLE_ROWS
    if stride < 2:
        return -math.inf
    sample = p[::stride][negative[::stride]]
    rank = 2 * k // stride + 32
    return -math.inf if rank > len(sample) else _kth_largest(sample, rank)


def _kth_largest(values: np.ndarray, k: int) -> float:
    """The `k`-th largest of `values` (1-based), by partition."""
    return float(np.partition(values, len(values) - k)[len(values) - k])


def auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve, for reporting next to the ATEC score: the Mann-Whitney statistic from the
    scores' average ranks (a positive tied with a negative counts one half), the value of sklearn's
    `roc_auc_score`, without importing sklearn (most of a second of start-up for every task that
    reports an AUC). The rank sums are exact in float64 up to 2^26 rows; one division rounds."""
    positive, p = _checked(y_true, y_score)
    n_pos = int(np.count_nonzero(positive))
    n_neg = len(p) - n_pos
    rank_sum = float(average_ranks(p)[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
