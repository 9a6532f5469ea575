"""Sweeps end to end as users run them: `python run.py ...` subprocesses on small synthetic data,
a real SQLite study and leaderboard; a worker killed mid-trial; trials that fail."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from atec_automl.leaderboard import Leaderboard
from atec_automl.search.space import load_space

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic data and the features cache shared by this module's runs (generated once)."""
    return tmp_path_factory.mktemp("shared")


def sweep_command(shared: Path, root: Path, *overrides: str) -> list[str]:
    """`python run.py experiment=smoke` with every output under `root`."""
    return [sys.executable, "run.py", "experiment=smoke", f"data.dir={shared}/data",
            f"features.cache_dir={shared}/features", f"leaderboard.path={root}/leaderboard.sqlite",
            f"study.storage=sqlite:///{root}/optuna.sqlite", f"submit.dir={root}/submissions",
            f"hydra.run.dir={root}/run", *overrides]


def run(command: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command from the repo root; fail the test with its output if it fails."""
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "WANDB_MODE": "disabled"})
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def studies(root: Path) -> dict[str, optuna.Study]:
    """The studies in `root`'s SQLite storage, by family."""
    storage = f"sqlite:///{root}/optuna.sqlite"
    return {s.study_name.split("-")[1]: optuna.load_study(study_name=s.study_name, storage=storage)
            for s in optuna.get_all_study_summaries(storage)}


@pytest.mark.slow
def test_smoke_experiment_end_to_end(shared: Path, tmp_path: Path) -> None:
    result = run(sweep_command(shared, tmp_path))
    board = Leaderboard(tmp_path / "leaderboard.sqlite")
    entries = board.ranked()
    assert {e.family for e in entries} == {"catboost", "mlp", "cnn_lstm"}
    assert len(entries) == 6
    assert all(0 <= e.score <= 1 and e.config_yaml and e.fold_scores for e in entries)
    for study in studies(tmp_path).values():
        assert study.trials[0].system_attrs["fixed_params"] == study.trials[0].params
    catboost_defaults = load_space(REPO / "conf/search/catboost.yaml").enqueue[0]
    policies = [t.params["grey_labels"] for t in finished(studies(tmp_path)["catboost"])]
    assert studies(tmp_path)["catboost"].trials[0].params == {**catboost_defaults, "grey_labels": "as_black"}
    assert policies == ["as_black", "drop"]  # the library defaults, enqueued once per policy
    assert {e.policy for e in entries} == {"as_black", "drop"}
    assert all(e.score_low <= e.score <= e.score_high and e.frauds > 0 for e in entries)
    assert all(e.true_a is not None and e.true_b is not None for e in entries)

    submission = next((tmp_path / "submissions").iterdir())
    manifest = json.loads((submission / "manifest.json").read_text())
    assert manifest["entries"][0]["id"] == entries[0].id
    for board_name in ("test_a", "test_b"):
        written = pd.read_csv(submission / f"{board_name}.csv", dtype={"event_id": str})
        expected = pd.read_parquet(shared / "data" / f"{board_name}.parquet", columns=["event_id"])
        assert list(written.columns) == ["event_id", "score"]
        assert sorted(written["event_id"]) == sorted(expected["event_id"].astype(str))
        assert written["score"].notna().all()
    assert "true test_a score" in result.stdout
    log = (tmp_path / "run" / "run.log").read_text()
    assert "[sweep] catboost trial 1:" in log and "[submit] wrote" in log, "progress lines are kept in the run's log"
    output = result.stdout.rstrip().splitlines()
    table_at = max(i for i, line in enumerate(output) if line.startswith("Leaderboard "))
    assert len(output) - table_at == 2 + len(entries) + 2  # title, header, entries, legend, trust line
    assert output[table_at + 2].split()[:3] == ["1", str(entries[0].id), entries[0].family]
    assert output[-1].startswith("trust over 6 entries: Spearman(local, true A)")
    assert "frauds per fold" in result.stdout

    rerun = run(sweep_command(shared, tmp_path, "sweep.submit=false"))
    assert rerun.stdout.count("2/2 trials already done") == 3
    assert len(Leaderboard(tmp_path / "leaderboard.sqlite").ranked()) == 6


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's trials that ran (the policies' enqueued default trials beyond the budget still wait)."""
    return [t for t in study.trials if t.state != optuna.trial.TrialState.WAITING]


def wait_for(condition, timeout: float, what: str) -> None:
    """Poll `condition()` every 0.2 s until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def trial_states(root: Path) -> list[optuna.trial.TrialState]:
    """States of the catboost study's trials, [] before the study exists."""
    try:
        return [t.state for t in finished(studies(root)["catboost"])]
    except (KeyError, Exception):
        return []


def fitting_beside_a_finished_one(root: Path) -> bool:
    """The catboost study has a finished trial and a running one with every parameter sampled (killed then, it
    dies fitting, not between its creation and its sampling, where it has no parameters to retry)."""
    try:
        trials = studies(root)["catboost"].trials
    except Exception:
        return False
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return bool(done) and any(t.state == optuna.trial.TrialState.RUNNING and set(t.params) == set(done[0].params)
                              for t in trials)


@pytest.mark.slow
def test_killed_worker_resumes_with_finished_trials_kept(shared: Path, tmp_path: Path) -> None:
    # No pruning between folds: the retry is to run to its end (pruning it is a fair outcome, not what is tested).
    command = sweep_command(shared, tmp_path, "sweep.models=[catboost]", "study.n_trials=4", "sweep.submit=false",
                            "study.heartbeat_interval=1", "study.grace_period=2", "sweep.prune_folds_after=null")
    worker = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "WANDB_MODE": "disabled"})
    try:
        wait_for(lambda: fitting_beside_a_finished_one(tmp_path), 600, "a finished trial and a running one fitting")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    before = {t.number: t for t in studies(tmp_path)["catboost"].trials}
    finished_before = {n: t.value for n, t in before.items() if t.state == optuna.trial.TrialState.COMPLETE}
    killed = [n for n, t in before.items() if t.state == optuna.trial.TrialState.RUNNING]
    assert len(killed) == 1
    time.sleep(3)
    run(command)
    after = {t.number: t for t in studies(tmp_path)["catboost"].trials}
    assert {n: after[n].value for n in finished_before} == finished_before
    assert after[killed[0]].state == optuna.trial.TrialState.FAIL
    retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == killed[0]]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == before[killed[0]].params
    complete = [t for t in after.values() if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in after.values() if t.state == optuna.trial.TrialState.PRUNED]
    assert len(complete) + len(pruned) == 4
    entries = Leaderboard(tmp_path / "leaderboard.sqlite").ranked()
    assert sorted(e.trial for e in entries) == sorted(t.number for t in complete)


@pytest.mark.slow
def test_failing_trials_are_recorded_and_the_sweep_goes_on(shared: Path, tmp_path: Path) -> None:
    result = run(sweep_command(shared, tmp_path, "sweep.models=[catboost,mlp]", "sweep.submit=false",
                               "study.n_trials=1", "sweep.family_overrides.catboost=['model.eval_metric=NoSuchMetric']"))
    catboost, mlp = studies(tmp_path)["catboost"], studies(tmp_path)["mlp"]
    assert [t.state for t in finished(catboost)] == [optuna.trial.TrialState.FAIL]
    assert "NoSuchMetric" in catboost.trials[0].user_attrs["fail_reason"]
    assert "FAILED" in result.stdout
    assert [t.state for t in finished(mlp)] == [optuna.trial.TrialState.COMPLETE]
    assert {e.family for e in Leaderboard(tmp_path / "leaderboard.sqlite").ranked()} == {"mlp"}


@pytest.mark.slow
def test_a_worker_killed_when_the_budget_is_met_elsewhere_is_retried(shared: Path, tmp_path: Path) -> None:
    """Trial 1 dies RUNNING; the rerun's budget (1) is already met by trial 0, yet trial 1 is failed and retried.

    One enqueued default (the policy fixed): Optuna runs waiting trials lowest number first, so with the
    policies' defaults still queued the retry would wait behind them (run by a later sweep)."""
    base = ["sweep.models=[catboost]", "sweep.submit=false", "study.heartbeat_interval=1", "study.grace_period=2",
            "sweep.search_labels=false"]
    worker = subprocess.Popen(sweep_command(shared, tmp_path, *base, "study.n_trials=2"), cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "WANDB_MODE": "disabled"})
    try:
        wait_for(lambda: trial_states(tmp_path) == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING],
                 600, "trial 0 complete and trial 1 running")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    time.sleep(3)
    run(sweep_command(shared, tmp_path, *base, "study.n_trials=1"))
    trials = finished(studies(tmp_path)["catboost"])
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                                         optuna.trial.TrialState.COMPLETE]
    assert trials[2].system_attrs["failed_trial"] == 1
    assert trials[1].params.items() <= trials[2].params.items()  # the same parameters (those sampled before the kill)
    assert sorted(e.trial for e in Leaderboard(tmp_path / "leaderboard.sqlite").ranked()) == [0, 2]
