"""Grey-label policies: what the grey (-1) training rows become. Scored rows never see them.

- `GreyPolicy(treat="drop" | "black" | "white")`: remove grey rows, or take them as 1 or as 0.
- `TwoStepPU`: two-step positive-unlabelled learning (seed 001). P = black rows, U = grey rows,
  white rows stay confirmed negatives. Step 1: hide a share of P ("spies") in U, train P vs
  the rest, and take as reliable negatives the U rows scoring below a low percentile of the
  spies' scores. Step 2: EM rounds where P keeps target 1, whites and reliable negatives 0, and
  the other U rows take the previous model's score as a soft target.

Build from config with `build_policy(cfg)` (`instantiate(cfg.labels)`); a policy's `apply(data,
labels, make_model, valid)` returns the training ModelData with targets in [0, 1].
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import hydra.utils
import numpy as np
from omegaconf import DictConfig

from atec_automl.errors import AtecError
from atec_automl.models.base import Model, ModelData

BLACK, WHITE, GREY = 1.0, 0.0, -1.0
ModelFactory = Callable[[], Model]


def check_labels(data: ModelData, labels: np.ndarray) -> np.ndarray:
    """The raw labels of `data`'s rows as float64, each 1, 0 or -1."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.shape != (len(data.rows),):
        raise AtecError(f"labels: {labels.shape[0] if labels.ndim else 0} labels for {len(data.rows)} training rows")
    bad = ~np.isin(labels, (BLACK, WHITE, GREY))
    if bad.any():
        raise AtecError(f"labels: training row {int(data.rows[np.flatnonzero(bad)[0]])} has label "
                        f"{float(labels[bad][0])}; training rows must be 1, 0 or -1 (test rows have none)")
    return labels


def subset(data: ModelData, keep: np.ndarray, target: np.ndarray) -> ModelData:
    """The rows of `data` where `keep`, with `target` (already aligned to the kept rows)."""
    weight = None if data.weight is None else np.asarray(data.weight)[keep]
    return ModelData(data.features, np.asarray(data.rows)[keep], target, weight)


class LabelPolicy(ABC):
    """Turns raw training labels (1, 0, -1) into targets in [0, 1]."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The policy's name as the leaderboard shows it (its `conf/labels/` choice)."""

    @abstractmethod
    def apply(self, data: ModelData, labels: np.ndarray, make_model: ModelFactory | None = None,
              valid: ModelData | None = None) -> ModelData:
        """Training data with targets; `make_model`/`valid` serve policies that train models.

        `valid` holds the fold's early-stopping rows (never its scored rows): policies that train
        models early-stop on them and may choose with them.
        """


@dataclass
class GreyPolicy(LabelPolicy):
    """Grey rows dropped (`drop`), taken as black (`black`) or as white (`white`)."""

    treat: str = "black"

    def __post_init__(self) -> None:
        if self.treat not in ("drop", "black", "white"):
            raise AtecError(f"labels.treat: {self.treat!r} is not one of drop, black, white")

    @property
    def name(self) -> str:
        """drop, as_black or as_white."""
        return "drop" if self.treat == "drop" else f"as_{self.treat}"

    def apply(self, data: ModelData, labels: np.ndarray, make_model: ModelFactory | None = None,
              valid: ModelData | None = None) -> ModelData:
        labels = check_labels(data, labels)
        if self.treat == "drop":
            keep = labels != GREY
            return subset(data, keep, labels[keep])
        grey_value = BLACK if self.treat == "black" else WHITE
        return subset(data, np.ones(len(labels), dtype=bool), np.where(labels == GREY, grey_value, labels))


@dataclass
class ReliableNegatives:
    """Step 1's outcome: which grey rows are reliable negatives, the step-1 scores of all rows, the cut."""

    mask: np.ndarray
    scores: np.ndarray
    spies: np.ndarray
    threshold: float


@dataclass
class TwoStepPU(LabelPolicy):
    """Two-step PU learning over the grey rows; the base learner is whatever `make_model` builds."""

    spy_share: float = 0.15
    spy_percentile: float = 10.0
    em_rounds: int = 1
    pin_reliable_negatives: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.spy_share < 1 or not 0 <= self.spy_percentile <= 100 or self.em_rounds < 0:
            raise AtecError(f"labels: need 0 < spy_share < 1, 0 <= spy_percentile <= 100, em_rounds >= 0; got {self}")

    @property
    def name(self) -> str:
        """two_step_pu."""
        return "two_step_pu"

    def reliable_negatives(self, data: ModelData, labels: np.ndarray, make_model: ModelFactory,
                           valid: ModelData | None = None) -> ReliableNegatives:
        """Step 1: spies hidden among the grey rows, grey rows scoring below the spies' percentile."""
        labels = check_labels(data, labels)
        black = np.flatnonzero(labels == BLACK)
        n_spies = int(round(self.spy_share * len(black)))
        if n_spies < 1 or n_spies == len(black):
            raise AtecError(f"labels=two_step_pu: {len(black)} black training rows leave no spies or no positives "
                            f"at spy_share={self.spy_share}")
        spies = np.sort(np.random.default_rng(self.seed).choice(black, n_spies, replace=False))
        target = (labels == BLACK).astype(np.float64)
        target[spies] = 0.0
        model = make_model()
        model.fit(subset(data, np.ones(len(labels), dtype=bool), target), valid)
        scores = model.predict(data)
        threshold = float(np.percentile(scores[spies], self.spy_percentile))
        return ReliableNegatives((labels == GREY) & (scores < threshold), scores, spies, threshold)

    def apply(self, data: ModelData, labels: np.ndarray, make_model: ModelFactory | None = None,
              valid: ModelData | None = None) -> ModelData:
        """Step 1, then `em_rounds` EM rounds; returns all rows with soft targets for the grey ones."""
        labels = check_labels(data, labels)
        grey = labels == GREY
        everything = np.ones(len(labels), dtype=bool)
        if not grey.any():
            return subset(data, everything, labels)
        if make_model is None:
            raise AtecError("labels=two_step_pu needs a base model to train")
        step1 = self.reliable_negatives(data, labels, make_model, valid)
        floating = grey & ~step1.mask if self.pin_reliable_negatives else grey
        target = np.where(grey, 0.0, labels)
        target[floating] = np.clip(step1.scores[floating], 0.0, 1.0)
        for _ in range(self.em_rounds):
            model = make_model()
            model.fit(subset(data, everything, target), valid)
            target[floating] = np.clip(model.predict(subset(data, floating, target[floating])), 0.0, 1.0)
        return subset(data, everything, target)


def build_policy(cfg: DictConfig) -> LabelPolicy:
    """The policy of `cfg.labels`."""
    return hydra.utils.instantiate(cfg.labels)
