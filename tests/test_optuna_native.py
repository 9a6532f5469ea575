"""The studies as Optuna's own tools see them: metadata and the metric name on the study, only
validation values as intermediate values, fold scores and the entry id as trial user attributes,
read back through `optuna-dashboard`'s HTTP API on loopback; the trial status line on a terminal
and its silence in CI logs; pruning between folds.

One small CatBoost sweep (`python run.py`, 3 folds, 2 trials) runs under a pseudo-terminal; a
resumed run of one more trial runs with its output captured (not a terminal).
"""
from __future__ import annotations

import fcntl
import json
import os
import pty
import socket
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from atec_automl.leaderboard import Leaderboard
from atec_automl.provenance import current_git_commit
from atec_automl.search.objective import fold_pruned
from atec_automl.search.study import METRIC_NAME

REPO = Path(__file__).resolve().parents[1]
REPORT_EVERY = 10
ITERATIONS = 60


def sweep_command(root: Path, *overrides: str) -> list[str]:
    """A CatBoost-only sweep of short fits with every output under `root`."""
    return [sys.executable, "run.py", "experiment=smoke", "data.rows=40000", "sweep.models=[catboost]",
            "sweep.submit=false", "sweep.search_labels=false", f"sweep.report_every.catboost={REPORT_EVERY}",
            f"sweep.family_overrides.catboost=['model.iterations={ITERATIONS}','model.early_stopping_rounds=20']",
            f"data.dir={root}/data", f"features.cache_dir={root}/features", f"leaderboard.path={root}/lb.sqlite",
            f"study.storage=sqlite:///{root}/optuna.sqlite", f"hydra.run.dir={root}/run", *overrides]


def run_on_terminal(command: list[str], timeout: float = 900) -> str:
    """Run `command` with stdout and stderr on a 40 x 200 pseudo-terminal; everything it wrote, as text."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                               env={**os.environ, "WANDB_MODE": "disabled"})
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert process.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, subprocess.CompletedProcess]:
    """The sweep's root, its terminal output (2 trials), and the captured output of a resumed third trial."""
    root = tmp_path_factory.mktemp("swept")
    terminal = run_on_terminal(sweep_command(root, "study.n_trials=2", "study.timeout_s=900"))
    logged = subprocess.run(sweep_command(root, "study.n_trials=3"), cwd=REPO, capture_output=True, text=True,
                            timeout=900, env={**os.environ, "WANDB_MODE": "disabled"})
    assert logged.returncode == 0, logged.stderr[-3000:]
    return root, terminal, logged


def the_study(root: Path) -> optuna.Study:
    """The sweep's one study."""
    storage = f"sqlite:///{root}/optuna.sqlite"
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


@pytest.mark.slow
def test_the_study_carries_its_metadata_and_metric_name(swept) -> None:
    root, _, _ = swept
    study = the_study(root)
    entries = Leaderboard(root / "lb.sqlite").ranked()
    assert study.metric_names == [METRIC_NAME]
    attrs = study.user_attrs
    assert attrs["family"] == "catboost"
    assert attrs["data_fingerprint"] == entries[0].data_fingerprint
    assert attrs["split"] == entries[0].split and attrs["split"].count("train rows") == 3
    assert attrs["label_policy"] == "as_black"
    assert attrs["features"].startswith("RawEventFeatures (user, device") and ", spec " in attrs["features"]
    assert attrs["git_commit"] == current_git_commit()


@pytest.mark.slow
def test_intermediate_values_are_validation_steps_and_fold_scores_are_attributes(swept) -> None:
    root, _, _ = swept
    trials = [t for t in the_study(root).trials if t.state == optuna.trial.TrialState.COMPLETE]
    entries = {e.trial: e for e in Leaderboard(root / "lb.sqlite").ranked()}
    assert len(trials) == 3
    for trial in trials:
        assert trial.intermediate_values and max(trial.intermediate_values) < ITERATIONS // REPORT_EVERY
        entry = entries[trial.number]
        assert trial.user_attrs["entry_id"] == entry.id
        assert trial.user_attrs["fold_scores"] == pytest.approx([f["score"] for f in entry.fold_scores])


def free_port() -> int:
    """A TCP port free on loopback at this moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> dict:
    """GET `url` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_optuna_dashboard_shows_the_metadata_and_metric_name(swept) -> None:
    root, _, _ = swept
    port = free_port()
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    server = subprocess.Popen([str(dashboard), f"sqlite:///{root}/optuna.sqlite", "--host", "127.0.0.1",
                               "--port", str(port), "--server", "wsgiref", "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = get_json(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "the dashboard did not answer within 60 s"
                time.sleep(0.3)
        (summary,) = studies
        listed = {a["key"]: a["value"] for a in summary["user_attrs"]}
        assert listed["family"] == "catboost" and listed["label_policy"] == "as_black"
        detail = get_json(f"{base}/api/studies/{summary['study_id']}")
        assert detail["objective_names"] == [METRIC_NAME]
        assert {a["key"] for a in detail["user_attrs"]} == {"family", "data_fingerprint", "features", "split",
                                                             "label_policy", "git_commit"}
        assert {a["key"] for a in detail["union_user_attrs"]} >= {"fold_scores", "entry_id"}
        steps = [v["step"] for t in detail["trials"] for v in t["intermediate_values"]]
        assert steps and max(steps) < ITERATIONS // REPORT_EVERY
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_terminal_shows_the_trial_status_line_and_a_log_one_line_per_trial(swept) -> None:
    _, terminal, logged = swept
    status = [part for part in terminal.replace("\n", "\r").split("\r") if part.strip().startswith("[trial]")]
    assert status, terminal[-2000:]
    assert any("catboost trial 0 fold 1/3 | iteration 0 | validation" in line for line in status), status
    assert any("catboost trial 1 fold 3/3" in line and "best 0." in line for line in status), status
    assert all(" s of the budget left | best " in line for line in status)
    assert "[trial]" not in logged.stdout + logged.stderr
    finished = [line for line in logged.stdout.splitlines() if line.startswith("[sweep] catboost trial")]
    assert len(finished) == 1 and finished[0].startswith("[sweep] catboost trial 2: score ")


def study_with_fold_scores(*trials: tuple[optuna.trial.TrialState, list[float]]) -> optuna.Study:
    """An in-memory study whose finished trials carry these fold scores."""
    study = optuna.create_study(direction="maximize")
    for state, scores in trials:
        study.add_trial(optuna.trial.create_trial(state=state, value=scores[-1] if state.name == "COMPLETE" else None,
                                                  user_attrs={"fold_scores": scores}))
    return study


def test_fold_pruning_compares_running_means_over_as_many_folds() -> None:
    complete, pruned = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED
    study = study_with_fold_scores((complete, [0.4, 0.6, 0.5]), (complete, [0.2, 0.4, 0.3]),
                                   (pruned, [0.1]), (complete, [0.5, 0.3, 0.4]))
    trial = study.ask()
    # Medians of the complete trials' running means: after 1 fold 0.4 (0.2, 0.4, 0.5); after 2 folds 0.4
    # (0.3, 0.4, 0.5). The pruned trial's 0.1 does not count (with it the first median would be 0.3).
    assert not fold_pruned(trial, [0.45], startup=3)
    assert fold_pruned(trial, [0.35], startup=3)
    assert fold_pruned(trial, [0.5, 0.2], startup=3)
    assert not fold_pruned(trial, [0.5, 0.3], startup=3)
    assert not fold_pruned(trial, [0.0], startup=4), "fewer complete trials than startup: never pruned"
    assert not fold_pruned(trial, [0.0], startup=None)
