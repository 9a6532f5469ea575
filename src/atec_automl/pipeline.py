"""The steps every task shares once the data is prepared: fitting + scoring one fold, and the refit.

`Prepared` holds the timeline, its features and the split's folds (and, for synthetic data, the
test boards' hidden labels, used for reporting only); the task layer builds it
(`tasks._experiment.prepare`). `fit_fold(recipe, prepared, fold, ...)` applies the recipe's label
policy to the fold's training rows, fits the recipe's model with early stopping on the fold's
early-stopping window, and only then predicts and scores the fold's scored rows, once;
`refit_all(...)` fits on every labelled row with the step count chosen on the early-stopping window.

Reviewed labels (the store beside the leaderboard, `atec_automl.reviews`) replace the raw labels of
training and early-stopping rows; scored rows keep their raw labels, so that scores stay comparable
from one review round to the next.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from atec_automl.data.dataset import Dataset
from atec_automl.evaluation import FoldResult
from atec_automl.experts import Expert, OracleExpert, ReviewExpert, check_expert_name
from atec_automl.features.featureset import FeatureSet
from atec_automl.labels import ActivePU, LabelPolicy
from atec_automl.models.base import Model, ModelData, Report
from atec_automl.recipe import ExpertSource, Recipe
from atec_automl.reviews import reviewed_labels
from atec_automl.split import Fold
from atec_automl.truth import HiddenTruth


@dataclass
class Prepared:
    """The timeline, its features and the validation folds of one experiment."""

    dataset: Dataset
    features: FeatureSet
    folds: list[Fold]
    truth: HiddenTruth | None = None
    reviews: dict[str, int] | None = None

    @property
    def labels(self) -> np.ndarray:
        """Every timeline row's raw label (1, 0, -1; NaN on test rows): what scored rows are scored against."""
        return self.dataset.frame["label"].to_numpy()

    @cached_property
    def training_labels(self) -> np.ndarray:
        """The raw labels with each reviewed training row's reviewed label instead: what models train on."""
        labels = self.labels
        if not self.reviews:
            return labels
        reviewed = reviewed_labels(self.reviews, self.dataset.frame["event_id"].to_numpy(),
                                   (self.dataset.frame["part"] == "train").to_numpy())
        return np.where(np.isnan(reviewed), labels, reviewed).astype(labels.dtype)


def expert_of(source: ExpertSource, prepared: Prepared) -> Expert:
    """The expert `source` names: the hidden truth (oracle, synthetic data) or the review store (file)."""
    name = check_expert_name(source.name)
    if name == "oracle":
        return OracleExpert.load(source.hidden_labels, prepared.dataset, source.data_name)
    return ReviewExpert.of(prepared.reviews or {}, prepared.dataset)


def label_policy(recipe: Recipe, prepared: Prepared) -> LabelPolicy:
    """A fresh copy of the recipe's label policy, with its expert if it asks one."""
    policy = recipe.new_policy()
    if isinstance(policy, ActivePU):
        policy.expert = expert_of(recipe.expert, prepared)
    return policy


def policy_queries(policy: LabelPolicy, prepared: Prepared) -> list[dict] | None:
    """What an active policy asked in its last `apply` (event id, round, score, answer), else None."""
    if not isinstance(policy, ActivePU):
        return None
    ids = prepared.dataset.frame["event_id"].to_numpy()
    return [{"event_id": str(ids[q.row]), "round": q.round, "score": round(q.score, 6),
             "answer": None if np.isnan(q.answer) else int(q.answer)} for q in policy.queries]


def fit_on_rows(recipe: Recipe, prepared: Prepared, train_rows: np.ndarray, valid: ModelData | None,
                root_dir: Path, report: Report | None = None,
                policy: LabelPolicy | None = None) -> tuple[Model, int | None, float]:
    """Fit the recipe's model on `train_rows` under `policy` (default: the recipe's); returns (model, best step, seconds)."""
    policy = label_policy(recipe, prepared) if policy is None else policy

    def make_model() -> Model:
        return recipe.build_model(root_dir)

    start = time.perf_counter()
    train = policy.apply(ModelData(prepared.features, train_rows), prepared.training_labels[train_rows], make_model, valid)
    model = make_model()
    result = model.fit(train, valid, report=report)
    return model, result.best_iteration, time.perf_counter() - start


def fit_fold(recipe: Recipe, prepared: Prepared, fold: Fold, root_dir: Path,
             report: Report | None = None, policy: LabelPolicy | None = None) -> tuple[FoldResult, Model]:
    """Fit on the fold's training rows, early-stopping on its early-stopping window; then score its scored rows.

    The scored rows are read once, after the model is final: nothing they hold can change the
    model, its step count or anything a label policy chose. Without an early-stopping window
    (`split.early_stopping_days=0`) the model trains the recipe's step count.
    """
    stop = fold.early_stop
    valid = ModelData(prepared.features, stop, prepared.training_labels[stop]) if len(stop) else None
    model, best_iteration, fit_seconds = fit_on_rows(recipe, prepared, fold.train, valid, root_dir,
                                                     report if valid is not None else None, policy)
    start = time.perf_counter()
    predictions = model.predict(ModelData(prepared.features, fold.scored))
    predict_seconds = time.perf_counter() - start
    result = FoldResult.of_scores(fold.name, (fold.first_scored_day, fold.last_scored_day),
                                  prepared.dataset.frame["event_id"].to_numpy()[fold.scored],
                                  prepared.labels[fold.scored], predictions, best_iteration, fit_seconds, predict_seconds)
    return result, model


def predict_boards(model: Model, prepared: Prepared) -> dict[str, np.ndarray]:
    """The model's scores of every test board's rows (in board order), float32."""
    boards = {}
    for board in ("test_a", "test_b"):
        rows = prepared.dataset.part_rows(board)
        if len(rows):
            boards[board] = model.predict(ModelData(prepared.features, rows)).astype(np.float32)
    return boards


def refit_all(recipe: Recipe, prepared: Prepared, best_iteration: int | None, root_dir: Path) -> Model:
    """Fit on every labelled (train-part) row, for the step count chosen on validation (`best_iteration + 1`)."""
    fixed = recipe if best_iteration is None else recipe.with_steps(best_iteration + 1)
    model, _, _ = fit_on_rows(fixed, prepared,
                              prepared.dataset.part_rows("train"), None, root_dir)
    return model
