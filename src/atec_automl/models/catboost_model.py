"""CatBoost on the event's tabular features, categorical codes as native categorical features.

Rows are fed in time order with `has_time=True` (CatBoost's ordered statistics then use only
earlier rows). Early stopping watches `eval_metric` (AUC or Logloss) on the validation rows (the
fold's early-stopping window) and keeps the best iteration; the caller scores the fold's scored
rows once, after fit. Hard 0/1 targets train with
Logloss and CatBoost's own `auto_class_weights` / `scale_pos_weight`; soft targets (two-step PU)
train with CrossEntropy, which takes no class weights, so the same weighting becomes row weights
`t * w_pos + (1 - t) * w_neg`. CatBoost writes no files (`allow_writing_files=False`, `train_dir`
inside the trainer's workspace). `thread_count` None (the default) means the trainer's usable cores
(affinity and cgroup quota, shared by `trainer.workers_per_host`); -1 is every core of the host.
On GPU CatBoost takes no Python callbacks: `report` then receives the validation history after
training instead of during it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, FeaturesData, Pool

from atec_automl.errors import AtecError
from atec_automl.features.featureset import BlockFeatures
from atec_automl.models.base import FitResult, Model, ModelData, Report
from atec_automl.models.io import read_meta, write_meta
from atec_automl.models.trainer import TrainerSettings
from atec_automl.staging import write_atomically

MODEL_FILE = "model.cbm"
EVAL_METRICS = ("AUC", "Logloss")
CLASS_WEIGHTS = (None, "Balanced", "SqrtBalanced")
ONE_THREAD_ROWS = 64
"""Predictions of this many rows or fewer run on one thread: a pool of threads started per call costs more
than a few rows' trees (the scoring service's one-event requests); the scores are the same."""
OBJECT_POOL_ROWS = 8
"""Predictions of this many rows or fewer pool their rows from one object array (`object_pool`)."""


@dataclass
class CatBoostParams:
    """CatBoost parameters the harness sets or searches; `extra` passes any other one through."""

    iterations: int = 2000
    learning_rate: float | None = None
    depth: int = 6
    l2_leaf_reg: float = 3.0
    random_strength: float = 1.0
    subsample: float | None = None
    border_count: int | None = None
    one_hot_max_size: int | None = None
    eval_metric: str = "AUC"
    early_stopping_rounds: int = 100
    metric_period: int = 1
    auto_class_weights: str | None = None
    scale_pos_weight: float | None = None
    has_time: bool = True
    thread_count: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.eval_metric not in EVAL_METRICS:
            raise AtecError(f"model.eval_metric: {self.eval_metric!r} is not one of {EVAL_METRICS}")
        if self.auto_class_weights not in CLASS_WEIGHTS:
            raise AtecError(f"model.auto_class_weights: {self.auto_class_weights!r} is not one of {CLASS_WEIGHTS}")
        if self.auto_class_weights is not None and self.scale_pos_weight is not None:
            raise AtecError("model: set auto_class_weights or scale_pos_weight, not both")
        self.extra = dict(self.extra)

    def library_params(self) -> dict:
        """The CatBoost keyword arguments (None values left to CatBoost's defaults)."""
        own = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("extra", "early_stopping_rounds", "auto_class_weights", "scale_pos_weight")}
        return {k: v for k, v in {**own, **self.extra}.items() if v is not None}


class CatBoostModel(Model):
    """The CatBoost family."""

    family = "catboost"
    step_key = "iterations"

    def __init__(self, trainer: TrainerSettings | None = None, seed: int = 0, **params):
        known = {f.name for f in fields(CatBoostParams)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise AtecError(f"model=catboost: unknown parameter {unknown[0]!r}; known: {sorted(known)} "
                            "(other CatBoost parameters go under model.extra)")
        self.params = CatBoostParams(**params)
        self.trainer = trainer or TrainerSettings()
        self.seed = int(seed)
        self.booster: CatBoostClassifier | None = None
        self.columns: list[str] = []
        self.categorical: list[str] = []

    def fit(self, train: ModelData, valid: ModelData | None = None, report: Report | None = None) -> FitResult:
        """Fit in time order with early stopping on `valid`; `report(iteration, metric)` per iteration."""
        train = _time_ordered(train)
        target = train.checked_target("model=catboost train", hard=False)
        if valid is not None:
            valid.checked_target("model=catboost valid", hard=True)
        elif report is not None:
            raise AtecError("model=catboost: report needs validation rows")
        soft = not np.isin(target, (0.0, 1.0)).all()
        self.columns = list(train.features.table.columns)
        self.categorical = [c for c in train.features.categorical if c in set(self.columns)]
        threads = self._thread_count()
        train_pool = self._pool(train, target, self._row_weights(train, target, soft), threads)
        valid_pool = None if valid is None else self._pool(valid, np.asarray(valid.target, dtype=np.float64), None,
                                                           threads)
        on_gpu = self.trainer.catboost_task_type == "GPU"
        callback = None if report is None or on_gpu else IterationReport(report, self.params.eval_metric)
        with self.trainer.workspace("catboost") as root:
            self.booster = CatBoostClassifier(**self._booster_params(soft, valid is not None, str(root)))
            self.booster.fit(train_pool, eval_set=valid_pool, callbacks=None if callback is None else [callback])
        if callback is not None and callback.error is not None:
            raise callback.error
        history = self._history() if valid is not None else None
        if report is not None and on_gpu:
            for step, value in enumerate(history):
                report(step, value[self.params.eval_metric])
        if valid is None:
            return FitResult(best_iteration=self.booster.tree_count_ - 1)
        best_value = self.booster.get_best_score().get("validation", {}).get(self.params.eval_metric)
        return FitResult(best_iteration=self.booster.get_best_iteration(), valid_score=best_value, history=history)

    def _booster_params(self, soft: bool, validating: bool, train_dir: str) -> dict:
        """Keyword arguments of CatBoostClassifier for this fit."""
        params = self.params.library_params()
        params.update(thread_count=self._thread_count(),
                      loss_function="CrossEntropy" if soft else "Logloss", random_seed=self.seed,
                      task_type=self.trainer.catboost_task_type, train_dir=train_dir, allow_writing_files=False,
                      logging_level="Silent")
        if self.trainer.catboost_task_type == "GPU":
            if self.trainer.catboost_devices is not None:
                params["devices"] = self.trainer.catboost_devices
            if "subsample" in params and "bootstrap_type" not in params:
                params["bootstrap_type"] = "Bernoulli"  # GPU's default Bayesian bootstrap rejects subsample
        if not soft:
            params.update({k: v for k, v in (("auto_class_weights", self.params.auto_class_weights),
                                             ("scale_pos_weight", self.params.scale_pos_weight)) if v is not None})
        if validating:
            params.update(use_best_model=True, od_type="Iter", od_wait=self.params.early_stopping_rounds)
        return params

    def _thread_count(self) -> int:
        """`thread_count` when set, else the trainer's usable cores."""
        return self.params.thread_count if self.params.thread_count is not None else self.trainer.usable_cores()

    def _row_weights(self, data: ModelData, target: np.ndarray, soft: bool) -> np.ndarray | None:
        """User row weights, times the class weighting when soft targets rule out CatBoost's own."""
        weight = None if data.weight is None else np.asarray(data.weight, dtype=np.float64)
        if not soft or (self.params.auto_class_weights is None and self.params.scale_pos_weight is None):
            return weight
        base = np.ones_like(target) if weight is None else weight
        positives, negatives = float((target * base).sum()), float(((1 - target) * base).sum())
        w_pos = self.params.scale_pos_weight or negatives / positives
        if self.params.auto_class_weights == "SqrtBalanced":
            w_pos = math.sqrt(w_pos)
        return base * (target * w_pos + (1 - target))

    def _pool(self, data: ModelData, target: np.ndarray | None, weight: np.ndarray | None, threads: int) -> Pool:
        """A CatBoost Pool of `data`'s rows with the training columns, built on `threads` threads (CatBoost's
        default is every core, whatever the model's own thread count)."""
        table = self._checked_table(data)
        frame = table[self.columns].iloc[np.asarray(data.rows)]
        return Pool(frame, label=target, weight=weight, cat_features=self.categorical, thread_count=threads)

    def _checked_table(self, data: ModelData) -> pd.DataFrame:
        """`data`'s feature table, refused in one line when it lacks a training column."""
        table = data.features.table
        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            raise AtecError(f"model=catboost: features table lacks column {missing[0]!r} the model was trained on")
        return table

    def _prediction_pool(self, data: ModelData) -> Pool:
        """`_pool` for prediction, built from arrays when the codes come last (the feature table's layout):
        a Pool from a DataFrame costs milliseconds per call in column-by-column conversion, which a
        one-event request of the scoring service would pay each time; `BlockFeatures` (the service's) give
        their arrays without a frame. Codes go in as their decimal text, which is how CatBoost reads integer
        categorical columns of a DataFrame."""
        numeric = self.columns[: len(self.columns) - len(self.categorical)]
        if self.columns[len(numeric):] != self.categorical:
            return self._pool(data, None, None, self._prediction_threads(len(data.rows)))
        features, rows = data.features, np.asarray(data.rows)
        positions = features.positions(numeric, self.categorical) if isinstance(features, BlockFeatures) else None
        if positions is not None:
            values = features.numeric_block[rows][:, positions[0]]
            codes = features.code_block[rows][:, positions[1]].astype(np.int64)
        else:
            table = self._checked_table(data).iloc[rows]
            values, codes = table[numeric].to_numpy(dtype=np.float32), table[self.categorical].to_numpy(dtype=np.int64)
        values = np.ascontiguousarray(values, dtype=np.float32)
        if len(rows) <= OBJECT_POOL_ROWS:
            return object_pool(values, decimal_text(codes))
        return Pool(FeaturesData(num_feature_data=values, cat_feature_data=decimal_text(codes),
                                 num_feature_names=numeric, cat_feature_names=self.categorical),
                    thread_count=self._prediction_threads(len(rows)))

    def _history(self) -> list[dict]:
        """Per-iteration validation metrics."""
        evals = self.booster.get_evals_result()
        validation = evals.get("validation", {})
        names = list(validation)
        return [{name: float(validation[name][i]) for name in names} for i in range(len(validation[names[0]]))] \
            if names else []

    def predict(self, data: ModelData) -> np.ndarray:
        """P(fraud) for `data`'s rows, float64."""
        if self.booster is None:
            raise AtecError("model=catboost: predict before fit or load")
        data.check_rows("model=catboost predict")
        if len(data.rows) == 0:
            return np.zeros(0, dtype=np.float64)
        pool = self._prediction_pool(data)
        return self.booster.predict_proba(pool, thread_count=self._prediction_threads(len(data.rows)))[:, 1] \
            .astype(np.float64)

    def _prediction_threads(self, rows: int) -> int:
        """Threads for building the pool of and predicting `rows` rows: one for a few rows (a scoring request),
        where waking CatBoost's worker threads costs more than it saves and leaves one spinning for a while
        after each call (seen taking a third to two thirds of the second core), else the fit's thread count."""
        return 1 if rows <= ONE_THREAD_ROWS else self._thread_count()

    def save(self, directory: Path) -> None:
        """`model.cbm` (CatBoost's own format) and `model.json`."""
        if self.booster is None:
            raise AtecError("model=catboost: save before fit")
        directory = Path(directory)
        write_atomically(directory / MODEL_FILE, lambda tmp: self.booster.save_model(str(tmp)))
        write_meta(directory, {"family": self.family, "params": asdict(self.params), "seed": self.seed,
                               "columns": self.columns, "categorical": self.categorical})

    @classmethod
    def load(cls, directory: Path, trainer: TrainerSettings | None = None) -> "CatBoostModel":
        """Read a model written by `save`."""
        meta = read_meta(Path(directory), cls.family)
        model = cls(trainer=trainer, seed=meta["seed"], **meta["params"])
        model.columns, model.categorical = meta["columns"], meta["categorical"]
        model.booster = CatBoostClassifier()
        model.booster.load_model(str(Path(directory) / MODEL_FILE))
        return model


class IterationReport:
    """CatBoost callback: `report(iteration, validation metric)`, iterations counted from 0 as in
    `get_best_iteration`; an exception stops training and is kept for `fit` to re-raise."""

    def __init__(self, report: Report, metric: str):
        self.report, self.metric = report, metric
        self.error: BaseException | None = None

    def after_iteration(self, info) -> bool:
        """Report; return False (stop) if the report raised."""
        try:
            self.report(info.iteration - 1, float(info.metrics["validation"][self.metric][-1]))
        except BaseException as error:  # noqa: BLE001 - re-raised by fit once CatBoost has returned
            self.error = error
            return False
        return True


def _time_ordered(data: ModelData) -> ModelData:
    """`data` with rows ascending (timeline order = time order), targets and weights moved along."""
    rows = np.asarray(data.rows)
    if len(rows) < 2 or (np.diff(rows) >= 0).all():
        return data
    order = np.argsort(rows, kind="stable")
    pick = (lambda a: None if a is None else np.asarray(a)[order])
    return ModelData(data.features, rows[order], pick(data.target), pick(data.weight))


def object_pool(values: np.ndarray, codes_text: np.ndarray) -> Pool:
    """A one-thread Pool of a few rows from one object array (the float32 values, then the codes' text), the
    columns in the model's order: for a one-event request it costs 0.10 ms where `FeaturesData` costs 0.16 (at
    8 rows 0.15 against 0.25; from about 20 rows on `FeaturesData` is the cheaper). The values reach CatBoost
    as the same float32 numbers, so the scores are the same."""
    data = np.empty((len(values), values.shape[1] + codes_text.shape[1]), dtype=object)
    data[:, :values.shape[1]] = values
    data[:, values.shape[1]:] = codes_text
    return Pool(data, cat_features=list(range(values.shape[1], data.shape[1])), thread_count=1)


def decimal_text(codes: np.ndarray) -> np.ndarray:
    """Each code's decimal text, as an object array of `codes`' shape: one `str` per code, or per value of the
    codes' range when that is shorter (a batch of many events with a small vocabulary)."""
    lowest, highest = int(codes.min(initial=0)), int(codes.max(initial=0))
    if codes.size < highest - lowest + 1:
        return np.array([str(v) for v in codes.ravel().tolist()], dtype=object).reshape(codes.shape)
    text = np.array([str(v) for v in range(lowest, highest + 1)], dtype=object)
    return text[codes - lowest]
