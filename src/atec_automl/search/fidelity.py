"""Multi-fidelity search: cheap low-fidelity rungs first, the full-size fit only for promising trials.

A trial first fits its configuration on a share of the users of the last fold (the one nearest the
test boards): a fixed random subset of user ids, all their training events and none of the
others', so the subsample keeps every kept user's whole history and the split's time order. The
early-stopping window and the scored rows stay whole, so that every trial at a rung is scored on
the same rows. Each rung's score is reported to Optuna at step `reduction_factor ** i`, where
Optuna's `SuccessiveHalvingPruner` (asynchronous successive halving) lets a trial go on only while
it is among the best `1 / reduction_factor` of the trials that reached the same rung. A trial that
passes every rung is fitted and scored at full size on every fold; only those become leaderboard
entries. The user subsets are nested (a rung's users include the cheaper rungs' users).

A rung runs only when its share of the fold's training rows reaches `min_train_rows`, so that small
data (the smoke sweep) is searched at full size only, as before.
"""
from __future__ import annotations

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

    def __post_init__(self) -> None:
        if any(not 0.0 < share < 1.0 for share in self.shares) or list(self.shares) != sorted(set(self.shares)):
            raise AtecError(f"sweep.fidelity.shares={list(self.shares)}: user shares must rise strictly, each in (0, 1)")
        if self.reduction_factor < 2:
            raise AtecError(f"sweep.fidelity.reduction_factor={self.reduction_factor}: it must be at least 2")
        if self.min_train_rows < 1:
            raise AtecError(f"sweep.fidelity.min_train_rows={self.min_train_rows}: it must be at least 1")

    def active_shares(self, train_rows: int) -> tuple[float, ...]:
        """The shares whose subsample of `train_rows` training rows is large enough to run."""
        return tuple(share for share in self.shares if share * train_rows >= self.min_train_rows)

    def pruner(self) -> optuna.pruners.BasePruner:
        """The pruner of a study searched over these rungs."""
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=self.reduction_factor,
                                                      min_early_stopping_rate=0)


@dataclass(frozen=True)
class Rung:
    """One low-fidelity rung: the fold it fits and scores, and the step its score is reported at."""

    share: float
    step: int
    fold: Fold


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
    return [Rung(share, schedule.reduction_factor ** i, user_subsample(last, user_codes, share, seed))
            for i, share in enumerate(shares)]
