"""Time-respecting validation: train on earlier days, score the last days of the labelled period.

A fold has three time windows, in this order:

    training days | early-stopping window | gap | scored days

The last fold scores the last `scored_days` calendar days of the train part; `gap_days` before
them are neither trained on nor scored (they stay visible as feature history, since features are
built on the whole timeline); the `early_stopping_days` before the gap are the early-stopping
window; training rows are the labelled rows of all earlier days. Anything that chooses (early
stopping, the best epoch, a label policy's inner models) sees only the training rows and the
early-stopping window; the scored rows give the fold its score and nothing else. Further folds
step the windows back by `step_days` (forward chaining); folds are returned oldest first.

Training rows keep every label (1, 0, -1: the label policy decides about grey rows); the
early-stopping and scored windows keep only their 0/1 rows, since the metrics are undefined on grey.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from atec_automl.data.dataset import Dataset
from atec_automl.errors import AtecError


def day_label(day: int) -> str:
    """ISO date of a day number (days since 1970-01-01)."""
    return (date(1970, 1, 1) + timedelta(days=int(day))).isoformat()


@dataclass(frozen=True)
class Fold:
    """Row positions of one fold: `train` (any label), `early_stop` and `scored` (0/1 rows of their days)."""

    name: str
    train: np.ndarray
    early_stop: np.ndarray
    scored: np.ndarray
    first_scored_day: int
    last_scored_day: int

    def describe(self) -> str:
        """One line: the fold's name, scored days and row counts."""
        return (f"{self.name}: scored {day_label(self.first_scored_day)}..{day_label(self.last_scored_day)}, "
                f"{len(self.train)} train rows, {len(self.early_stop)} early-stopping rows, "
                f"{len(self.scored)} scored rows")


def last_days_rows(days: np.ndarray, rows: np.ndarray, n_days: int) -> np.ndarray:
    """The subset of `rows` whose calendar day is among the last `n_days` days of those rows."""
    if len(rows) == 0:
        return rows
    return rows[days[rows] > days[rows].max() - n_days]


@dataclass(frozen=True)
class TimeSplit:
    """Forward-chaining folds over the labelled period (see the module docstring)."""

    scored_days: int = 3
    gap_days: int = 0
    n_folds: int = 3
    step_days: int | None = None
    min_train_days: int = 7
    early_stopping_days: int = 1
    min_frauds: int = 30

    def folds(self, dataset: Dataset) -> list[Fold]:
        """The folds, oldest first; raises if the labelled period is too short for them."""
        if self.scored_days < 1 or self.gap_days < 0 or self.n_folds < 1 or self.early_stopping_days < 0:
            raise AtecError(f"split: need scored_days >= 1, gap_days >= 0, n_folds >= 1, early_stopping_days >= 0; "
                            f"got {self}")
        days = dataset.day()
        labelled = dataset.part_rows("train")
        if len(labelled) == 0:
            raise AtecError("split: the data has no labelled (train) rows")
        label = dataset.frame["label"].to_numpy()
        last_day = int(days[labelled].max())
        first_day = int(days[labelled].min())
        step = self.step_days or self.scored_days
        folds = [self._fold(k, last_day - k * step, first_day, days, labelled, label) for k in range(self.n_folds)]
        return folds[::-1]

    def _fold(self, k: int, last_scored: int, first_day: int, days: np.ndarray,
              labelled: np.ndarray, label: np.ndarray) -> Fold:
        """Fold `k` steps back, whose scored window ends on day `last_scored`."""
        first_scored = last_scored - self.scored_days + 1
        stop_end = first_scored - self.gap_days
        train_end = stop_end - self.early_stopping_days
        if train_end - first_day < self.min_train_days:
            raise AtecError(
                f"split: fold {k} would train on {max(train_end - first_day, 0)} days "
                f"(< min_train_days={self.min_train_days}); use fewer folds, a smaller gap or fewer scored days")
        labelled_days = days[labelled]
        train = labelled[labelled_days < train_end]
        early_stop = _binary_rows(labelled, labelled_days, label, train_end, stop_end - 1)
        scored = _binary_rows(labelled, labelled_days, label, first_scored, last_scored)
        fold = Fold(f"fold{self.n_folds - 1 - k}", train, early_stop, scored, first_scored, last_scored)
        for window, rows in (("scored", scored), ("early-stopping", early_stop)):
            positives = int((label[rows] == 1).sum())
            if (len(rows) or window == "scored") and (positives == 0 or positives == len(rows)):
                raise AtecError(f"split: {fold.describe()} has {positives} positives among its {window} rows; "
                                "it needs both classes: use more days for it or fewer folds")
        return fold


def _binary_rows(labelled: np.ndarray, labelled_days: np.ndarray, label: np.ndarray, first: int, last: int) -> np.ndarray:
    """The 0/1-labelled rows among `labelled` whose day lies in first..last (inclusive)."""
    in_window = labelled[(labelled_days >= first) & (labelled_days <= last)]
    return in_window[np.isin(label[in_window], (0.0, 1.0))]


def few_frauds_warning(folds: list[Fold], label: np.ndarray, min_frauds: int) -> str | None:
    """One warning line if a fold scores fewer than `min_frauds` frauds (each TPR then moves in coarse steps)."""
    counts = [int((label[fold.scored] == 1).sum()) for fold in folds]
    if min(counts) >= min_frauds:
        return None
    return (f"warning: the scored windows hold {', '.join(map(str, counts))} frauds per fold (< split.min_frauds="
            f"{min_frauds}); each TPR moves in steps of 1/{min(counts)}, so close scores are noise: "
            "score more days (split.scored_days) or use more data")
