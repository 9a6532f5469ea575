"""Multi-fidelity search: cheap low-fidelity rungs first, the full-size fit only for promising trials.

A trial first fits its configuration on a share of the users of the last fold (the one nearest the
test boards): a fixed random subset of user ids, all their training events and none of the
others', so the subsample keeps every kept user's whole history and the split's time order. The
early-stopping window and the scored rows stay whole, so that every trial at a rung is scored on
the same rows. Each rung's score is reported to Optuna at step `reduction_factor ** i`, where
Optuna's `SuccessiveHalvingPruner` (asynchronous successive halving) lets a trial go on only while
it is among the best `1 / reduction_factor` of the trials that reached the same rung. A trial that
passes every rung is fitted and scored at full size on every fold; only those become leaderboard
entries. The user subsets are nested (a rung's users include the cheaper rungs' users). With
`cut_steps` (the default) a rung also fits only its share of the model's steps (CatBoost
iterations, epochs; at least one), so that a rung costs about share² of a full fit: on large data
the first rung is what lets a study try many configurations within its budget.

Explore first: optuna's pruner decides at once, so the first trial to pass the last rung would
be fitted at full size while it has nothing to compete with, and on large data that one fit can
take the family's whole budget. So until `explore_trials` trials of the study have scored at the
first rung, a trial that passes the last rung stops there ("deferred", ending pruned). Once they
have, the deferred trials still among the best `1 / reduction_factor` at the last rung are queued
again with the same parameters ("promoted") and then fitted at full size without climbing again.
After that a trial that passes the last rung goes on to its full-size fit directly.

A rung runs only when its share of the fold's training rows reaches `min_train_rows`, so that small
data (the smoke sweep) is searched at full size only, as before.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import optuna

from atec_automl.errors import AtecError
from atec_automl.split import Fold


@dataclass(frozen=True)
class FidelitySchedule:
    """The low-fidelity rungs of a search: user shares (cheapest first) and the promotion rule."""

    shares: tuple[float, ...] = ()
    min_train_rows: int = 40_000
    reduction_factor: int = 3
    explore_trials: int = 10
    cut_steps: bool = True

    def __post_init__(self) -> None:
        if any(not 0.0 < share < 1.0 for share in self.shares) or list(self.shares) != sorted(set(self.shares)):
            raise AtecError(f"sweep.fidelity.shares={list(self.shares)}: user shares must rise strictly, each in (0, 1)")
        if self.reduction_factor < 2:
            raise AtecError(f"sweep.fidelity.reduction_factor={self.reduction_factor}: it must be at least 2")
        if self.min_train_rows < 1:
            raise AtecError(f"sweep.fidelity.min_train_rows={self.min_train_rows}: it must be at least 1")
        if self.explore_trials < 0:
            raise AtecError(f"sweep.fidelity.explore_trials={self.explore_trials}: it must be at least 0")

    def active_shares(self, train_rows: int) -> tuple[float, ...]:
        """The shares whose subsample of `train_rows` training rows is large enough to run."""
        return tuple(share for share in self.shares if share * train_rows >= self.min_train_rows)

    def pruner(self) -> optuna.pruners.BasePruner:
        """The pruner of a study searched over these rungs."""
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=self.reduction_factor,
                                                      min_early_stopping_rate=0)


@dataclass(frozen=True)
class Rung:
    """One low-fidelity rung: the fold it fits and scores, the step its score is reported at, and the
    share of the model's steps (CatBoost iterations, epochs) it fits."""

    share: float
    step: int
    fold: Fold
    step_share: float = 1.0

    def model_steps(self, full_steps: int) -> int:
        """The model steps a trial configured for `full_steps` fits at this rung (at least one)."""
        return max(1, math.ceil(full_steps * self.step_share - 1e-9))


def kept_users(user_codes: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Per user code, whether the user is in the `share` subsample (nested in `share` for one seed)."""
    draws = np.random.default_rng(seed).random(int(user_codes.max()) + 1 if len(user_codes) else 0)
    return draws < share


def user_subsample(fold: Fold, user_codes: np.ndarray, share: float, seed: int) -> Fold:
    """The fold with only the training rows of a `share` of its users (early-stopping and scored rows whole)."""
    keep = kept_users(user_codes, share, seed)
    train = fold.train[keep[user_codes[fold.train]]]
    return replace(fold, name=f"{fold.name}@{share:.0%}users", train=train)


def rungs(schedule: FidelitySchedule, folds: list[Fold], user_codes: np.ndarray, seed: int) -> list[Rung]:
    """The rungs a trial climbs before its full-size fit, on the last fold; none for small data."""
    if not folds:
        return []
    last = folds[-1]
    shares = schedule.active_shares(len(last.train))
    return [Rung(share, schedule.reduction_factor ** i, user_subsample(last, user_codes, share, seed),
                 share if schedule.cut_steps else 1.0)
            for i, share in enumerate(shares)]


PROMOTED_FROM = "promoted_from"
DEFERRED = "deferred"


def explored(study: optuna.Study, first_step: int = 1) -> int:
    """Finished trials of the study that scored at the first rung."""
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    return sum(first_step in t.intermediate_values for t in finished)


def among_the_best(value: float, values: list[float], reduction_factor: int) -> bool:
    """Successive halving's rule: `value` is among the best `len(values) // reduction_factor` (at least one)."""
    keep = max(1, len(values) // reduction_factor)
    return value >= sorted(values, reverse=True)[keep - 1]


def promotions(study: optuna.Study, last_step: int, reduction_factor: int) -> list[optuna.trial.FrozenTrial]:
    """Deferred trials, not promoted yet, still among the best at the last rung (best first)."""
    trials = study.get_trials(deepcopy=False)
    done = {t.user_attrs[PROMOTED_FROM] for t in trials if PROMOTED_FROM in t.user_attrs}
    values = [t.intermediate_values[last_step] for t in trials if last_step in t.intermediate_values]
    deferred = [t for t in trials if t.user_attrs.get(DEFERRED) and t.number not in done
                and among_the_best(t.intermediate_values[last_step], values, reduction_factor)]
    return sorted(deferred, key=lambda t: -t.intermediate_values[last_step])


def promote(study: optuna.Study, climbed: list[Rung] | tuple[Rung, ...], schedule: FidelitySchedule, budget: int) -> int:
    """Once exploration is over, queue the deferred trials that earned a full-size fit; returns how many."""
    if not climbed or explored(study, climbed[0].step) < min(schedule.explore_trials, budget):
        return 0
    chosen = promotions(study, climbed[-1].step, schedule.reduction_factor)
    for trial in chosen:
        study.enqueue_trial(trial.params, user_attrs={PROMOTED_FROM: trial.number})
    return len(chosen)
