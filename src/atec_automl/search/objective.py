"""One Optuna trial: sample a configuration, fit and score it on every fold, record a leaderboard entry.

Each fold trains on its training days, early-stops on its early-stopping window and is then scored
on its scored days; the last fold's model also predicts every test board, stored with the entry
(and scored against hidden labels where the data has them, for reporting only).

What Optuna keeps of a trial: the first fold's validation values (per epoch, or per block of
CatBoost iterations) as intermediate values, on which the study's pruner acts; the fold scores so
far (`fold_scores`) and, once finished, the leaderboard entry (`entry_id`) as user attributes.
Between folds a trial is pruned when its running mean score is below the median running mean of
the complete trials over as many folds (once `prune_folds_after` trials are complete), unless it
is one of the library-default trials a study starts with (one per label policy: the baselines).

On data large enough for low-fidelity rungs (`search/fidelity.py`), a trial first climbs the rungs
and is pruned at the first one where it is not among the best (successive halving); the rung
scores are then its only intermediate values, and the full-size fit it earns is neither pruned on
epochs nor between folds: the rungs already chose it.
"""
from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import optuna

from atec_automl.errors import AtecError
from atec_automl.evaluation import FoldResult, build_entry
from atec_automl.leaderboard import DuplicateEntryError, Entry, Leaderboard
from atec_automl.loggers import TrialLogger
from atec_automl.models.base import Model, Report
from atec_automl.pipeline import Prepared, fit_fold, label_policy, policy_queries, predict_boards
from atec_automl.progress import TrialStatus
from atec_automl.recipe import Recipe
from atec_automl.search.fidelity import (DEFERRED, PROMOTED_FROM, PROMOTED_PAST, SKIPPED, Rung, among_the_best,
                                         earlier_copy, rung_quota, rung_values, scored_at)
from atec_automl.search.space import SearchSpace, suggest


ENQUEUED = "enqueued"
"""User attribute of the listed trials a new study starts with (library defaults): never pruned between folds."""


@dataclass
class TrialContext:
    """What every trial of one family's study shares; `trial_recipe` turns a trial's sampled values
    (parameter name -> value) into the recipe it fits (built by the task layer from the config)."""

    family: str
    trial_recipe: Callable[[Mapping[str, Any]], Recipe]
    space: SearchSpace
    prepared: Prepared
    board: Leaderboard
    logger: TrialLogger
    run_dir: Path
    report_every: int
    bootstrap: int = 200
    prune_folds_after: int | None = 3
    deadline: float | None = None
    """time.monotonic() at which the family's `study.timeout_s` runs out (None: no timeout)."""
    rungs: tuple[Rung, ...] = ()
    explore_trials: int = 0
    reduction_factor: int = 3
    finishing: int | None = None
    """Past the budget with no full-size fit yet: the deferred trial whose promotion alone is fitted."""


def pruning_report(trial: optuna.Trial, logger: TrialLogger, every: int) -> Report:
    """Report every `every`-th validation value to the trial (and the logger); raise if pruned.

    The trial sees step `step // every`, so that the pruner's `n_warmup_steps` counts reports
    (epochs, or blocks of `every` CatBoost iterations) alike for every family.
    """
    def report(step: int, value: float) -> None:
        if step % every:
            return
        logger.log({"valid_proxy": value}, step=step)
        trial.report(value, step // every)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} with validation value {value:.5f}")
    return report


def fold_pruned(trial: optuna.Trial, fold_scores: list[float], startup: int | None) -> bool:
    """Whether the mean of the trial's first k fold scores is below the median of the same mean over
    the study's complete trials, once `startup` of them are complete (None: never), as Optuna's
    MedianPruner compares an intermediate value with complete trials' at the same step."""
    if startup is None:
        return False
    complete = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    k = len(fold_scores)
    others = [float(np.mean(t.user_attrs["fold_scores"][:k])) for t in complete
              if len(t.user_attrs.get("fold_scores", [])) >= k]
    return len(complete) >= startup and bool(others) and float(np.mean(fold_scores)) < float(np.median(others))


def best_value(study: optuna.Study) -> float | None:
    """The study's best score so far, None before its first complete trial."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max((t.value for t in complete), default=None)


def fold_report(pruning: Report | None, status: TrialStatus) -> Report | None:
    """The fold's `report`: pruning (first fold) and the status line (on a terminal); None if neither."""
    if not status.enabled:
        return pruning

    def report(step: int, value: float) -> None:
        status.update(step, value)
        if pruning is not None:
            pruning(step, value)
    return report


def release_gpu_memory() -> None:
    """After a failed trial (a GPU out-of-memory above all), hand cached GPU blocks back for the next one."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def with_queries(entry: Entry, queries: list[list[dict] | None]) -> Entry:
    """The entry with each fold's expert queries (active label policies) in its fold scores."""
    for fold_scores, asked in zip(entry.fold_scores, queries):
        if asked is not None:
            fold_scores["queries"] = asked
    return entry


class Objective:
    """Callable for `study.optimize`: returns the mean ATEC score over the split's folds."""

    def __init__(self, context: TrialContext):
        self.context = context

    def __call__(self, trial: optuna.Trial) -> float:
        """Run one trial; failures keep their reason in the trial's `fail_reason` attribute."""
        context = self.context
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        values = suggest(trial, context.space)
        recipe = context.trial_recipe(values)
        context.logger.start(f"{context.family}-{trial.number}", trial.study.study_name, dict(values))
        unit = recipe.model_class.step_key.removesuffix("s")  # "iteration" or "epoch"
        status = TrialStatus(f"{context.family} trial {trial.number}", unit, context.deadline, best_value(trial.study))
        try:
            score = self._run(trial, recipe, values, status)
        except optuna.TrialPruned:
            context.logger.finish()
            raise
        except Exception as error:
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            context.logger.finish(failed=True)
            release_gpu_memory()
            raise
        finally:
            status.close()
        context.logger.finish()
        return score

    def _climb(self, trial: optuna.Trial, recipe: Recipe, status: TrialStatus) -> None:
        """Fit and score the trial at each low-fidelity rung it has not climbed yet; raise TrialPruned where
        it falls behind, or where it passes a rung whose exploration is not over (deferred)."""
        context = self.context
        climbed = int(trial.user_attrs.get(PROMOTED_PAST, 0))
        source = trial.user_attrs.get(PROMOTED_FROM)
        twin = None if source is None else earlier_copy(trial.study, trial.number, source)
        if twin is not None:
            trial.set_user_attr(SKIPPED, f"trial {twin} already carries trial {source}'s promotion")
            raise optuna.TrialPruned(f"skipped: trial {twin} carries the same promotion")
        if context.finishing is not None and source != context.finishing:
            trial.set_user_attr(SKIPPED, f"the budget is spent, trial {context.finishing}'s full-size fit goes first")
            raise optuna.TrialPruned("skipped: the budget is spent")
        for index, rung in enumerate(context.rungs):
            if rung.step <= climbed:
                continue
            status.fold = f"{rung.share:.0%} of the users"
            root = context.run_dir / "trials" / f"{context.family}-{trial.number}" / rung.fold.name
            steps = rung.model_steps(recipe.steps)
            rung_recipe = recipe.with_steps(steps)
            result, _ = fit_fold(rung_recipe, context.prepared, rung.fold, root, fold_report(None, status),
                                 label_policy(rung_recipe, context.prepared))
            score = result.atec.score
            trial.set_user_attr(f"rung_{rung.share:g}_score", score)
            trial.set_user_attr(f"rung_{rung.share:g}_steps", [steps, result.best_step])
            context.logger.log({"rung_score": score, "rung_share": rung.share}, step=rung.step)
            trial.report(score, rung.step)
            if not among_the_best(score, rung_values(trial.study, rung.step), context.reduction_factor):
                trial.set_user_attr("pruned_at", f"{rung.share:.0%} of the users, score {score:.4f}")
                raise optuna.TrialPruned(f"pruned at {rung.share:.0%} of the users with score {score:.5f}")
            if self._exploring(trial, index):
                trial.set_user_attr(DEFERRED, rung.step)
                trial.set_user_attr("pruned_at", f"{rung.share:.0%} of the users, score {score:.4f}, deferred: the "
                                                 f"next fit waits until this rung's exploration is over")
                raise optuna.TrialPruned(f"deferred at {rung.share:.0%} of the users until the exploration is over")

    def _exploring(self, trial: optuna.Trial, index: int) -> bool:
        """Whether this trial is one of the first quota - 1 to score at rung `index`, within the time budget
        (the trial that fills the quota goes on at once, if among the best)."""
        context = self.context
        in_time = context.deadline is None or time.monotonic() < context.deadline
        quota = rung_quota(context.explore_trials, context.reduction_factor, index)
        return in_time and scored_at(trial.study, context.rungs[index].step) + 1 < quota

    def _run(self, trial: optuna.Trial, recipe: Recipe, values: dict, status: TrialStatus) -> float:
        """Climb the low-fidelity rungs, then fit every fold (without rungs, pruning on the first fold's
        validation values and on each fold's running mean)."""
        context = self.context
        self._climb(trial, recipe, status)
        prune_folds_after = None if context.rungs or trial.user_attrs.get(ENQUEUED) else context.prune_folds_after
        results: list[FoldResult] = []
        queries: list[list[dict] | None] = []
        model: Model | None = None
        folds = context.prepared.folds
        for k, fold in enumerate(folds):
            status.fold = f"fold {k + 1}/{len(folds)}"
            pruning = pruning_report(trial, context.logger, context.report_every) if k == 0 and not context.rungs else None
            root = context.run_dir / "trials" / f"{context.family}-{trial.number}" / fold.name
            policy = label_policy(recipe, context.prepared)
            result, model = fit_fold(recipe, context.prepared, fold, root, fold_report(pruning, status), policy)
            results.append(result)
            queries.append(policy_queries(policy, context.prepared))
            fold_scores = [float(r.atec.score) for r in results]
            trial.set_user_attr("fold_scores", fold_scores)
            if k + 1 < len(folds) and fold_pruned(trial, fold_scores, prune_folds_after):
                raise optuna.TrialPruned(f"pruned after {fold.name} with mean score {np.mean(fold_scores):.5f}")
        entry = with_queries(self._entry(trial, recipe, values, results, predict_boards(model, context.prepared)),
                             queries)
        if not math.isfinite(entry.score):
            raise AtecError(f"trial {trial.number}: the mean ATEC score is {entry.score}")
        self._record(trial, entry)
        context.logger.log({"score": entry.score, "tpr1": entry.tpr1, "tpr2": entry.tpr2, "tpr3": entry.tpr3,
                            "auc": entry.auc, "fit_seconds": entry.fit_seconds})
        return entry.score

    def _entry(self, trial: optuna.Trial, recipe: Recipe, values: dict, results: list[FoldResult],
               boards: dict[str, np.ndarray]) -> Entry:
        """The leaderboard entry of a finished trial (best step: the last fold's, the one nearest the test)."""
        context = self.context
        truth = context.prepared.truth
        true = truth.board_scores(boards) if truth is not None else {}
        return build_entry(
            results, context.bootstrap, family=context.family, study=trial.study.study_name, trial=trial.number,
            params=values, config_yaml=recipe.config_yaml,
            data_fingerprint=context.prepared.dataset.fingerprint,
            split="; ".join(f.describe() for f in context.prepared.folds), policy=recipe.policy.name,
            test_scores=boards, true_a=true.get("test_a"), true_b=true.get("test_b"))

    def _record(self, trial: optuna.Trial, entry: Entry) -> None:
        """Add the entry to the leaderboard, unconfirmed until the trial is told complete, and link it from the trial."""
        entry.confirmed = False
        try:
            entry_id = self.context.board.add(entry)
        except DuplicateEntryError as duplicate:
            entry_id = duplicate.existing_id
        trial.set_user_attr("entry_id", entry_id)
        trial.set_user_attr("finished_at", time.strftime("%Y-%m-%dT%H:%M:%S"))
