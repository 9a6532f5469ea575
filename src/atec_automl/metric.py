"""The ATEC weighted TPR, by the organisers' rule, and AUC for reporting.

score = 0.4 * TPR@FPR=0.001 + 0.3 * TPR@FPR=0.005 + 0.3 * TPR@FPR=0.01

The official rule (`tpr_weight_funtion`): sort rows by score descending, ties keeping input order
(a stable sort); walk the rows accumulating TP and FP; for each target FPR take the TPR of the row
whose cumulative FPR is nearest to the target, the earliest such row on a tie.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.metrics import roc_auc_score

from atec_automl.errors import AtecError

TARGET_FPRS = (0.001, 0.005, 0.01)
WEIGHTS = (0.4, 0.3, 0.3)


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
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise AtecError(f"metric: labels must be 0 or 1 (drop grey and unlabelled rows first); got {y[bad][0]!r} at position {int(np.flatnonzero(bad)[0])}")
    positive = y.astype(bool)
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == len(y):
        raise AtecError(f"metric: undefined without both classes ({n_pos} positives, {len(y) - n_pos} negatives)")
    return positive, p


def atec_score(y_true: np.ndarray, y_score: np.ndarray) -> AtecScore:
    """The ATEC weighted TPR of scores `y_score` for 0/1 labels `y_true` (official rule)."""
    positive, p = _checked(y_true, y_score)
    order = np.argsort(-p, kind="stable")
    hits = positive[order]
    tp = np.cumsum(hits)
    fp = np.arange(1, len(hits) + 1) - tp
    tpr = tp / tp[-1]
    fpr = fp / fp[-1]
    tprs = [float(tpr[np.argmin(np.abs(fpr - target))]) for target in TARGET_FPRS]
    return AtecScore(float(np.dot(WEIGHTS, tprs)), *tprs)


def auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve, for reporting next to the ATEC score."""
    positive, p = _checked(y_true, y_score)
    return float(roc_auc_score(positive, p))
