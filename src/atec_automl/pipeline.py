"""The steps every task shares: data -> features -> folds, and fitting + scoring one fold.

`prepare(cfg)` loads the timeline, builds (or reads cached) features and the split's folds;
`fit_fold(cfg, prepared, fold, ...)` applies the label policy to the fold's training rows, fits
the configured model with early stopping on the fold's scored rows, and scores it there with the
ATEC metric; `refit_all(...)` fits on every labelled row with the step count chosen on validation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from atec_automl.data.dataset import Dataset
from atec_automl.data.load import load_dataset
from atec_automl.errors import AtecError
from atec_automl.features.build import build_features
from atec_automl.features.featureset import FeatureSet
from atec_automl.labels import build_policy
from atec_automl.metric import AtecScore, atec_score, auc
from atec_automl.models import FAMILIES, build_model
from atec_automl.models.base import Model, ModelData, Report
from atec_automl.split import Fold

STEP_KEYS = {"catboost": "iterations", "mlp": "epochs", "cnn_lstm": "epochs"}


@dataclass
class Prepared:
    """The timeline, its features and the validation folds of one experiment."""

    dataset: Dataset
    features: FeatureSet
    folds: list[Fold]

    @property
    def labels(self) -> np.ndarray:
        """Every timeline row's label (1, 0, -1; NaN on test rows)."""
        return self.dataset.frame["label"].to_numpy()


@dataclass
class FoldOutcome:
    """A fitted fold: the model, its predictions on the scored rows and their scores."""

    fold: Fold
    model: Model
    predictions: np.ndarray
    score: AtecScore
    auc: float
    best_iteration: int | None
    fit_seconds: float
    predict_seconds: float


def prepare(cfg: DictConfig) -> Prepared:
    """Load and validate the data, build its features, and cut the folds of `cfg.split`."""
    dataset = load_dataset(cfg.data)
    features = build_features(dataset, cfg.features)
    folds = instantiate(cfg.split).folds(dataset)
    return Prepared(dataset, features, folds)


def model_family(cfg: DictConfig) -> str:
    """The family name of `cfg.model` (catboost, mlp or cnn_lstm), from its `_target_` class."""
    target = str(cfg.model._target_)
    for family, class_path in FAMILIES.items():
        if class_path.replace(":", ".") == target:
            return family
    raise AtecError(f"model._target_ {target} is none of the model families {sorted(FAMILIES)}")


def fit_on_rows(cfg: DictConfig, prepared: Prepared, train_rows: np.ndarray, valid: ModelData | None,
                root_dir: Path, report: Report | None = None) -> tuple[Model, int | None, float]:
    """Fit `cfg.model` on `train_rows` under `cfg.labels`; returns (model, best step, seconds)."""
    policy = build_policy(cfg)

    def make_model() -> Model:
        return build_model(cfg, root_dir=root_dir)

    start = time.perf_counter()
    train = policy.apply(ModelData(prepared.features, train_rows), prepared.labels[train_rows], make_model, valid)
    model = make_model()
    result = model.fit(train, valid, report=report)
    return model, result.best_iteration, time.perf_counter() - start


def fit_fold(cfg: DictConfig, prepared: Prepared, fold: Fold, root_dir: Path, report: Report | None = None) -> FoldOutcome:
    """Fit on the fold's training rows, early-stopping on and scoring its scored rows."""
    valid = ModelData(prepared.features, fold.valid, prepared.labels[fold.valid])
    model, best_iteration, fit_seconds = fit_on_rows(cfg, prepared, fold.train, valid, root_dir, report)
    start = time.perf_counter()
    predictions = model.predict(valid)
    predict_seconds = time.perf_counter() - start
    y = prepared.labels[fold.valid]
    return FoldOutcome(fold, model, predictions, atec_score(y, predictions), auc(y, predictions),
                       best_iteration, fit_seconds, predict_seconds)


def with_fixed_steps(cfg: DictConfig, best_iteration: int | None) -> DictConfig:
    """A copy of `cfg` whose model trains exactly `best_iteration + 1` iterations or epochs, if known."""
    fixed = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    if best_iteration is not None:
        OmegaConf.update(fixed, f"model.{STEP_KEYS[model_family(cfg)]}", int(best_iteration) + 1)
    return fixed


def refit_all(cfg: DictConfig, prepared: Prepared, best_iteration: int | None, root_dir: Path) -> Model:
    """Fit on every labelled (train-part) row, for the step count chosen on validation."""
    model, _, _ = fit_on_rows(with_fixed_steps(cfg, best_iteration), prepared,
                              prepared.dataset.part_rows("train"), None, root_dir)
    return model
