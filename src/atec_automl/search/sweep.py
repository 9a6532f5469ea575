"""Sweeps: one Optuna study per model family, run one after another, each to its trial budget.

The budget `study.n_trials` counts the study's complete and pruned trials over all workers and
reruns (not the queued copies skipped unfitted: a promotion another copy carries, a queued trial past
the time budget), so rerunning the same command resumes a study instead of starting over, and N workers on
one storage share the budget (they may overshoot it by at most N - 1 trials running at the end).
Failed trials do not use the budget, but one invocation never runs more than the budget's
remainder (or the retries waiting in the queue, if more), so a trial that always fails cannot loop
forever. `study.timeout_s` caps each family's wall-clock per worker.

On large data every trial first climbs low-fidelity rungs (`search/fidelity.py`: a share of the
users, successive halving) and only the promising ones are fitted at full size; pruned trials use
the budget too, which is how a sweep on a million rows still runs many trials per family.

Nothing is lost to a killed worker: every sweep starts by failing the study's stale RUNNING trials
(no heartbeat for `study.grace_period`), which re-queues each with the same parameters, and runs
as many trials as there are queued retries even when the budget is already met, so a killed trial
is retried. A trial killed before its first heartbeat (inside Optuna's `ask` while sampling,
or as its heartbeat thread starts) never goes stale; the sweep's start fails and re-queues it too
once it is older than the grace period. Optuna starts waiting trials in number order: a retry (or
a promotion to a full-size fit) queued behind enqueued default trials that the budget did not reach
waits behind them (a later sweep with a larger budget runs it). A trial's leaderboard entry is
confirmed only once Optuna has recorded the trial complete; the sweep's start confirms any that a
kill left in between. `benchmarks/chaos.py` kills workers at random moments and checks all of this.

Between trials the garbage collector runs once (in place of Optuna's `gc_after_trial`), and what survives is
frozen out of later passes (`gc.freeze`) until the sweep ends: with torch and Lightning loaded a full
pass walks some 435,000 objects, 255 ms on 2 cores, and it ran after every trial and every few
thousand allocations inside one. Cycles among frozen objects are freed once the sweep unfreezes them
(a trial's model dies with the trial, before the freeze; what dies later is a family's few objects).
"""
from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import optuna
import pandas as pd
from optuna.storages._heartbeat import is_heartbeat_enabled

from atec_automl.leaderboard import Leaderboard
from atec_automl.loggers import TrialLogger
from atec_automl.pipeline import Prepared
from atec_automl.progress import progress
from atec_automl.recipe import Recipe
from atec_automl.search.fidelity import PROMOTED_FROM, SKIPPED, FidelitySchedule, Rung, promote, promote_the_best, rungs
from atec_automl.search.objective import ENQUEUED, Objective, TrialContext
from atec_automl.search.space import SearchSpace
from atec_automl.search.study import describe_study, open_study, trials_with_heartbeat

COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
WAITING = (optuna.trial.TrialState.WAITING,)


@dataclass
class FamilyResult:
    """How one family's study stands after this worker's turn."""

    family: str
    study_name: str
    counted: int
    best_score: float | None


@dataclass(frozen=True)
class FamilyPlan:
    """One family's study as the task layer sets it up: its search space, how a trial's sampled values
    become a recipe, the study's storage settings, name, sampler, pruner and shared attributes."""

    family: str
    space: SearchSpace
    trial_recipe: Callable[[Mapping[str, Any]], Recipe]
    storage: Mapping[str, Any]
    study_name: str
    sampler: optuna.samplers.BaseSampler
    pruner: optuna.pruners.BasePruner
    metadata: Mapping[str, str]
    logger: TrialLogger
    report_every: int = 1


@dataclass(frozen=True)
class SweepSettings:
    """What every family's study of one sweep shares: the trial budget and time per family, recovery,
    pruning between folds, bootstrap replicates, the low-fidelity rungs and the seed of their users."""

    n_trials: int
    timeout_s: float | None = None
    enqueue_defaults: bool = True
    grace_period: float = 60.0
    prune_folds_after: int | None = 3
    bootstrap: int = 200
    fidelity: FidelitySchedule = FidelitySchedule()
    seed: int = 0


def enqueue_defaults(study: optuna.Study, space: SearchSpace) -> None:
    """Queue the space's listed trials (library defaults first, one per label policy) in a study this
    worker created, marked `enqueued` so that no fold pruning cuts them short: they are the baselines
    every policy and every sampled trial is compared with."""
    for params in space.enqueue:
        study.enqueue_trial(params, user_attrs={ENQUEUED: True})


def counted_trials(study: optuna.Study) -> int:
    """Trials that use the budget: complete or pruned, not those skipped unfitted (`fidelity.SKIPPED`)."""
    return sum(SKIPPED not in t.user_attrs for t in study.get_trials(deepcopy=False, states=COUNTED))


def waiting_retries(study: optuna.Study) -> int:
    """Queued retries of failed trials and promotions to a full-size fit, not started yet (enqueued
    defaults are neither): they run even when the budget is met."""
    return sum("failed_trial" in t.system_attrs or PROMOTED_FROM in t.user_attrs
               for t in study.get_trials(deepcopy=False, states=WAITING))


def fail_never_started(study: optuna.Study, grace_s: float) -> None:
    """Fail (and so re-queue) RUNNING trials that never beat: killed before their heartbeat thread's
    first write (inside Optuna's `ask` while sampling, or in the moment the thread and the objective
    start together), they would never go stale.

    Such a trial has no heartbeat row and started more than `grace_s` ago. The state change is
    atomic: of several workers recovering at once, one fails the trial and queues its retry
    (Optuna's own stale-trial path)."""
    storage = study._storage  # Optuna has no public accessor; its heartbeat helpers read the same
    if not is_heartbeat_enabled(storage):
        return
    oldest = datetime.now() - timedelta(seconds=grace_s)
    running = {t._trial_id for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
               if t.datetime_start is not None and t.datetime_start < oldest}
    for trial_id in sorted(running - trials_with_heartbeat(storage, running)):
        try:
            failed = storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        if failed:
            storage.get_heartbeat_stale_trial_callback()(study, storage.get_trial(trial_id))


def recover(study: optuna.Study, board: Leaderboard, grace_s: float) -> None:
    """Fail (and so re-queue) stale and never-started RUNNING trials; confirm the entries of trials that completed."""
    optuna.storages.fail_stale_trials(study)
    fail_never_started(study, grace_s)
    complete = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    board.confirm(e.id for e in board.unconfirmed(study.study_name) if e.trial in complete)


class Budget:
    """Study callback: confirm a completed trial's entry; queue the promotions the rungs earned; stop
    once the budget is met and no retry or promotion waits."""

    def __init__(self, board: Leaderboard, budget: int, climbed: tuple[Rung, ...] = (),
                 schedule: FidelitySchedule = FidelitySchedule()):
        self.board, self.budget, self.climbed, self.schedule = board, budget, climbed, schedule

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE and "entry_id" in trial.user_attrs:
            self.board.confirm([trial.user_attrs["entry_id"]])
        promote(study, self.climbed, self.schedule, self.budget)
        if counted_trials(study) >= self.budget and waiting_retries(study) == 0:
            study.stop()


def best_score(study: optuna.Study) -> float | None:
    """The study's best score so far, None before its first complete trial."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max((t.value for t in complete), default=None)


def progress_line(family: str, study: optuna.Study, trial: optuna.trial.FrozenTrial, budget: int, started: float) -> str:
    """One line per finished trial: its outcome, the study's progress and best score."""
    if trial.state == optuna.trial.TrialState.COMPLETE:
        outcome = f"score {trial.value:.4f}"
    elif trial.state == optuna.trial.TrialState.FAIL:
        outcome = f"FAILED ({trial.user_attrs.get('fail_reason', 'see log')})"
    elif SKIPPED in trial.user_attrs:
        outcome = f"skipped ({trial.user_attrs[SKIPPED]})"
    elif trial.state == optuna.trial.TrialState.PRUNED and "pruned_at" in trial.user_attrs:
        outcome = f"pruned at {trial.user_attrs['pruned_at']}"
    else:
        outcome = trial.state.name.lower()
    best = best_score(study)
    return (f"[sweep] {family} trial {trial.number}: {outcome} | {counted_trials(study)}/{budget} done, "
            f"best {'-' if best is None else f'{best:.4f}'} | {time.perf_counter() - started:.0f} s")


def low_fidelity_rungs(settings: SweepSettings, prepared: Prepared) -> tuple[Rung, ...]:
    """The rungs every trial of this run climbs (user subsets drawn from the seed), announced in one line."""
    schedule = settings.fidelity
    user_codes = pd.factorize(prepared.dataset.frame["user_id"], use_na_sentinel=False)[0].astype(np.int64)
    climbed = tuple(rungs(schedule, prepared.folds, user_codes, settings.seed))
    if climbed:
        shown = ", ".join(f"{r.share:.0%} of the users ({len(r.fold.train):,} training rows, "
                          f"{r.step_share:.0%} of the model steps)" for r in climbed)
        progress(f"[sweep] low-fidelity rungs on {prepared.folds[-1].name}: {shown}; a trial goes on while among "
                 f"the best 1/{schedule.reduction_factor} at its rung, and only full-size fits become entries")
    return climbed


def sweep_family(plan: FamilyPlan, settings: SweepSettings, prepared: Prepared, board: Leaderboard, run_dir: Path,
                 climbed: tuple[Rung, ...] = ()) -> FamilyResult:
    """Run this worker's share of one family's study (until the budget or the timeout is reached)."""
    family, schedule, budget = plan.family, settings.fidelity, settings.n_trials
    study, created = open_study(plan.storage, plan.study_name, plan.sampler, plan.pruner)
    describe_study(study, dict(plan.metadata))
    if created and settings.enqueue_defaults:
        enqueue_defaults(study, plan.space)
    recover(study, board, settings.grace_period)
    started = time.perf_counter()
    remaining = budget - counted_trials(study)
    progress(f"[sweep] {family}: study {study.study_name}, {budget - remaining}/{budget} trials already done")
    remaining = max(remaining, waiting_retries(study))
    if remaining > 0:
        timeout = settings.timeout_s
        context = TrialContext(family, plan.trial_recipe, plan.space, prepared, board, plan.logger, run_dir,
                               plan.report_every, settings.bootstrap, prune_folds_after=settings.prune_folds_after,
                               deadline=None if timeout is None else time.monotonic() + float(timeout),
                               rungs=climbed, explore_trials=min(schedule.explore_trials, budget),
                               reduction_factor=schedule.reduction_factor)
        callbacks = [freeze_survivors, Budget(board, budget, climbed, schedule),
                     lambda s, t: progress(progress_line(family, s, t, budget, started))]
        objective = Objective(context)
        study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(Exception,), callbacks=callbacks)
        run_promotions(study, objective, callbacks, schedule, timeout, started)
    return FamilyResult(family, study.study_name, counted_trials(study), best_score(study))


@contextlib.contextmanager
def survivors_frozen() -> Iterator[None]:
    """Inside: what a collection leaves alive is frozen out of the collector's passes (see `freeze_survivors`);
    after: everything is unfrozen again, so that cycles among the objects frozen meanwhile are freed."""
    freeze_survivors()
    try:
        yield
    finally:
        gc.unfreeze()


def freeze_survivors(*_: object) -> None:
    """Collect garbage, then freeze what is left (an Optuna callback after each trial, in place of
    `gc_after_trial`): later passes walk only what the next trial allocates."""
    gc.collect()
    gc.freeze()


def run_promotions(study: optuna.Study, objective: Objective, callbacks: list, schedule: FidelitySchedule,
                   timeout_s: float | None, started: float) -> None:
    """Fit the promotions queued or earned when this worker's trial count ran out, within the time budget
    (and, if the family has no full-size fit yet, the best deferred trial's); past the budget, see
    `finish_with_the_best`."""
    context = objective.context
    while True:
        complete = bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        left = None if timeout_s is None else float(timeout_s) - (time.perf_counter() - started)
        if left is not None and left <= 0:
            if not complete:
                finish_with_the_best(study, objective, callbacks)
            return
        if not waiting_retries(study):
            promote(study, context.rungs, schedule, budget=0)
        waiting = waiting_retries(study)
        if waiting == 0 and not complete and promote_the_best(study, context.rungs) is not None:
            waiting = 1
        if waiting == 0:
            return
        progress(f"[sweep] {context.family}: {waiting} queued fit(s) of trials promoted at the rungs")
        study.optimize(objective, n_trials=waiting, timeout=left, catch=(Exception,), callbacks=callbacks)


def finish_with_the_best(study: optuna.Study, objective: Objective, callbacks: list) -> None:
    """Past the budget with no full-size fit yet: the deferred trial that climbed highest gets its full-size
    fit at once, and the trials queued before it are skipped (pruned, unfitted), so that the family has
    one entry and the best one the rungs could find. Without rungs, one queued retry runs."""
    context = objective.context
    source = promote_the_best(study, context.rungs)
    if source is None:
        waiting = min(1, waiting_retries(study))
    else:
        context.finishing = source
        waiting = len(study.get_trials(deepcopy=False, states=WAITING))
        progress(f"[sweep] {context.family}: the budget is spent and no trial has a full-size fit yet: trial "
                 f"{source}, the best at the highest rung reached, gets one now")
    if waiting:
        study.optimize(objective, n_trials=waiting, catch=(Exception,), callbacks=callbacks)


def run_sweep(plans: list[FamilyPlan], settings: SweepSettings, prepared: Prepared, board: Leaderboard,
              run_dir: Path) -> list[FamilyResult]:
    """Sweep every family's plan, in order."""
    climbed = low_fidelity_rungs(settings, prepared)
    with survivors_frozen():
        return [sweep_family(plan, settings, prepared, board, run_dir, climbed) for plan in plans]
