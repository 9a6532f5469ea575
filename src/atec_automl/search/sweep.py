"""Sweeps: one Optuna study per model family, run one after another, each to its trial budget.

The budget `study.n_trials` counts the study's complete and pruned trials over all workers and
reruns, so rerunning the same command resumes a study instead of starting over, and N workers on
one storage share the budget (they may overshoot it by at most N - 1 trials running at the end).
Failed trials do not use the budget, but one invocation never runs more than the budget's
remainder, so a trial that always fails cannot loop forever. `study.timeout_s` caps each family's
wall-clock per worker.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from atec_automl.leaderboard import Leaderboard
from atec_automl.models.space import SearchSpace, load_space
from atec_automl.pipeline import Prepared
from atec_automl.progress import progress
from atec_automl.search.objective import Objective, TrialContext
from atec_automl.search.study import open_study

COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass
class FamilyResult:
    """How one family's study stands after this worker's turn."""

    family: str
    study_name: str
    counted: int
    best_score: float | None


def family_config(cfg: DictConfig, family: str) -> DictConfig:
    """The run's config recomposed for one family: the user's overrides, `model=<family>`, then
    the family's `sweep.family_overrides`."""
    user = [o for o in HydraConfig.get().overrides.task if o.split("=", 1)[0].lstrip("+~") not in ("model", "search")]
    extra = list(cfg.sweep.family_overrides.get(family) or [])
    return compose(config_name="config", overrides=[*user, f"model={family}", f"+search={family}", *extra])


def enqueue_defaults(study: optuna.Study, space: SearchSpace) -> None:
    """Queue the space's listed trials (library defaults first) in a study this worker created."""
    for params in space.enqueue:
        study.enqueue_trial(params)


def counted_trials(study: optuna.Study) -> int:
    """Trials that use the budget: complete or pruned."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


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
    else:
        outcome = trial.state.name.lower()
    best = best_score(study)
    return (f"[sweep] {family} trial {trial.number}: {outcome} | {counted_trials(study)}/{budget} done, "
            f"best {'-' if best is None else f'{best:.4f}'} | {time.perf_counter() - started:.0f} s")


def sweep_family(cfg: DictConfig, family: str, prepared: Prepared, board: Leaderboard, run_dir: Path) -> FamilyResult:
    """Run this worker's share of one family's study (until the budget or the timeout is reached)."""
    family_cfg = family_config(cfg, family)
    space = load_space(family_cfg.search)
    study, created = open_study(family_cfg, family, prepared.dataset.fingerprint)
    budget = int(cfg.study.n_trials)
    if created and bool(cfg.study.enqueue_defaults):
        enqueue_defaults(study, space)
    started = time.perf_counter()
    remaining = budget - counted_trials(study)
    progress(f"[sweep] {family}: study {study.study_name}, {budget - remaining}/{budget} trials already done")
    if remaining > 0:
        context = TrialContext(family, family_cfg, space, prepared, board, instantiate(cfg.logger), run_dir,
                               int(cfg.sweep.report_every.get(family, 1)))
        study.optimize(
            Objective(context), n_trials=remaining, timeout=cfg.study.timeout_s, catch=(Exception,), gc_after_trial=True,
            callbacks=[optuna.study.MaxTrialsCallback(budget, states=COUNTED),
                       lambda s, t: progress(progress_line(family, s, t, budget, started))])
    return FamilyResult(family, study.study_name, counted_trials(study), best_score(study))


def run_sweep(cfg: DictConfig, prepared: Prepared, run_dir: Path) -> list[FamilyResult]:
    """Sweep every family of `cfg.sweep.models`, in order."""
    board = Leaderboard(cfg.leaderboard.path)
    return [sweep_family(cfg, family, prepared, board, run_dir) for family in cfg.sweep.models]
