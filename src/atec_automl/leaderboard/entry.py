"""What the leaderboard records: an `Entry` (one scored model) and its `Predictions` on the scored days.

`Predictions` also holds their compact encoding: the scores as byte-shuffled float32 in a
compressed npz blob, with the few scores kept exactly whose rounding to float32 would merge two
distinct values (so ranks, ties and every ATEC score on the stored scores are those of the
originals); the rows (event ids, labels, fold names), which all trials on the same data and split
share, as a blob of their own keyed by their content hash.
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atec_automl.errors import AtecError
from atec_automl.models import FAMILIES as MODEL_FAMILIES
from atec_automl.provenance import current_git_commit

OUTSIDE_FAMILIES = ("blend", "file")
"""Entries not made by one model class: a blend of entries, a scored prediction file (`task=score`)."""
FAMILIES = (*MODEL_FAMILIES, *OUTSIDE_FAMILIES)
METRICS = ("score", "tpr1", "tpr2", "tpr3", "auc")


@dataclass(frozen=True)
class Predictions:
    """Scored-days predictions of one entry, aligned arrays: event id, 0/1 label, score, fold name."""

    event_id: np.ndarray
    label: np.ndarray
    score: np.ndarray
    fold: np.ndarray

    def _row_arrays(self) -> dict[str, np.ndarray]:
        """Event ids and fold names as UTF-8 bytes, labels as int8: what identifies the rows."""
        return {"event_id": np.char.encode(self.event_id.astype(str), "utf-8"), "label": self.label.astype(np.int8),
                "fold": np.char.encode(self.fold.astype(str), "utf-8")}

    def rows_npz(self) -> bytes:
        """The rows (event id, label, fold) as a compressed npz blob (no pickled objects)."""
        return npz_bytes(self._row_arrays())

    def score_npz(self) -> bytes:
        """The scores as a compressed npz blob: float32, byte-shuffled (the exponent bytes compress),
        and exactly (float64) on the rows whose distinct values float32 would merge into one.

        Rounding to float32 keeps the order; only such merges could add ties, so the stored
        scores rank, tie and score exactly as the originals do."""
        score = np.asarray(self.score, dtype=np.float64)
        narrow = score.astype("<f4")
        distinct = np.unique(score)
        merged = np.flatnonzero(distinct[1:].astype(np.float32) == distinct[:-1].astype(np.float32))
        exact_rows = np.flatnonzero(np.isin(score, np.union1d(distinct[merged], distinct[merged + 1])))
        shuffled = np.ascontiguousarray(narrow.view(np.uint8).reshape(-1, 4).T)
        return npz_bytes({"shuffled": shuffled, "exact_rows": exact_rows.astype(np.uint32), "exact": score[exact_rows]})

    @staticmethod
    def _scores(stored: Any) -> np.ndarray:
        """The float64 scores of an opened `score_npz` blob."""
        score = np.ascontiguousarray(stored["shuffled"].T).view("<f4").ravel().astype(np.float64)
        score[stored["exact_rows"]] = stored["exact"]
        return score

    @classmethod
    def from_npz(cls, rows_blob: bytes, score_blob: bytes) -> Predictions:
        """Inverse of `rows_npz` and `score_npz`."""
        with np.load(io.BytesIO(rows_blob), allow_pickle=False) as rows, \
                np.load(io.BytesIO(score_blob), allow_pickle=False) as scores:
            return cls(np.char.decode(rows["event_id"], "utf-8"), rows["label"], cls._scores(scores),
                       np.char.decode(rows["fold"], "utf-8"))

    def rows_digest(self) -> str:
        """Content hash of the rows, the key of their shared row set."""
        return array_digest(self._row_arrays().values())

    def digest(self) -> str:
        """Content hash of rows and scores, the key of entries that have no trial number."""
        return array_digest([*self._row_arrays().values(), self.score.astype(np.float64)])


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays as the bytes of a compressed npz file."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def array_digest(arrays: Iterable[np.ndarray]) -> str:
    """A short SHA-256 of the arrays' bytes (with their dtypes and lengths)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype.str}:{len(array)};".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Entry:
    """One leaderboard row; `id` and `created_at` are assigned by `Leaderboard.add`.

    `fold_scores` holds one dict per fold (fold, score, tpr1, tpr2, tpr3, auc, frauds, negatives,
    best_step, first_scored_day, last_scored_day); the top-level metrics are their means and
    `frauds` their total. `best_iteration` is the iteration or epoch count a refit on all data
    should use; `policy` the grey-label policy. `score_low`..`score_high` is the bootstrap interval
    of the mean score, `bootstrap` its replicates (paired across entries on the same rows);
    `true_a` / `true_b` the true board scores where hidden labels exist (synthetic data).
    `predictions` (scored rows), `bootstrap` and `test_scores` (each test board's rows, in board
    order) are None on entries read by `ranked` or `get`; load them with `Leaderboard.predictions`,
    `bootstrap` and `test_scores`.
    """

    family: str
    study: str
    trial: int | None
    params: dict[str, Any]
    config_yaml: str
    data_fingerprint: str
    split: str
    fold_scores: list[dict[str, Any]]
    score: float
    tpr1: float
    tpr2: float
    tpr3: float
    auc: float
    fit_seconds: float
    predict_seconds: float
    git_commit: str
    best_iteration: int | None = None
    policy: str = ""
    frauds: int = 0
    score_low: float | None = None
    score_high: float | None = None
    true_a: float | None = None
    true_b: float | None = None
    predictions: Predictions | None = field(default=None, repr=False)
    bootstrap: np.ndarray | None = field(default=None, repr=False)
    test_scores: dict[str, np.ndarray] | None = field(default=None, repr=False)
    confirmed: bool = True
    created_at: str | None = None
    id: int | None = None
    key: str | None = None

    @classmethod
    def from_folds(cls, fold_scores: Sequence[dict[str, Any]], predictions: Predictions, *, family: str, study: str,
                   trial: int | None, params: dict[str, Any], config_yaml: str, data_fingerprint: str, split: str,
                   fit_seconds: float, predict_seconds: float, git_commit: str | None = None, **extra: Any) -> Entry:
        """The entry of already-scored folds: metrics are the means of `fold_scores`, frauds their total."""
        if not fold_scores:
            raise AtecError("leaderboard: an entry needs at least one scored fold")
        means = {name: float(np.mean([s[name] for s in fold_scores])) for name in METRICS}
        return cls(family=family, study=study, trial=trial, params=dict(params), config_yaml=config_yaml,
                   data_fingerprint=data_fingerprint, split=split, fold_scores=list(fold_scores), **means,
                   fit_seconds=float(fit_seconds), predict_seconds=float(predict_seconds),
                   git_commit=git_commit or current_git_commit(),
                   frauds=int(sum(s.get("frauds", 0) for s in fold_scores)), predictions=predictions, **extra)

    def entry_key(self) -> str:
        """Unique key: `key` if set, else `study/trial`, else `study/` + a hash of the predictions."""
        if self.key:
            return self.key
        if self.trial is not None:
            return f"{self.study}/{self.trial}"
        if self.predictions is None:
            raise AtecError(f"leaderboard: entry of study {self.study!r} has neither a trial number nor predictions")
        return f"{self.study}/{self.data_fingerprint[:12]}-{self.predictions.digest()}"

    def label(self) -> str:
        """`study/trial`, or just the study when there is no trial number."""
        return self.study if self.trial is None else f"{self.study}/{self.trial}"
