"""Sweeps: one Optuna study per model family, run one after another, each to its trial budget.

The budget `study.n_trials` counts the study's complete and pruned trials over all workers and
reruns, so rerunning the same command resumes a study instead of starting over, and N workers on
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
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.storages._heartbeat import is_heartbeat_enabled

from atec_automl.labels import build_policy
from atec_automl.leaderboard import Leaderboard
from atec_automl.search.space import SearchSpace, load_space
from atec_automl.pipeline import Prepared
from atec_automl.progress import progress
from atec_automl.search.fidelity import PROMOTED_FROM, FidelitySchedule, Rung, promote, promote_the_best, rungs
from atec_automl.search.objective import ENQUEUED, Objective, TrialContext
from atec_automl.provenance import current_git_commit
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


def user_overrides() -> list[str]:
    """The command line's overrides, less the `model` and `search` choices that the sweep makes per family."""
    return [o for o in HydraConfig.get().overrides.task if o.split("=", 1)[0].lstrip("+~") not in ("model", "search")]


def family_config(cfg: DictConfig, family: str) -> DictConfig:
    """The run's config recomposed for one family: the user's overrides, `model=<family>`, then
    the family's `sweep.family_overrides`; the grey-label policy joins its search space unless the
    user fixed `labels=` or turned `sweep.search_labels` off."""
    user = user_overrides()
    extra = list(cfg.sweep.family_overrides.get(family) or [])
    composed = compose(config_name="config", overrides=[*user, f"model={family}", f"+search={family}", *extra])
    if searches_labels(cfg, user):
        with open_dict(composed):
            composed.search.params = OmegaConf.merge(composed.search.params, cfg.sweep.grey_labels)
    return composed


def searches_labels(cfg: DictConfig, user_overrides: list[str]) -> bool:
    """Whether the grey-label policy is searched: on by default, off when the user chose one."""
    fixed = any(o.split("=", 1)[0].lstrip("+~") == "labels" for o in user_overrides)
    return bool(cfg.sweep.get("search_labels", True)) and not fixed


def config_dir() -> Path:
    """The directory of the primary Hydra config (where group options such as `labels/` live)."""
    for source in HydraConfig.get().runtime.config_sources:
        if source.provider == "main" and source.schema == "file":
            return Path(source.path)
    raise RuntimeError("no primary config directory in Hydra's config sources")


def features_summary(features: dict) -> str:
    """The feature spec in a few words: its class, its entity groups (if any) and a hash of the whole spec."""
    digest = hashlib.sha256(json.dumps(features, sort_keys=True, default=str).encode()).hexdigest()[:10]
    kind = str(features.get("_target_", "features")).rsplit(".", 1)[-1]
    groups = features.get("entities")
    return f"{kind}" + (f" ({', '.join(groups)})" if isinstance(groups, dict) else "") + f", spec {digest}"


def study_metadata(cfg: DictConfig, family: str, prepared: Prepared) -> dict[str, str]:
    """What every trial of the family's study shares, as the study's user attributes show it."""
    user = user_overrides()
    return {
        "family": family,
        "data_fingerprint": prepared.dataset.fingerprint,
        "features": features_summary(OmegaConf.to_container(cfg.features, resolve=True)),
        "split": "; ".join(fold.describe() for fold in prepared.folds),
        "label_policy": "searched" if searches_labels(cfg, user) else build_policy(cfg).name,
        "git_commit": current_git_commit(),
    }


def enqueue_defaults(study: optuna.Study, space: SearchSpace) -> None:
    """Queue the space's listed trials (library defaults first, one per label policy) in a study this
    worker created, marked `enqueued` so that no fold pruning cuts them short: they are the baselines
    every policy and every sampled trial is compared with."""
    for params in space.enqueue:
        study.enqueue_trial(params, user_attrs={ENQUEUED: True})


def counted_trials(study: optuna.Study) -> int:
    """Trials that use the budget: complete or pruned."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


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
    elif trial.state == optuna.trial.TrialState.PRUNED and "pruned_at" in trial.user_attrs:
        outcome = f"pruned at {trial.user_attrs['pruned_at']}"
    else:
        outcome = trial.state.name.lower()
    best = best_score(study)
    return (f"[sweep] {family} trial {trial.number}: {outcome} | {counted_trials(study)}/{budget} done, "
            f"best {'-' if best is None else f'{best:.4f}'} | {time.perf_counter() - started:.0f} s")


def fidelity_schedule(cfg: DictConfig) -> FidelitySchedule:
    """The low-fidelity rungs of `sweep.fidelity` (none when the section is absent)."""
    section = cfg.sweep.get("fidelity")
    if section is None:
        return FidelitySchedule()
    return FidelitySchedule(tuple(float(s) for s in section.shares), int(section.min_train_rows),
                            int(section.reduction_factor), int(section.get("explore_trials", 10)),
                            bool(section.get("cut_steps", True)))


def low_fidelity_rungs(cfg: DictConfig, prepared: Prepared) -> tuple[Rung, ...]:
    """The rungs every trial of this run climbs (user subsets drawn from `seed`), announced in one line."""
    schedule = fidelity_schedule(cfg)
    user_codes = pd.factorize(prepared.dataset.frame["user_id"], use_na_sentinel=False)[0].astype(np.int64)
    climbed = tuple(rungs(schedule, prepared.folds, user_codes, int(cfg.seed)))
    if climbed:
        shown = ", ".join(f"{r.share:.0%} of the users ({len(r.fold.train):,} training rows, "
                          f"{r.step_share:.0%} of the model steps)" for r in climbed)
        progress(f"[sweep] low-fidelity rungs on {prepared.folds[-1].name}: {shown}; a trial goes on while among "
                 f"the best 1/{schedule.reduction_factor} at its rung, and only full-size fits become entries")
    return climbed


def sweep_family(cfg: DictConfig, family: str, prepared: Prepared, board: Leaderboard, run_dir: Path,
                 climbed: tuple[Rung, ...] = ()) -> FamilyResult:
    """Run this worker's share of one family's study (until the budget or the timeout is reached)."""
    family_cfg = family_config(cfg, family)
    space = load_space(family_cfg.search, config_dir())
    schedule = fidelity_schedule(cfg)
    study, created = open_study(family_cfg, family, prepared.dataset.fingerprint)
    describe_study(study, study_metadata(family_cfg, family, prepared))
    budget = int(cfg.study.n_trials)
    if created and bool(cfg.study.enqueue_defaults):
        enqueue_defaults(study, space)
    recover(study, board, float(cfg.study.grace_period))
    started = time.perf_counter()
    remaining = budget - counted_trials(study)
    progress(f"[sweep] {family}: study {study.study_name}, {budget - remaining}/{budget} trials already done")
    remaining = max(remaining, waiting_retries(study))
    if remaining > 0:
        timeout = cfg.study.timeout_s
        after = cfg.sweep.get("prune_folds_after", 3)
        context = TrialContext(family, family_cfg, space, prepared, board, instantiate(cfg.logger), run_dir,
                               int(cfg.sweep.report_every.get(family, 1)), int(cfg.leaderboard.get("bootstrap", 200)),
                               prune_folds_after=None if after is None else int(after),
                               deadline=None if timeout is None else time.monotonic() + float(timeout),
                               rungs=climbed, explore_trials=min(schedule.explore_trials, budget),
                               reduction_factor=schedule.reduction_factor)
        callbacks = [Budget(board, budget, climbed, schedule),
                     lambda s, t: progress(progress_line(family, s, t, budget, started))]
        objective = Objective(context)
        study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(Exception,),
                       gc_after_trial=True, callbacks=callbacks)
        run_promotions(study, objective, callbacks, schedule, timeout, started)
    return FamilyResult(family, study.study_name, counted_trials(study), best_score(study))


def run_promotions(study: optuna.Study, objective: Objective, callbacks: list, schedule: FidelitySchedule,
                   timeout_s: float | None, started: float) -> None:
    """Fit the promotions queued or earned when this worker's trial count ran out, within the time budget.
    Past it, only while the family has no full-size fit: then one promotion at a time (the best deferred
    trial's when none is queued) goes straight to its full-size fit, so that every family has an entry."""
    context = objective.context
    while True:
        complete = bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        left = None if timeout_s is None else float(timeout_s) - (time.perf_counter() - started)
        past_budget = left is not None and left <= 0
        if past_budget and complete:
            return
        if not waiting_retries(study):
            promote(study, context.rungs, schedule, budget=0)
        if not complete and not waiting_retries(study):
            promote_the_best(study, context.rungs)
        waiting = waiting_retries(study)
        if waiting == 0:
            return
        if past_budget:
            waiting, left, context.finishing = 1, None, True
        progress(f"[sweep] {context.family}: {waiting} queued fit(s) of trials promoted at the rungs")
        study.optimize(objective, n_trials=waiting, timeout=left, catch=(Exception,), gc_after_trial=True,
                       callbacks=callbacks)


def run_sweep(cfg: DictConfig, prepared: Prepared, run_dir: Path) -> list[FamilyResult]:
    """Sweep every family of `cfg.sweep.models`, in order."""
    board = Leaderboard(cfg.leaderboard.url or cfg.leaderboard.path)
    climbed = low_fidelity_rungs(cfg, prepared)
    return [sweep_family(cfg, family, prepared, board, run_dir, climbed) for family in cfg.sweep.models]
