"""The one interface every model family implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar

import numpy as np

from atec_automl.errors import AtecError

if TYPE_CHECKING:
    from atec_automl.features.featureset import FeatureSet


Report = Callable[[int, float], None]
"""`report(step, value)`: called with the validation metric after each epoch (neural) or iteration
(CatBoost); it may raise `optuna.TrialPruned`, which `fit` lets through after stopping training."""


@dataclass
class ModelData:
    """Rows of the timeline a model trains on or predicts.

    `rows` are positions in `features` (sequence indices point into the whole timeline, so the
    whole FeatureSet travels with the rows); `target` holds soft or hard targets in [0, 1].
    """

    features: FeatureSet
    rows: np.ndarray
    target: np.ndarray | None = None
    weight: np.ndarray | None = None

    def check_rows(self, what: str) -> None:
        """Rows must be 1-D positions inside the FeatureSet's table; `what` names the caller in the error."""
        rows = np.asarray(self.rows)
        n = self.features.n_rows
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise AtecError(f"{what}: rows must be a 1-D integer array of positions, got {rows.dtype} {rows.shape}")
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise AtecError(f"{what}: row positions must lie in 0..{n - 1}, got {rows.min()}..{rows.max()}")

    def checked_target(self, what: str, hard: bool) -> np.ndarray:
        """The float64 targets: one per row, in [0, 1] (exactly 0/1 when `hard`), both classes present."""
        self.check_rows(what)
        if self.target is None:
            raise AtecError(f"{what}: ModelData.target is missing")
        target = np.asarray(self.target, dtype=np.float64)
        if target.shape != (len(self.rows),):
            raise AtecError(f"{what}: {target.shape[0] if target.ndim else 0} targets for {len(self.rows)} rows")
        if np.isnan(target).any() or (target < 0).any() or (target > 1).any():
            raise AtecError(f"{what}: targets must lie in [0, 1] (apply a label policy to grey rows first)")
        if hard and not np.isin(target, (0.0, 1.0)).all():
            raise AtecError(f"{what}: targets must be exactly 0 or 1 on scored rows")
        if not ((target > 0).any() and (target < 1).any()):
            raise AtecError(f"{what}: needs both positive and negative targets, got {len(target)} rows of one class")
        if self.weight is not None and np.shape(self.weight) != target.shape:
            raise AtecError(f"{what}: {np.shape(self.weight)} weights for {len(self.rows)} rows")
        return target


@dataclass
class FitResult:
    """What fitting learned that a refit on more data needs, and the validation figures.

    `valid_score` is the best value of the early-stopping metric on the validation rows (read off
    training, not by predicting them again); None without validation rows.
    """

    best_iteration: int | None = None
    valid_score: float | None = None
    history: list[dict] | None = None


class Model(ABC):
    """fit(train, valid) / predict(data) -> probabilities / save(dir) / load(dir).

    `family` is the family's name (`model=<family>`, `model.json`); `step_key` the parameter that
    counts its training steps (iterations or epochs), which a refit fixes to the best step.
    """

    family: ClassVar[str]
    step_key: ClassVar[str]

    @abstractmethod
    def fit(self, train: ModelData, valid: ModelData | None = None, report: Report | None = None) -> FitResult:
        """Train on `train`, early-stopping on `valid` when given, calling `report` per step."""

    @abstractmethod
    def predict(self, data: ModelData) -> np.ndarray:
        """Probability-like scores, float64, one per row of `data`."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write everything `load` needs into `directory`."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> "Model":
        """Read a model written by `save`."""
