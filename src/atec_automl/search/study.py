"""Opening a study: storage with heartbeats, explicit sampler and pruner (the task layer names the
study per family and data, `tasks._sweep.study_name`, and builds its sampler and pruner).

Sampling is seeded per trial, not per worker: trial k of a study draws from a generator seeded by
(`study.sampler.seed`, k). Trial numbers are handed out by the storage, so workers sharing a study
never draw the same random numbers, and a lone worker rerun with the same seed on a fresh storage
repeats its trials exactly, with nothing per worker (host, pid, index) to configure or keep stable.
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from atec_automl.databases import redacted, retry_schema_race
from atec_automl.errors import AtecError


METRIC_NAME = "atec_score"
"""The objective's name as Optuna and its dashboard show it: the mean ATEC score over the folds."""

def quiet_optuna() -> None:
    """Our own progress lines replace Optuna's per-trial log; its experimental-feature notices are noise."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage_for(settings: Mapping[str, Any]) -> optuna.storages.RDBStorage:
    """RDB storage (SQLite file or PostgreSQL URL) whose heartbeats fail and retry a killed worker's trial.

    `settings` holds the `study` section as plain values: `storage` (the URL), `heartbeat_interval`,
    `grace_period`, `max_retry` and optionally `engine_kwargs`."""
    if not settings.get("storage"):
        raise AtecError("study.storage is not set: give the study's database URL, e.g. "
                        "study.storage=postgresql+psycopg://USER:PASSWORD@HOST:5432/atec")
    url = str(settings["storage"])
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        return retry_schema_race(lambda: _rdb_storage(url, settings))
    except Exception as error:
        raise cannot_open(url, error) from error


def cannot_open(url: str, error: Exception) -> AtecError:
    """The one-line error for a storage that does not open."""
    return AtecError(f"study.storage {redacted(url)}: cannot open ({type(error).__name__}: {str(error).splitlines()[0]})")


def _rdb_storage(url: str, settings: Mapping[str, Any]) -> optuna.storages.RDBStorage:
    """Open (and on an empty database, create) the storage."""
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=dict(settings.get("engine_kwargs") or {}),
        heartbeat_interval=int(settings["heartbeat_interval"]),
        grace_period=int(settings["grace_period"]),
        heartbeat_stale_trial_callback=RetryKilledTrial(max_retry=int(settings["max_retry"])),
    )


def trials_with_heartbeat(storage: optuna.storages.BaseStorage, trial_ids: set[int]) -> set[int]:
    """Which of these trials have a heartbeat recorded (Optuna has no public reader: its `trial_heartbeats` table)."""
    rdb = getattr(storage, "_backend", storage)  # a study's RDB storage comes wrapped in Optuna's cache
    if not trial_ids or not isinstance(rdb, optuna.storages.RDBStorage):
        return set()
    query = sqlalchemy.text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
        sqlalchemy.bindparam("ids", expanding=True))
    with rdb.engine.connect() as connection:
        return {row[0] for row in connection.execute(query, {"ids": sorted(trial_ids)})}


ATTEMPT_ATTRS = ("worker", "entry_id", "finished_at", "fail_reason")
"""User attributes the objective sets on one attempt of a trial; a retry starts without them."""


class RetryKilledTrial(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's re-queueing of a stale trial (same parameters), minus the killed attempt's own attributes:
    a retry carrying them would name the dead worker and point at the dead attempt's unconfirmed entry."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ATTEMPT_ATTRS}
        super().__call__(study, trial)


def open_study(storage_settings: Mapping[str, Any], name: str, sampler: BaseSampler,
               pruner: optuna.pruners.BasePruner) -> tuple[optuna.Study, bool]:
    """Create or resume the study `name` (maximising the mean ATEC score over folds) in the storage of
    `storage_settings` (see `storage_for`).

    Returns the study and whether this call created it: creation is atomic in the storage, so of
    several workers starting at once exactly one learns that it created the study.
    """
    quiet_optuna()
    settings = dict(storage=storage_for(storage_settings), study_name=name, sampler=sampler, pruner=pruner)
    try:
        return optuna.create_study(direction="maximize", **settings), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(**settings), False


def describe_study(study: optuna.Study, metadata: dict[str, str]) -> None:
    """Name the objective and record what the study's trials share (data, features, split, labels,
    commit, family) as study user attributes, which `optuna-dashboard` shows beside the study. A
    resumed study takes the latest worker's values (its `git_commit` above all; each entry keeps its own)."""
    study.set_metric_names([METRIC_NAME])
    current = study.user_attrs
    for key, value in metadata.items():
        if current.get(key) != value:
            study.set_user_attr(key, value)


def trial_seed(seed: int, trial_number: int) -> int:
    """The sampler seed of one trial: independent streams for every (seed, trial number) pair."""
    return int(np.random.SeedSequence([seed, trial_number]).generate_state(1)[0])


class TrialSeededSampler(BaseSampler):
    """A sampler rebuilt for every trial with the seed `trial_seed(seed, trial.number)`.

    The inner sampler (TPE by default) still reads the whole study history; only its random draws
    are tied to the trial number instead of to the worker's own sequence of trials.
    """

    def __init__(self, make: Callable[..., BaseSampler], seed: int):
        self._make, self._seed = make, int(seed)
        self._by_trial: dict[int, BaseSampler] = {}

    def __str__(self) -> str:
        return f"TrialSeededSampler(seed={self._seed})"

    def _sampler(self, trial: FrozenTrial) -> BaseSampler:
        """The trial's own inner sampler, built on first use."""
        if trial.number not in self._by_trial:
            self._by_trial[trial.number] = self._make(seed=trial_seed(self._seed, trial.number))
        return self._by_trial[trial.number]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._sampler(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._sampler(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._sampler(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._sampler(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._sampler(trial).after_trial(study, trial, state, values)
        del self._by_trial[trial.number]
