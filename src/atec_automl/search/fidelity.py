"""Multi-fidelity search: cheap low-fidelity rungs first, the full-size fit only for promising trials.

A trial first fits its configuration on a share of the users of the last fold (the one nearest the
test boards): a fixed random subset of user ids, all their training events and none of the
others', so the subsample keeps every kept user's whole history and the split's time order. The
early-stopping window and the scored rows stay whole, so that every trial at a rung is scored on
the same rows. Each rung's score is reported to Optuna at step `reduction_factor ** i`, and a
trial goes on only while it is among the best `1 / reduction_factor` of the trials that reached
the same rung (successive halving's rule; Optuna's `SuccessiveHalvingPruner` cannot serve here, as
it judges every rung by a trial's last value, and a promoted trial has only its later rungs'). A
trial that passes every rung is fitted and scored at full size on every fold; only those become
leaderboard entries. The user subsets are nested (a rung's users include the cheaper rungs'
users). With `cut_steps` (the default) a rung also fits only its share of the model's steps
(CatBoost iterations, epochs; at least one), so that a rung costs about share² of a full fit.

Breadth first: a pruner decides at once, so the first trials would climb every rung and go on to
a full-size fit while they have nothing to compete with, and on large data those fits take the
family's whole budget. So each rung has a quota: `explore_trials` trials at the first rung, a
`reduction_factor`-th as many at each later one (10, then 3). Until a rung's quota of trials has
scored there, a trial that passes it stops ("deferred", ending pruned). Once it has, the deferred
trials still among the best there are queued again with the same parameters ("promoted") and go on
from the next rung, or to the full-size fit after the last one; later trials that pass a rung
whose quota is met climb on directly. This is synchronous successive halving (10 configurations at
the first rung, the best 3 at the second, the best one at full size) within an asynchronous study:
a budget that ends early still leaves the best deferred trial its full-size fit.

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
    min_train_rows: int = 15_000
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
"""User attribute of a promoted trial: the number of the deferred trial it goes on from."""
PROMOTED_PAST = "promoted_past"
"""User attribute of a promoted trial: the step of the last rung its deferred trial fitted; it fits the later ones."""
DEFERRED = "deferred"
"""User attribute of a deferred trial: the step of the rung where it stopped to wait for the exploration."""
SKIPPED = "skipped"
"""User attribute of a promoted trial that ended unfitted: why (another copy carries it, or the budget is spent)."""


def rung_quota(explore_trials: int, reduction_factor: int, index: int) -> int:
    """Trials that must score at rung `index` before any goes on past it: `explore_trials` at the first
    rung, a `reduction_factor`-th as many at each later one (at least one); none when not exploring."""
    return 0 if explore_trials <= 0 else max(1, explore_trials // reduction_factor ** index)


def scored_at(study: optuna.Study, step: int) -> int:
    """Finished trials of the study that scored at the rung reported at `step`."""
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    return sum(step in t.intermediate_values for t in finished)


def rung_values(study: optuna.Study, step: int) -> list[float]:
    """Every trial's score at the rung reported at `step` (running trials' included)."""
    return [t.intermediate_values[step] for t in study.get_trials(deepcopy=False) if step in t.intermediate_values]


def among_the_best(value: float, values: list[float], reduction_factor: int) -> bool:
    """Successive halving's rule: `value` is among the best `len(values) // reduction_factor` (at least one)."""
    keep = max(1, len(values) // reduction_factor)
    return value >= sorted(values, reverse=True)[keep - 1]


def promotions(study: optuna.Study, step: int, reduction_factor: int) -> list[optuna.trial.FrozenTrial]:
    """Trials deferred at the rung of `step`, not promoted yet, still among the best there (best first)."""
    values = rung_values(study, step)
    deferred = [t for t in still_deferred(study) if t.user_attrs[DEFERRED] == step
                and among_the_best(t.intermediate_values[step], values, reduction_factor)]
    return sorted(deferred, key=lambda t: -t.intermediate_values[step])


def still_deferred(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that stopped at a rung with its value reported and have not been promoted yet (a promotion
    whose copies were all skipped unfitted, e.g. past the time budget, can be queued again by a later sweep)."""
    trials = study.get_trials(deepcopy=False)
    promoted = {t.user_attrs[PROMOTED_FROM] for t in trials if PROMOTED_FROM in t.user_attrs and SKIPPED not in t.user_attrs}
    return [t for t in trials if t.user_attrs.get(DEFERRED) in t.intermediate_values and t.number not in promoted]


def earlier_copy(study: optuna.Study, number: int, source: int) -> int | None:
    """The number of an earlier trial carrying the same promotion of trial `source` (queued, running or
    run; not failed, not skipped), None when trial `number` is the first.

    Two workers that finish at once can both queue a deferred trial's promotion: optuna's storage has no
    compare-and-set, but trial numbers are unique and ordered, so the lowest-numbered copy carries it.
    """
    for other in study.get_trials(deepcopy=False):
        if other.number < number and other.user_attrs.get(PROMOTED_FROM) == source \
                and other.state != optuna.trial.TrialState.FAIL and SKIPPED not in other.user_attrs:
            return other.number
    return None


def enqueue_promotion(study: optuna.Study, trial: optuna.trial.FrozenTrial, past_step: int) -> None:
    """Queue `trial`'s parameters again, to go on after the rung of `past_step`."""
    study.enqueue_trial(trial.params, user_attrs={PROMOTED_FROM: trial.number, PROMOTED_PAST: past_step})


def promote(study: optuna.Study, climbed: list[Rung] | tuple[Rung, ...], schedule: FidelitySchedule, budget: int) -> int:
    """At every rung whose exploration is over (its quota of trials scored there), queue the deferred
    trials still among the best there, to go on to the next rung or the full-size fit; returns how many."""
    explore = min(schedule.explore_trials, budget)
    queued = 0
    for index, rung in enumerate(climbed):
        if scored_at(study, rung.step) < rung_quota(explore, schedule.reduction_factor, index):
            continue
        for trial in promotions(study, rung.step, schedule.reduction_factor):
            enqueue_promotion(study, trial, rung.step)
            queued += 1
    return queued


def promote_the_best(study: optuna.Study, climbed: list[Rung] | tuple[Rung, ...]) -> int | None:
    """Queue the full-size fit of the deferred trial that climbed highest (best score there); its number,
    None when no trial waits deferred."""
    deferred = still_deferred(study)
    if not climbed or not deferred:
        return None
    best = max(deferred, key=lambda t: (t.user_attrs[DEFERRED], t.intermediate_values[t.user_attrs[DEFERRED]]))
    enqueue_promotion(study, best, climbed[-1].step)
    return best.number
