"""Time-respecting validation: train on earlier days, score the last days of the labelled period.

Fold 0 scores the last `scored_days` calendar days of the train part; `gap_days` before them are
neither trained on nor scored (they stay visible as feature history, since features are built on
the whole timeline); training rows are the labelled rows of all earlier days. Further folds step
the window back by `step_days` (forward chaining); folds are returned oldest first.

Training rows keep every label (1, 0, -1: the label policy decides about grey rows); scored rows
are only the 0/1 rows of the window, since the metric is undefined on grey.
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
    """Row positions of one fold: `train` (any label) and `valid` (0/1 rows of the scored days)."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    first_scored_day: int
    last_scored_day: int

    def describe(self) -> str:
        """One line: the fold's name, scored days and row counts."""
        return (f"{self.name}: scored {day_label(self.first_scored_day)}..{day_label(self.last_scored_day)}, "
                f"{len(self.train)} train rows, {len(self.valid)} scored rows")


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
    n_folds: int = 1
    step_days: int | None = None
    min_train_days: int = 7

    def folds(self, dataset: Dataset) -> list[Fold]:
        """The folds, oldest first; raises if the labelled period is too short for them."""
        if self.scored_days < 1 or self.gap_days < 0 or self.n_folds < 1:
            raise AtecError(f"split: need scored_days >= 1, gap_days >= 0, n_folds >= 1; got {self}")
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
        train_end = first_scored - self.gap_days
        if train_end - first_day < self.min_train_days:
            raise AtecError(
                f"split: fold {k} would train on {max(train_end - first_day, 0)} days "
                f"(< min_train_days={self.min_train_days}); use fewer folds, a smaller gap or fewer scored days")
        labelled_days = days[labelled]
        train = labelled[labelled_days < train_end]
        in_window = labelled[(labelled_days >= first_scored) & (labelled_days <= last_scored)]
        valid = in_window[np.isin(label[in_window], (0.0, 1.0))]
        fold = Fold(f"fold{self.n_folds - 1 - k}", train, valid, first_scored, last_scored)
        positives = int((label[valid] == 1).sum())
        if positives == 0 or positives == len(valid):
            raise AtecError(f"split: {fold.describe()} has {positives} positives among its scored rows; "
                            "the ATEC score needs both classes: score more days or use fewer folds")
        return fold
