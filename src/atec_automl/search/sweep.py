"""Sweeps: one Optuna study per model family, run one after another, each to its trial budget.

The budget `study.n_trials` counts the study's complete and pruned trials over all workers and
reruns, so rerunning the same command resumes a study instead of starting over, and N workers on
one storage share the budget (they may overshoot it by at most N - 1 trials running at the end).
Failed trials do not use the budget, but one invocation never runs more than the budget's
remainder (or the retries waiting in the queue, if more), so a trial that always fails cannot loop
forever. `study.timeout_s` caps each family's wall-clock per worker.

Nothing is lost to a killed worker: every sweep starts by failing the study's stale RUNNING trials
(no heartbeat for `study.grace_period`), which re-queues each with the same parameters, and runs
as many trials as there are queued retries even when the budget is already met, so a killed trial
is retried. Optuna starts waiting trials in number order: a retry queued behind enqueued default
trials that the budget did not reach waits behind them (a later sweep with a larger budget runs it). A trial's leaderboard entry is confirmed only once Optuna has recorded the trial
complete; the sweep's start confirms any that a kill left in between.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from atec_automl.labels import build_policy
from atec_automl.leaderboard import Leaderboard
from atec_automl.models.space import SearchSpace, load_space
from atec_automl.pipeline import Prepared
from atec_automl.progress import progress
from atec_automl.search.objective import Objective, TrialContext
from atec_automl.provenance import current_git_commit
from atec_automl.search.study import describe_study, open_study

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
    """Queue the space's listed trials (library defaults first) in a study this worker created."""
    for params in space.enqueue:
        study.enqueue_trial(params)


def counted_trials(study: optuna.Study) -> int:
    """Trials that use the budget: complete or pruned."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def waiting_retries(study: optuna.Study) -> int:
    """Queued retries of failed trials (same parameters) not started yet; enqueued defaults are not retries."""
    return sum("failed_trial" in t.system_attrs for t in study.get_trials(deepcopy=False, states=WAITING))


def recover(study: optuna.Study, board: Leaderboard) -> None:
    """Fail (and so re-queue) stale RUNNING trials; confirm the entries of trials that completed."""
    optuna.storages.fail_stale_trials(study)
    complete = {t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    board.confirm(e.id for e in board.unconfirmed(study.study_name) if e.trial in complete)


class Budget:
    """Study callback: confirm a completed trial's entry; stop once the budget is met and no retry waits."""

    def __init__(self, board: Leaderboard, budget: int):
        self.board, self.budget = board, budget

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE and "entry_id" in trial.user_attrs:
            self.board.confirm([trial.user_attrs["entry_id"]])
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
    else:
        outcome = trial.state.name.lower()
    best = best_score(study)
    return (f"[sweep] {family} trial {trial.number}: {outcome} | {counted_trials(study)}/{budget} done, "
            f"best {'-' if best is None else f'{best:.4f}'} | {time.perf_counter() - started:.0f} s")


def sweep_family(cfg: DictConfig, family: str, prepared: Prepared, board: Leaderboard, run_dir: Path) -> FamilyResult:
    """Run this worker's share of one family's study (until the budget or the timeout is reached)."""
    family_cfg = family_config(cfg, family)
    space = load_space(family_cfg.search, config_dir())
    study, created = open_study(family_cfg, family, prepared.dataset.fingerprint)
    describe_study(study, study_metadata(family_cfg, family, prepared))
    budget = int(cfg.study.n_trials)
    if created and bool(cfg.study.enqueue_defaults):
        enqueue_defaults(study, space)
    recover(study, board)
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
                               deadline=None if timeout is None else time.monotonic() + float(timeout))
        study.optimize(
            Objective(context), n_trials=remaining, timeout=cfg.study.timeout_s, catch=(Exception,), gc_after_trial=True,
            callbacks=[Budget(board, budget),
                       lambda s, t: progress(progress_line(family, s, t, budget, started))])
    return FamilyResult(family, study.study_name, counted_trials(study), best_score(study))


def run_sweep(cfg: DictConfig, prepared: Prepared, run_dir: Path) -> list[FamilyResult]:
    """Sweep every family of `cfg.sweep.models`, in order."""
    board = Leaderboard(cfg.leaderboard.path)
    return [sweep_family(cfg, family, prepared, board, run_dir) for family in cfg.sweep.models]
