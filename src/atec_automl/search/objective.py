"""One Optuna trial: sample a configuration, fit and score it on every fold, record a leaderboard entry.

Each fold trains on its training days, early-stops on its early-stopping window and is then scored
on its scored days; the last fold's model also predicts every test board, stored with the entry
(and scored against hidden labels where the data has them, for reporting only).

On data large enough for low-fidelity rungs (`search/fidelity.py`), a trial first climbs the rungs
and is pruned at the first one where it is not among the best; the rung scores are its only
intermediate values then. Otherwise the first fold's epochs (or blocks of iterations) and each
fold's running mean are reported, and the study's pruner may stop the trial at any of them.
"""
from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from omegaconf import DictConfig, OmegaConf

from atec_automl.errors import AtecError
from atec_automl.evaluation import FoldResult, build_entry
from atec_automl.labels import build_policy
from atec_automl.leaderboard import DuplicateEntryError, Entry, Leaderboard
from atec_automl.loggers import TrialLogger
from atec_automl.models.base import Model, Report
from atec_automl.search.space import SearchSpace, apply, suggest
from atec_automl.pipeline import Prepared, fit_fold, label_policy, policy_queries, predict_boards
from atec_automl.search.fidelity import DEFERRED, PROMOTED_FROM, Rung, explored

FOLD_STEP = 1_000_000
"""Fold k's running mean score is reported at step FOLD_STEP + k, apart from the per-epoch steps."""


@dataclass
class TrialContext:
    """What every trial of one family's study shares."""

    family: str
    cfg: DictConfig
    space: SearchSpace
    prepared: Prepared
    board: Leaderboard
    logger: TrialLogger
    run_dir: Path
    report_every: int
    bootstrap: int = 200
    rungs: tuple[Rung, ...] = ()
    explore_trials: int = 0
    deadline: float | None = None
    """`time.perf_counter()` at which the family's time budget ends: no trial is deferred past it."""


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
        trial_cfg = apply(context.cfg, context.space, values)
        context.logger.start(f"{context.family}-{trial.number}", trial.study.study_name, dict(values))
        try:
            score = self._run(trial, trial_cfg, values)
        except optuna.TrialPruned:
            context.logger.finish()
            raise
        except Exception as error:
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            context.logger.finish(failed=True)
            release_gpu_memory()
            raise
        context.logger.finish()
        return score

    def _climb(self, trial: optuna.Trial, trial_cfg: DictConfig) -> None:
        """Fit and score the trial at each low-fidelity rung; raise TrialPruned where it falls behind, or
        when it passes them while the study is still exploring (deferred). A promoted trial skips them."""
        context = self.context
        if PROMOTED_FROM in trial.user_attrs:
            return
        for rung in context.rungs:
            root = context.run_dir / "trials" / f"{context.family}-{trial.number}" / rung.fold.name
            result, _ = fit_fold(trial_cfg, context.prepared, rung.fold, root, None,
                                 label_policy(trial_cfg, context.prepared))
            trial.set_user_attr(f"rung_{rung.share:g}_score", result.atec.score)
            context.logger.log({"rung_score": result.atec.score, "rung_share": rung.share}, step=rung.step)
            trial.report(result.atec.score, rung.step)
            if trial.should_prune():
                trial.set_user_attr("pruned_at", f"{rung.share:.0%} of the users, score {result.atec.score:.4f}")
                raise optuna.TrialPruned(f"pruned at {rung.share:.0%} of the users with score {result.atec.score:.5f}")
        if context.rungs and self._exploring(trial):
            trial.set_user_attr(DEFERRED, True)
            trial.set_user_attr("pruned_at", f"the last rung, deferred: the full-size fit waits until "
                                             f"{context.explore_trials} trials have explored")
            raise optuna.TrialPruned("deferred until the exploration is over")

    def _exploring(self, trial: optuna.Trial) -> bool:
        """Whether fewer than `explore_trials` trials have scored at the first rung, within the time budget."""
        context = self.context
        in_time = context.deadline is None or time.perf_counter() < context.deadline
        return in_time and explored(trial.study, context.rungs[0].step) < context.explore_trials

    def _run(self, trial: optuna.Trial, trial_cfg: DictConfig, values: dict) -> float:
        """Climb the low-fidelity rungs, then fit every fold at full size (without rungs, pruning on
        the first fold's epochs and on each fold's running mean)."""
        context = self.context
        self._climb(trial, trial_cfg)
        results: list[FoldResult] = []
        queries: list[list[dict] | None] = []
        model: Model | None = None
        for k, fold in enumerate(context.prepared.folds):
            report = pruning_report(trial, context.logger, context.report_every) if k == 0 and not context.rungs else None
            root = context.run_dir / "trials" / f"{context.family}-{trial.number}" / fold.name
            policy = label_policy(trial_cfg, context.prepared)
            result, model = fit_fold(trial_cfg, context.prepared, fold, root, report, policy)
            results.append(result)
            queries.append(policy_queries(policy, context.prepared))
            running = float(np.mean([r.atec.score for r in results]))
            if context.rungs:
                continue
            trial.report(running, FOLD_STEP + k)
            if k + 1 < len(context.prepared.folds) and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after {fold.name} with mean score {running:.5f}")
        entry = with_queries(self._entry(trial, trial_cfg, values, results, predict_boards(model, context.prepared)),
                             queries)
        if not math.isfinite(entry.score):
            raise AtecError(f"trial {trial.number}: the mean ATEC score is {entry.score}")
        self._record(trial, entry)
        context.logger.log({"score": entry.score, "tpr1": entry.tpr1, "tpr2": entry.tpr2, "tpr3": entry.tpr3,
                            "auc": entry.auc, "fit_seconds": entry.fit_seconds})
        return entry.score

    def _entry(self, trial: optuna.Trial, trial_cfg: DictConfig, values: dict, results: list[FoldResult],
               boards: dict[str, np.ndarray]) -> Entry:
        """The leaderboard entry of a finished trial (best step: the last fold's, the one nearest the test)."""
        context = self.context
        truth = context.prepared.truth
        true = truth.board_scores(boards) if truth is not None else {}
        return build_entry(
            results, context.bootstrap, family=context.family, study=trial.study.study_name, trial=trial.number,
            params=values, config_yaml=OmegaConf.to_yaml(trial_cfg, resolve=True),
            data_fingerprint=context.prepared.dataset.fingerprint,
            split="; ".join(f.describe() for f in context.prepared.folds), policy=build_policy(trial_cfg).name,
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
