"""Grey-label policies: what the grey (-1) training rows become. Scored rows never see them.

- `GreyPolicy(treat="drop" | "black" | "white")`: remove grey rows, or take them as 1 or as 0.
- `TwoStepPU`: two-step positive-unlabelled learning (seed 001). P = black rows, U = grey rows,
  white rows stay confirmed negatives. Step 1: hide a share of P ("spies") in U, train P vs
  the rest, and take as reliable negatives the U rows scoring below a low percentile of the
  spies' scores. Step 2: EM rounds where P keeps target 1, whites and reliable negatives 0, and
  the other U rows take the previous model's score as a soft target.
- `ActivePU`: active PU learning (seed 001). Rounds of: two-step PU, score the grey rows, take the
  most uncertain ones, pick diverse ones among them with K-means, ask an `Expert`; the expert's
  frauds become positives up-weighted by `positive_weight`, its non-frauds go back to the grey
  (unlabelled) set. Then two-step PU on what the rounds learned. `queries` records what it asked.

The task layer builds one from `conf/labels/` (`tasks._experiment.build_policy`); a policy's
`apply(data, labels, make_model, valid)` returns the training ModelData with targets in [0, 1].
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from atec_automl.errors import AtecError
from atec_automl.experts import Expert
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
    model: Model


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
        return ReliableNegatives((labels == GREY) & (scores < threshold), scores, spies, threshold, model)

    def apply(self, data: ModelData, labels: np.ndarray, make_model: ModelFactory | None = None,
              valid: ModelData | None = None) -> ModelData:
        """Step 1, then `em_rounds` EM rounds; returns all rows with soft targets for the grey ones."""
        labels = check_labels(data, labels)
        if not (labels == GREY).any():
            return subset(data, np.ones(len(labels), dtype=bool), labels)
        target, _ = self.soft_targets(data, labels, make_model, valid)
        return subset(data, np.ones(len(labels), dtype=bool), target)

    def soft_targets(self, data: ModelData, labels: np.ndarray, make_model: ModelFactory | None,
                     valid: ModelData | None = None) -> tuple[np.ndarray, Model]:
        """Every row's target after step 1 and the EM rounds, and the last model trained (it scores every row)."""
        if make_model is None:
            raise AtecError(f"labels={self.name} needs a base model to train")
        grey = labels == GREY
        everything = np.ones(len(labels), dtype=bool)
        step1 = self.reliable_negatives(data, labels, make_model, valid)
        floating = grey & ~step1.mask if self.pin_reliable_negatives else grey
        target = np.where(grey, 0.0, labels)
        target[floating] = np.clip(step1.scores[floating], 0.0, 1.0)
        model = step1.model
        for _ in range(self.em_rounds):
            model = make_model()
            model.fit(subset(data, everything, target), valid)
            target[floating] = np.clip(model.predict(subset(data, floating, target[floating])), 0.0, 1.0)
        return target, model


@dataclass(frozen=True)
class Query:
    """One row an active learner asked about: its round, timeline row, score, cluster and the answer (NaN: none yet)."""

    round: int
    row: int
    score: float
    uncertainty: float
    pool_rank: int
    cluster: int
    answer: float

    def reason(self, pool: int, clusters: int) -> str:
        """Why the row was chosen, in words."""
        return (f"round {self.round}: score {self.score:.3f}, uncertainty {self.uncertainty:.3f} (rank {self.pool_rank + 1} "
                f"of the {pool} most uncertain grey rows), most uncertain of K-means cluster {self.cluster + 1}/{clusters}")


@dataclass
class Batch:
    """The rows (positions in the training data) an active learner wants answered next, and why."""

    positions: np.ndarray
    queries: list[Query]
    pool: int
    clusters: int


def uncertainty(scores: np.ndarray, black_scores: np.ndarray, white_scores: np.ndarray) -> np.ndarray:
    """How evenly each score sits between the black and the white rows' scores: 1 where the share of
    black rows scoring lower equals the share of white rows scoring higher (the equal-error point),
    falling to 0 at either end. Soft PU targets keep grey scores far below 0.5, so 0.5 is no boundary."""
    black_below = np.searchsorted(np.sort(black_scores), scores, side="right") / max(len(black_scores), 1)
    white_above = 1.0 - np.searchsorted(np.sort(white_scores), scores, side="left") / max(len(white_scores), 1)
    return 1.0 - np.abs(black_below - white_above)


def numeric_matrix(data: ModelData, positions: np.ndarray) -> np.ndarray:
    """The numeric features of some rows, missing values at the column mean, standardised (for K-means)."""
    table = data.features.table
    values = table.iloc[np.asarray(data.rows)[positions]][data.features.numeric].to_numpy(dtype=np.float64)
    if values.size == 0:
        return np.zeros((len(positions), 1))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    mean, std = np.nan_to_num(mean), np.where(np.nan_to_num(std) > 0, np.nan_to_num(std), 1.0)
    values = np.where(np.isnan(values), mean, values)
    return (values - mean) / std


@dataclass
class ActivePU(TwoStepPU):
    """Active PU learning: `rounds` rounds of asking `expert` about `queries_per_round` uncertain, diverse grey rows.

    Each round fits two-step PU on the current labels and scores the training rows with its last
    model; the `pool_factor` x `queries_per_round` grey rows not asked before whose scores sit most
    evenly between the black and the white rows' (`uncertainty`) are
    clustered with K-means into `queries_per_round` clusters, and the most uncertain row of each
    cluster is asked. Answers fold in as seed 001 says: a fraud becomes a positive (target 1) with
    row weight `positive_weight`, a non-fraud stays in the grey (unlabelled) set; rows the expert
    answered before this run (the review store) are treated alike. Only the training rows given to
    `apply` are ever asked; `valid` only early-stops. After `apply`, `queries` lists every query.
    """

    rounds: int = 2
    queries_per_round: int = 50
    positive_weight: float = 5.0
    pool_factor: float = 5.0
    expert: Expert | None = field(default=None, compare=False, repr=False)
    queries: list[Query] = field(default_factory=list, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rounds < 0 or self.queries_per_round < 0 or self.positive_weight <= 0 or self.pool_factor < 1:
            raise AtecError(f"labels: need rounds >= 0, queries_per_round >= 0, positive_weight > 0, pool_factor >= 1; "
                            f"got rounds={self.rounds}, queries_per_round={self.queries_per_round}, "
                            f"positive_weight={self.positive_weight}, pool_factor={self.pool_factor}")

    @property
    def name(self) -> str:
        """active_pu."""
        return "active_pu"

    def apply(self, data: ModelData, labels: np.ndarray, make_model: ModelFactory | None = None,
              valid: ModelData | None = None) -> ModelData:
        """The rounds of queries, then two-step PU with the expert's frauds up-weighted."""
        labels, weight, asked = self.with_record(data, check_labels(data, labels))
        self.queries = []
        for round_number in range(self.rounds):
            if self.queries_per_round == 0 or not ((labels == GREY) & ~asked).any():
                break
            weighted = ModelData(data.features, data.rows, None, weight)
            batch = self.next_batch(weighted, labels, make_model, valid, self.queries_per_round, asked, round_number)
            answers = self.expert.ask(np.asarray(data.rows)[batch.positions])
            self.queries += [replace(query, answer=float(answer)) for query, answer in zip(batch.queries, answers)]
            asked[batch.positions] = True
            fraud = batch.positions[answers == 1.0]
            labels[fraud], weight[fraud] = BLACK, self.positive_weight
            if np.isnan(answers).all():
                break  # nobody answers during this run: the batch waits for review (task=review)
        return super().apply(ModelData(data.features, data.rows, None, weight), labels, make_model, valid)

    def with_record(self, data: ModelData, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels, row weights and the asked mask after the expert's earlier answers: frauds positive and
        up-weighted, non-frauds grey again."""
        if self.expert is None:
            raise AtecError("labels=active_pu needs an expert: labels.expert=oracle (synthetic data) or file")
        labels = labels.copy()
        weight = np.ones(len(labels)) if data.weight is None else np.asarray(data.weight, dtype=np.float64).copy()
        record = self.expert.on_record(np.asarray(data.rows))
        labels[record == 1.0], weight[record == 1.0] = BLACK, self.positive_weight
        labels[record == 0.0] = GREY
        return labels, weight, ~np.isnan(record)

    def next_batch(self, data: ModelData, labels: np.ndarray, make_model: ModelFactory | None,
                   valid: ModelData | None, size: int, asked: np.ndarray, round_number: int = 0) -> Batch:
        """Fit two-step PU, score the grey rows not asked yet, and pick `size` uncertain, diverse ones."""
        candidates = np.flatnonzero((labels == GREY) & ~asked)
        _, model = self.soft_targets(data, labels, make_model, valid)
        every_score = model.predict(ModelData(data.features, np.asarray(data.rows)))
        scores = every_score[candidates]
        doubt = uncertainty(scores, every_score[labels == BLACK], every_score[labels == WHITE])
        pool_size = min(len(candidates), max(size, int(round(self.pool_factor * size))))
        pool = np.argsort(-doubt, kind="stable")[:pool_size]
        chosen, cluster = self.diverse(data, candidates[pool], doubt[pool], size)
        queries = [Query(round_number, int(np.asarray(data.rows)[candidates[pool[i]]]), float(scores[pool[i]]),
                         float(doubt[pool[i]]), int(i), int(cluster[k]), np.nan) for k, i in enumerate(chosen)]
        return Batch(candidates[pool[chosen]], queries, pool_size, int(cluster.max()) + 1 if len(cluster) else 0)

    def diverse(self, data: ModelData, positions: np.ndarray, doubt: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices into `positions` of the most uncertain row of each of `size` K-means clusters, and their clusters."""
        if len(positions) <= size:
            return np.arange(len(positions)), np.arange(len(positions))
        from sklearn.cluster import KMeans

        clusters = KMeans(n_clusters=size, n_init=1, random_state=self.seed).fit_predict(numeric_matrix(data, positions))
        chosen = np.array([np.flatnonzero(clusters == c)[np.argmax(doubt[clusters == c])] for c in np.unique(clusters)])
        chosen = chosen[np.argsort(-doubt[chosen], kind="stable")]
        return chosen, clusters[chosen]
