"""The steps every task shares: data -> features -> folds, and fitting + scoring one fold.

`prepare(cfg)` loads the timeline, builds (or reads cached) features and the split's folds (and,
for synthetic data, the test boards' hidden labels, used for reporting only);
`fit_fold(cfg, prepared, fold, ...)` applies the label policy to the fold's training rows, fits
the configured model with early stopping on the fold's early-stopping window, and only then
predicts and scores the fold's scored rows, once; `refit_all(...)` fits on every labelled row with
the step count chosen on the early-stopping window.

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
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from atec_automl.data.dataset import Dataset
from atec_automl.data.load import load_dataset
from atec_automl.errors import AtecError
from atec_automl.evaluation import FoldResult
from atec_automl.experts import Expert, OracleExpert, ReviewExpert, check_expert_name
from atec_automl.features.build import build_features
from atec_automl.features.featureset import FeatureSet
from atec_automl.labels import ActivePU, LabelPolicy, build_policy
from atec_automl.models import FAMILIES, build_model, family_class
from atec_automl.models.base import Model, ModelData, Report
from atec_automl.reviews import ReviewStore, read_review_file, reviewed_labels, store_path
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


def prepare(cfg: DictConfig) -> Prepared:
    """Load and validate the data, read the reviewed labels (adding `labels.reviews` first), build the
    features, cut the folds of `cfg.split`, read hidden labels if any."""
    check_expert(cfg)
    dataset = load_dataset(cfg.data)
    reviews = read_reviews(cfg, dataset)
    features = build_features(dataset, cfg.features)
    split = instantiate(cfg.split)
    folds = split.folds(dataset)
    hidden = cfg.data.get("hidden_labels")
    truth = HiddenTruth.load(Path(hidden), dataset, split.scored_days) if hidden and Path(hidden).exists() else None
    return Prepared(dataset, features, folds, truth, reviews)


def check_expert(cfg: DictConfig) -> None:
    """Refuse, before any work, an oracle expert on data without hidden labels (real data)."""
    if "expert" in cfg.labels and check_expert_name(str(cfg.labels.expert)) == "oracle" and not cfg.data.get("hidden_labels"):
        raise AtecError(f"labels.expert=oracle answers from synthetic data's hidden labels, and data.train="
                        f"{cfg.data.get('train')} has none (real data): use labels.expert=file with labels.reviews=PATH")


def review_store(cfg: DictConfig) -> ReviewStore:
    """The reviewed-labels store of `cfg` (`leaderboard.reviews`, else beside `leaderboard.path`)."""
    return ReviewStore(store_path(cfg.leaderboard.path, cfg.leaderboard.get("reviews")))


def read_reviews(cfg: DictConfig, dataset: Dataset) -> dict[str, int]:
    """Add the filled review file `labels.reviews` (if given) to the store, then read the whole store."""
    store = review_store(cfg)
    reviews_file = cfg.labels.get("reviews")
    if reviews_file:
        train_ids = dataset.frame["event_id"].to_numpy()[dataset.part_rows("train")].astype(str)
        ids, labels = read_review_file(Path(str(reviews_file)), train_ids)
        store.add(ids, labels, source=str(reviews_file))
    return store.read()


def expert_of(cfg: DictConfig, prepared: Prepared) -> Expert:
    """The expert `labels.expert` names: the hidden truth (oracle, synthetic data) or the review store (file)."""
    name = check_expert_name(str(cfg.labels.get("expert", "oracle")))
    if name == "oracle":
        return OracleExpert.load(cfg.data.get("hidden_labels"), prepared.dataset, f"data.train={cfg.data.get('train')}")
    return ReviewExpert.of(prepared.reviews or {}, prepared.dataset)


def label_policy(cfg: DictConfig, prepared: Prepared) -> LabelPolicy:
    """The label policy of `cfg.labels`, with its expert if it asks one."""
    policy = build_policy(cfg)
    if isinstance(policy, ActivePU):
        policy.expert = expert_of(cfg, prepared)
    return policy


def policy_queries(policy: LabelPolicy, prepared: Prepared) -> list[dict] | None:
    """What an active policy asked in its last `apply` (event id, round, score, answer), else None."""
    if not isinstance(policy, ActivePU):
        return None
    ids = prepared.dataset.frame["event_id"].to_numpy()
    return [{"event_id": str(ids[q.row]), "round": q.round, "score": round(q.score, 6),
             "answer": None if np.isnan(q.answer) else int(q.answer)} for q in policy.queries]


def model_family(cfg: DictConfig) -> str:
    """The family name of `cfg.model` (catboost, mlp or cnn_lstm), from its `_target_` class."""
    target = str(cfg.model._target_)
    for family, class_path in FAMILIES.items():
        if class_path.replace(":", ".") == target:
            return family
    raise AtecError(f"model._target_ {target} is none of the model families {sorted(FAMILIES)}")


def fit_on_rows(cfg: DictConfig, prepared: Prepared, train_rows: np.ndarray, valid: ModelData | None,
                root_dir: Path, report: Report | None = None,
                policy: LabelPolicy | None = None) -> tuple[Model, int | None, float]:
    """Fit `cfg.model` on `train_rows` under `policy` (default: `cfg.labels`'s); returns (model, best step, seconds)."""
    policy = label_policy(cfg, prepared) if policy is None else policy

    def make_model() -> Model:
        return build_model(cfg, root_dir=root_dir)

    start = time.perf_counter()
    train = policy.apply(ModelData(prepared.features, train_rows), prepared.training_labels[train_rows], make_model, valid)
    model = make_model()
    result = model.fit(train, valid, report=report)
    return model, result.best_iteration, time.perf_counter() - start


def fit_fold(cfg: DictConfig, prepared: Prepared, fold: Fold, root_dir: Path,
             report: Report | None = None, policy: LabelPolicy | None = None) -> tuple[FoldResult, Model]:
    """Fit on the fold's training rows, early-stopping on its early-stopping window; then score its scored rows.

    The scored rows are read once, after the model is final: nothing they hold can change the
    model, its step count or anything a label policy chose. Without an early-stopping window
    (`split.early_stopping_days=0`) the model trains its configured step count.
    """
    stop = fold.early_stop
    valid = ModelData(prepared.features, stop, prepared.training_labels[stop]) if len(stop) else None
    model, best_iteration, fit_seconds = fit_on_rows(cfg, prepared, fold.train, valid, root_dir,
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


def with_fixed_steps(cfg: DictConfig, best_iteration: int | None) -> DictConfig:
    """A copy of `cfg` whose model trains exactly `best_iteration + 1` iterations or epochs, if known."""
    fixed = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    if best_iteration is not None:
        OmegaConf.update(fixed, f"model.{family_class(model_family(cfg)).step_key}", int(best_iteration) + 1)
    return fixed


def refit_all(cfg: DictConfig, prepared: Prepared, best_iteration: int | None, root_dir: Path) -> Model:
    """Fit on every labelled (train-part) row, for the step count chosen on validation."""
    model, _, _ = fit_on_rows(with_fixed_steps(cfg, best_iteration), prepared,
                              prepared.dataset.part_rows("train"), None, root_dir)
    return model
