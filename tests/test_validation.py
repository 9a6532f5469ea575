"""Scored rows are only ever scored: their labels change a fold's score and nothing else.

For every family and every grey-label policy, a fold is fitted twice on real features of small
synthetic data: once as is, once with the labels of its scored rows shuffled. The models (their
predictions on every test row), the chosen step and everything the label policy chose must be
identical; only the score may move. Early stopping on the scored rows (the old behaviour) fails it.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from atec_automl.models.base import ModelData
from atec_automl.pipeline import Prepared, fit_fold
from atec_automl.tasks._experiment import prepare, recipe
from conftest import compose_config

FAST = {
    "catboost": ["model.iterations=80", "model.early_stopping_rounds=10", "model.thread_count=1"],
    "mlp": ["model.epochs=3", "model.patience=1", "model.hidden_units=32", "trainer.cpu_threads=1"],
    "cnn_lstm": ["model.epochs=2", "model.patience=1", "model.lstm_hidden=16", "model.conv_channels=8",
                 "model.conv_layers=1", "model.head_units=16", "trainer.cpu_threads=1"],
}
POLICIES = ["as_black", "as_white", "drop", "two_step_pu"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the module's synthetic data and feature cache live."""
    return tmp_path_factory.mktemp("validation")


def config(data_dir: Path, family: str, policy: str):
    """The composed config of one family and policy on the module's small data."""
    return compose_config([
        "data.rows=40000", f"data.dir={data_dir / 'synthetic'}", f"features.cache_dir={data_dir / 'cache'}",
        f"model={family}", f"labels={policy}", *FAST[family]])


@pytest.fixture(scope="module")
def prepared(data_dir: Path) -> Prepared:
    """Data, features and folds, built once."""
    return prepare(config(data_dir, "catboost", "as_black"))


def shuffled_scored_labels(prepared: Prepared) -> Prepared:
    """The same timeline and features with the labels of the last fold's scored rows shuffled."""
    fold = prepared.folds[-1]
    frame = prepared.dataset.frame.copy()
    labels = frame["label"].to_numpy().copy()
    labels[fold.scored] = np.random.default_rng(7).permutation(labels[fold.scored])
    assert (labels[fold.scored] != prepared.labels[fold.scored]).any()
    frame["label"] = labels
    return replace(prepared, dataset=replace(prepared.dataset, frame=frame))


def test_shuffling_keeps_training_and_early_stopping_labels(prepared: Prepared) -> None:
    other = shuffled_scored_labels(prepared)
    fold = prepared.folds[-1]
    untouched = np.setdiff1d(np.arange(len(prepared.labels)), fold.scored)
    np.testing.assert_array_equal(other.labels[untouched], prepared.labels[untouched])


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("family", ["catboost", "mlp", "cnn_lstm"])
def test_scored_labels_change_the_score_only(family: str, policy: str, prepared: Prepared, data_dir: Path,
                                            tmp_path: Path) -> None:
    cfg = config(data_dir, family, policy)
    fold = prepared.folds[-1]
    test_rows = ModelData(prepared.features, prepared.dataset.part_rows("test_a"))
    original, model = fit_fold(recipe(cfg), prepared, fold, tmp_path / "a")
    shuffled, other_model = fit_fold(recipe(cfg), shuffled_scored_labels(prepared), fold, tmp_path / "b")
    assert shuffled.best_step == original.best_step is not None
    np.testing.assert_array_equal(shuffled.score, original.score)
    np.testing.assert_array_equal(other_model.predict(test_rows), model.predict(test_rows))
    assert (shuffled.atec, shuffled.auc) != (original.atec, original.auc)  # only the score moves


@pytest.mark.slow
def test_early_stopping_on_scored_rows_would_leak(prepared: Prepared, data_dir: Path, tmp_path: Path) -> None:
    cfg = config(data_dir, "catboost", "as_black")
    old_way = replace(prepared.folds[-1], early_stop=prepared.folds[-1].scored)
    original, _ = fit_fold(recipe(cfg), prepared, old_way, tmp_path / "a")
    shuffled, _ = fit_fold(recipe(cfg), shuffled_scored_labels(prepared), old_way, tmp_path / "b")
    assert shuffled.best_step != original.best_step or not np.array_equal(shuffled.score, original.score)
