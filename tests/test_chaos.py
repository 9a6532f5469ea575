"""Killed workers: a kill inside Optuna's `ask` (a real SIGKILL of a real process), and the chaos script."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from atec_automl.leaderboard import Leaderboard
from atec_automl.search.study import storage_for
from atec_automl.search.sweep import recover

REPO = Path(__file__).resolve().parents[1]
GRACE_S = 2

ASKER = """
import sys, time
import optuna
from omegaconf import OmegaConf
from atec_automl.search.study import quiet_optuna, storage_for


class SlowToSample(optuna.samplers.RandomSampler):
    def before_trial(self, study, trial):
        print("sampling", flush=True)  # the trial is RUNNING; its heartbeat starts after `ask` returns
        time.sleep(600)


def late_first_heartbeat(storage, trial_id):
    time.sleep(600)  # the heartbeat thread has started; its first write has not happened yet


def objective(trial):
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("worker", "asker")  # what the sweep's objective does first
    print("objective", flush=True)
    time.sleep(600)


quiet_optuna()
storage = storage_for(OmegaConf.create({"storage": sys.argv[1], "heartbeat_interval": 1, "grace_period": 2,
                                        "max_retry": 2, "engine_kwargs": {}}))
slow_sampling = sys.argv[2] == "sampling"
if not slow_sampling:
    optuna.storages.RDBStorage.record_heartbeat = late_first_heartbeat
study = optuna.create_study(study_name="killed-in-ask", storage=storage, direction="maximize", load_if_exists=True,
                            sampler=SlowToSample() if slow_sampling else optuna.samplers.RandomSampler())
if not study.trials:
    study.enqueue_trial({"x": 0.25})
study.optimize(objective, n_trials=1)
"""


def kill_while_sampling(url: str, moment: str = "sampling") -> None:
    """Start a worker on the study and SIGKILL it while Optuna samples its trial (after `ask` set it RUNNING),
    or (`moment="objective"`) once the objective named its worker but before the heartbeat thread's first write."""
    worker = subprocess.Popen([sys.executable, "-c", ASKER, url, moment], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert worker.stdout.readline().strip() == moment
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_a_trial_killed_while_sampling_before_its_heartbeat_is_failed_and_retried(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.sqlite"
    kill_while_sampling(url)
    time.sleep(GRACE_S + 1)
    storage = storage_for(OmegaConf.create({"storage": url, "heartbeat_interval": 1, "grace_period": GRACE_S,
                                            "max_retry": 2, "engine_kwargs": {}}))
    study = optuna.load_study(study_name="killed-in-ask", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.RUNNING]
    recover(study, Leaderboard(tmp_path / "leaderboard.sqlite"), GRACE_S)
    killed, retry = study.trials
    assert killed.state == optuna.trial.TrialState.FAIL
    assert retry.state == optuna.trial.TrialState.WAITING and retry.system_attrs["failed_trial"] == 0
    assert retry.system_attrs["fixed_params"] == {"x": 0.25}
    recover(study, Leaderboard(tmp_path / "leaderboard.sqlite"), GRACE_S)
    assert len(study.trials) == 2, "recovering again queues no second retry"


def test_a_trial_killed_before_its_heartbeat_threads_first_write_is_failed_and_retried(tmp_path: Path) -> None:
    """What benchmarks/chaos.py found: a kill just as the trial started left it RUNNING with a worker and no heartbeat."""
    url = f"sqlite:///{tmp_path}/optuna.sqlite"
    kill_while_sampling(url, "objective")
    time.sleep(GRACE_S + 1)
    storage = storage_for(OmegaConf.create({"storage": url, "heartbeat_interval": 1, "grace_period": GRACE_S,
                                            "max_retry": 2, "engine_kwargs": {}}))
    study = optuna.load_study(study_name="killed-in-ask", storage=storage)
    assert study.trials[0].user_attrs == {"worker": "asker"}
    recover(study, Leaderboard(tmp_path / "leaderboard.sqlite"), GRACE_S)
    assert [t.state.name for t in study.trials] == ["FAIL", "WAITING"]
    assert study.trials[1].params == {"x": 0.25} and study.trials[1].user_attrs == {}


def test_a_retry_killed_while_sampling_is_failed_and_retried_again(tmp_path: Path) -> None:
    """A retry killed in its turn is failed and retried again; it starts without the dead attempt's attributes."""
    url = f"sqlite:///{tmp_path}/optuna.sqlite"
    storage = storage_for(OmegaConf.create({"storage": url, "heartbeat_interval": 1, "grace_period": GRACE_S,
                                            "max_retry": 2, "engine_kwargs": {}}))
    study = optuna.create_study(study_name="killed-in-ask", storage=storage, direction="maximize")
    first = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    first.set_user_attr("worker", "elsewhere:1")
    first.set_user_attr("entry_id", 7)
    storage.record_heartbeat(first._trial_id)  # its worker died in the objective
    time.sleep(GRACE_S + 1)
    recover(study, Leaderboard(tmp_path / "leaderboard.sqlite"), GRACE_S)
    queued = study.trials[1]
    assert queued.state == optuna.trial.TrialState.WAITING and queued.user_attrs == {}
    kill_while_sampling(url)
    time.sleep(GRACE_S + 1)
    recover(study, Leaderboard(tmp_path / "leaderboard.sqlite"), GRACE_S)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "WAITING"]
    assert study.trials[2].system_attrs["retry_history"] == [0, 1]
    assert study.trials[2].params == study.trials[0].params


def test_a_trial_still_sampling_within_the_grace_period_is_left_running(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.sqlite"
    worker = subprocess.Popen([sys.executable, "-c", ASKER, url, "sampling"], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert worker.stdout.readline().strip() == "sampling"
        time.sleep(GRACE_S + 1)
        storage = storage_for(OmegaConf.create({"storage": url, "heartbeat_interval": 1, "grace_period": 60,
                                                "max_retry": 2, "engine_kwargs": {}}))
        study = optuna.load_study(study_name="killed-in-ask", storage=storage)
        recover(study, Leaderboard(tmp_path / "leaderboard.sqlite"), grace_s=60)
        assert [t.state for t in study.trials] == [optuna.trial.TrialState.RUNNING]
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


@pytest.mark.slow
def test_the_chaos_script_kills_workers_and_finds_nothing_lost() -> None:
    result = subprocess.run([sys.executable, "benchmarks/chaos.py", "--rounds", "1", "--kills", "2", "--max-delay", "20"],
                            cwd=REPO, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout
    assert re.search(r"^chaos: \d+ rounds, 2 kills \(", output, re.M), output
    assert output.count("\nkill ") == 2 and "kill 2: worker" in output
    complete = int(re.search(r"COMPLETE (\d+)", output).group(1))
    assert complete >= 4, output  # the budget of the one round
    assert re.search(rf"^entries: {complete} confirmed \(ranked\) = {complete} COMPLETE trials;.* duplicates 0, orphans 0$",
                     output, re.M), output
    failed = int(re.search(r"FAIL (\d+)", output).group(1))
    assert f"FAIL trials {failed}: {failed} retried with the same parameters to COMPLETE; RUNNING or queued retries left: 0" in output
    assert "RUNNING 0" in output and "staging leftovers: 0" in output
    assert re.search(r"^submission \S+: test_a \d+ rows, test_b \d+ rows$", output, re.M), output
    assert output.rstrip().endswith("all checks passed")
