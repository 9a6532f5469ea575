"""A fold's result, scored once, and the uncertainty of a mean score over folds.

`FoldResult.of_scores` scores a fold's scored rows with the ATEC metric and AUC, once; an entry is
built from its fold results without re-reading the timeline or re-scoring.

Uncertainty: `bootstrap_means` resamples each fold's scored rows (frauds and negatives separately,
so every replicate keeps the fold's class counts) and returns the mean ATEC score over folds of
each replicate. The resampled positions depend only on the rows' labels and the seed, so two
entries scored on the same rows get the same resamples: the difference of their replicate vectors
is a paired bootstrap of their score difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from atec_automl.leaderboard import Entry, Leaderboard, Predictions
from atec_automl.metric import AtecScore, atec_score, auc
from atec_automl.split import day_label

BOOTSTRAP_SEED = 20170905
INTERVAL = 0.90
PAIRED_LEVEL = 0.95


@dataclass(frozen=True)
class FoldResult:
    """One fitted and scored fold: its scored rows, their predictions and figures."""

    fold: str
    first_scored_day: int
    last_scored_day: int
    event_id: np.ndarray
    label: np.ndarray
    score: np.ndarray
    atec: AtecScore
    auc: float
    best_step: int | None
    fit_seconds: float
    predict_seconds: float

    @classmethod
    def of_scores(cls, fold: str, days: tuple[int, int], event_id: np.ndarray, label: np.ndarray,
                  score: np.ndarray, best_step: int | None = None, fit_seconds: float = 0.0,
                  predict_seconds: float = 0.0) -> FoldResult:
        """Score `score` against the 0/1 `label` of the scored rows `event_id`."""
        label = np.asarray(label).astype(np.int8)
        score = np.asarray(score, dtype=np.float64)
        return cls(fold, int(days[0]), int(days[1]), np.asarray(event_id).astype(str), label, score,
                   atec_score(label, score), auc(label, score), best_step, float(fit_seconds), float(predict_seconds))

    @property
    def frauds(self) -> int:
        """Frauds among the scored rows."""
        return int(self.label.sum())

    @property
    def negatives(self) -> int:
        """Legitimate events among the scored rows."""
        return int(len(self.label) - self.label.sum())

    def summary(self) -> dict[str, Any]:
        """The fold's figures as a plain dict, as the leaderboard stores them."""
        return {"fold": self.fold, **self.atec._asdict(), "auc": self.auc, "frauds": self.frauds,
                "negatives": self.negatives, "best_step": self.best_step,
                "first_scored_day": day_label(self.first_scored_day), "last_scored_day": day_label(self.last_scored_day)}


def resample_positions(label: np.ndarray, replicates: int, seed: int) -> np.ndarray:
    """(replicates, n) row positions: each row draws frauds among frauds and negatives among negatives."""
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(label == 1), np.flatnonzero(label != 1)
    draws = np.empty((replicates, len(label)), dtype=np.int64)
    draws[:, :len(positives)] = positives[rng.integers(0, len(positives), (replicates, len(positives)))]
    draws[:, len(positives):] = negatives[rng.integers(0, len(negatives), (replicates, len(negatives)))]
    return draws


def bootstrap_means(folds: Sequence[tuple[np.ndarray, np.ndarray]], replicates: int = 200,
                    seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Mean ATEC score over folds of each of `replicates` stratified resamples of every fold's (label, score)."""
    per_fold = []
    for k, (label, score) in enumerate(folds):
        label = np.asarray(label)
        positions = resample_positions(label, replicates, seed + k)
        per_fold.append([atec_score(label[p], np.asarray(score)[p]).score for p in positions])
    return np.mean(np.asarray(per_fold, dtype=np.float64), axis=0)


def interval(replicates: np.ndarray, level: float = INTERVAL) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap replicates."""
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def distinguishable(best: np.ndarray, other: np.ndarray, level: float = PAIRED_LEVEL) -> bool:
    """Whether `other` scores below `best` in at least `level` of their paired replicates (same rows, same seed)."""
    if len(best) != len(other) or len(best) == 0:
        return True
    return float(np.mean(best > other)) >= level


def build_entry(results: Sequence[FoldResult], replicates: int = 200, **meta: Any) -> Entry:
    """The leaderboard entry of scored folds, with its bootstrap interval; `meta` as `Entry.from_folds` takes it."""
    predictions = Predictions(
        event_id=np.concatenate([r.event_id for r in results]), label=np.concatenate([r.label for r in results]),
        score=np.concatenate([r.score for r in results]),
        fold=np.concatenate([np.full(len(r.label), r.fold) for r in results]))
    extra: dict[str, Any] = {}
    if replicates > 0:
        draws = bootstrap_means([(r.label, r.score) for r in results], replicates)
        extra.update(bootstrap=draws, score_low=interval(draws)[0], score_high=interval(draws)[1])
    extra["best_iteration"] = meta.pop("best_iteration", results[-1].best_step)
    return Entry.from_folds([r.summary() for r in results], predictions,
                            fit_seconds=meta.pop("fit_seconds", sum(r.fit_seconds for r in results)),
                            predict_seconds=meta.pop("predict_seconds", sum(r.predict_seconds for r in results)),
                            **meta, **extra)


def marks_against_best(board: Leaderboard, entries: Sequence[Entry]) -> dict[int, str]:
    """Per entry id: "best" for the first entry, "~" where a paired bootstrap cannot tell it from the best
    (same data and rows), "<" where it is worse; entries without replicates or on other rows get "-"."""
    if not entries:
        return {}
    best = entries[0]
    marks = {best.id: "best"}
    best_draws = board.bootstrap(best.id)
    for entry in entries[1:]:
        draws = board.bootstrap(entry.id) if best_draws is not None and entry.split == best.split \
            and entry.data_fingerprint == best.data_fingerprint else None
        marks[entry.id] = "-" if draws is None else ("<" if distinguishable(best_draws, draws) else "~")
    return marks


def interval_text(entry: Entry) -> str:
    """`low..high` of the entry's bootstrap interval, or "-"."""
    if entry.score_low is None or entry.score_high is None:
        return "-"
    return f"{entry.score_low:.3f}..{entry.score_high:.3f}"
