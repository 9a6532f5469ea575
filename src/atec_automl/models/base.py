"""The one interface every model family implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

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
    """fit(train, valid) / predict(data) -> probabilities / save(dir) / load(dir)."""

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
