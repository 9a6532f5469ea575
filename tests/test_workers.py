"""Several sweep workers on one study in a real PostgreSQL server started by the test on loopback."""
from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from omegaconf import DictConfig, OmegaConf

from atec_automl.databases import lost_schema_race
from atec_automl.errors import AtecError
from atec_automl.leaderboard import Leaderboard
from atec_automl.search.study import storage_for

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_workers_share_one_study_without_losing_or_duplicating_trials(postgres_url: str, tmp_path: Path) -> None:
    budget = 6
    slow_enough_to_overlap = "sweep.family_overrides.catboost=['model.iterations=500','model.early_stopping_rounds=500']"
    command = [sys.executable, "run.py", "experiment=smoke", "sweep.models=[catboost]", "sweep.submit=false",
               slow_enough_to_overlap, "split.n_folds=1", "sweep.search_labels=false",  # one fit per trial, as this test sizes
               "study=postgres", f"study.storage={postgres_url}", f"study.n_trials={budget}",
               f"data.dir={tmp_path}/data", f"features.cache_dir={tmp_path}/features"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    prepare = subprocess.run([sys.executable, "run.py", "task=features", *command[2:], f"hydra.run.dir={tmp_path}/prep"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert prepare.returncode == 0, prepare.stderr[-2000:]
    workers = [subprocess.Popen([*command, f"hydra.run.dir={tmp_path}/worker{i}"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i in range(2)]
    outputs = [worker.communicate(timeout=900)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-2000:] for o in outputs)

    (summary,) = optuna.get_all_study_summaries(postgres_url)
    trials = optuna.load_study(study_name=summary.study_name, storage=postgres_url).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    states = [(t.number, t.state.name, t.user_attrs.get("worker")) for t in trials]
    assert budget <= len(complete) + len(pruned) <= budget + 1, states
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials), states
    assert len({t.user_attrs["worker"] for t in complete + pruned}) == 2, states
    entries = Leaderboard(postgres_url).ranked()
    assert sorted(e.trial for e in entries) == sorted(t.number for t in complete)
    assert {e.study for e in entries} == {summary.study_name}
    values = {t.number: t.value for t in complete}
    assert all(abs(values[e.trial] - e.score) < 1e-12 for e in entries)


OPENER = """
import sys, time
from omegaconf import OmegaConf
from atec_automl.errors import AtecError
from atec_automl.search.study import quiet_optuna, storage_for

quiet_optuna()
for line in sys.stdin:
    url, start_at = line.split()
    time.sleep(max(0.0, float(start_at) - time.time()))
    try:
        storage = storage_for(OmegaConf.create({"storage": url, "heartbeat_interval": 30, "grace_period": 90,
                                                "max_retry": 1, "engine_kwargs": {}}))
        storage.engine.dispose()
        print("opened", flush=True)
    except AtecError as error:
        print(f"error: {error}", flush=True)
"""


def storage_settings(url: str) -> DictConfig:
    """The study settings `storage_for` reads."""
    return OmegaConf.create({"storage": url, "heartbeat_interval": 30, "grace_period": 90, "max_retry": 1, "engine_kwargs": {}})


def test_each_way_of_losing_the_table_race_is_recognised_and_other_errors_fail_at_once(postgres_url: str, tmp_path: Path) -> None:
    engine = storage_for(storage_settings(postgres_url)).engine
    lost: list[Exception] = []
    for statement in ("CREATE TABLE studies (x int)",  # created after our check: DuplicateTable
                      "INSERT INTO version_info SELECT * FROM version_info"):  # the same row twice: UniqueViolation
        with pytest.raises(sqlalchemy.exc.DBAPIError) as error, engine.begin() as connection:
            connection.execute(sqlalchemy.text(statement))
        lost.append(error.value)
    sqlite = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/race.sqlite")
    for _ in range(2):  # SQLite words it "table studies already exists"
        try:
            with sqlite.begin() as connection:
                connection.execute(sqlalchemy.text("CREATE TABLE studies (x int)"))
        except sqlalchemy.exc.OperationalError as error:
            lost.append(error)
    assert [type(e).__name__ for e in lost] == ["ProgrammingError", "IntegrityError", "OperationalError"]
    assert all(lost_schema_race(e) for e in lost)

    started = time.monotonic()
    with pytest.raises(AtecError, match=r"study.storage .*/no_such_db: cannot open \(OperationalError"):
        storage_for(storage_settings(postgres_url.rsplit("/", 1)[0] + "/no_such_db"))
    assert time.monotonic() - started < 2, "a database that does not exist is not a race to wait out"


@pytest.mark.slow
def test_workers_opening_an_empty_database_at_once_all_get_the_storage(postgres_url: str, tmp_path: Path) -> None:
    """Four processes open a fresh empty database at nearly the same instant, 20 times: every open succeeds."""
    import psycopg

    server = postgres_url.rsplit("/", 1)[0]
    logs = [(tmp_path / f"opener{i}.log").open("w") for i in range(4)]
    openers = [subprocess.Popen([sys.executable, "-c", OPENER], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=log, text=True) for log in logs]
    try:
        with psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as admin:
            for repetition in range(20):
                admin.execute(f"CREATE DATABASE race{repetition}")
                start_at = time.time() + 0.5
                for opener in openers:  # staggered by up to the time creating the tables takes
                    opener.stdin.write(f"{server}/race{repetition} {start_at + random.uniform(0, 0.3)}\n")
                    opener.stdin.flush()
                outcomes = [opener.stdout.readline().strip() for opener in openers]
                assert outcomes == ["opened"] * 4, (repetition, outcomes, [log.name for log in logs])
    finally:
        for opener in openers:
            opener.stdin.close()
            opener.wait(timeout=60)


SAMPLER = """
import math, sys, time
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from atec_automl.search.space import load_space, suggest
from atec_automl.search.study import open_study
from atec_automl.tasks._experiment import plain
from atec_automl.tasks._sweep import build_sampler, study_name

storage, seed, start_at, trials = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
with initialize_config_dir(config_dir=sys.argv[5], version_base="1.3"):
    cfg = compose(config_name="config", overrides=[f"study.storage={storage}", f"seed={seed}", "+search=catboost"])
study, _ = open_study(plain(cfg.study), study_name(cfg, "catboost", "fingerprint"), build_sampler(cfg.study.sampler),
                      instantiate(cfg.study.pruner))
space = load_space(plain(cfg.search))


def objective(trial):
    values = suggest(trial, space)
    time.sleep(0.05)
    return values["depth"] - abs(math.log(values["learning_rate"] / 0.05))


time.sleep(max(0.0, start_at - time.time()))
study.optimize(objective, n_trials=trials)
"""


def sampled_params(storage: str) -> list[dict]:
    """The parameters of every trial of the one study in `storage`, by trial number."""
    (summary,) = optuna.get_all_study_summaries(storage)
    return [t.params for t in optuna.load_study(study_name=summary.study_name, storage=storage).trials]


def run_samplers(storage: str, seed: int, workers: int, trials: int) -> None:
    """`workers` processes sampling `trials` trials each from the CatBoost space on one storage, started together."""
    start_at = time.time() + (4 if workers > 1 else 0)
    processes = [subprocess.Popen([sys.executable, "-c", SAMPLER, storage, str(seed), str(start_at), str(trials),
                                   str(REPO / "conf")], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(workers)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * workers, "\n".join(outputs)


def test_workers_sharing_a_study_sample_different_trials(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.sqlite"
    run_samplers(storage, seed=0, workers=2, trials=4)
    params = sampled_params(storage)
    assert len(params) == 8
    assert len({tuple(sorted(p.items())) for p in params}) == 8, params


def test_a_lone_worker_rerun_with_the_same_seed_samples_the_same_trials(tmp_path: Path) -> None:
    runs = {name: f"sqlite:///{tmp_path}/{name}.sqlite" for name in ("first", "again", "other_seed")}
    for name, storage in runs.items():
        run_samplers(storage, seed=7 if name != "other_seed" else 8, workers=1, trials=7)
    first, again, other_seed = (sampled_params(storage) for storage in runs.values())
    assert len(first) == 7 and first == again
    assert all(a != b for a, b in zip(first, other_seed))


def machine(root: Path) -> Path:
    """A separate checkout of the entry point and configs (another "machine"), its relative output paths its own."""
    root.mkdir()
    shutil.copy(REPO / "run.py", root / "run.py")
    shutil.copytree(REPO / "conf", root / "conf")
    return root


@pytest.mark.slow
def test_workers_on_two_machines_write_one_leaderboard_in_the_study_database(postgres_url: str, tmp_path: Path) -> None:
    machines = [machine(tmp_path / name) for name in ("machine_a", "machine_b")]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO / "src")}
    shared_data = [f"data.dir={tmp_path}/data", f"features.cache_dir={tmp_path}/features"]
    command = [sys.executable, "run.py", "experiment=smoke", "sweep.models=[catboost]", "sweep.submit=false",
               "split.n_folds=1", "sweep.search_labels=false", "study=postgres", f"study.storage={postgres_url}",
               "study.n_trials=2", "leaderboard.bootstrap=0", *shared_data]
    prepare = subprocess.run([sys.executable, "run.py", "task=features", *command[2:]], cwd=machines[0], env=env,
                             capture_output=True, text=True, timeout=600)
    assert prepare.returncode == 0, prepare.stderr[-2000:]
    workers = [subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for root in machines]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-2000:] for o in outputs)

    (summary,) = optuna.get_all_study_summaries(postgres_url)
    trials = optuna.load_study(study_name=summary.study_name, storage=postgres_url).trials
    complete = sorted(t.number for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert len(complete) >= 2 and len({t.user_attrs.get("worker") for t in trials}) == 2, trials
    entries = Leaderboard(postgres_url).ranked()
    assert sorted(e.trial for e in entries) == complete
    assert not any((root / "leaderboard" / "leaderboard.sqlite").exists() for root in machines)
    for root in machines:
        table = subprocess.run([sys.executable, "run.py", "task=leaderboard", "study=postgres",
                                f"study.storage={postgres_url}"], cwd=root, env=env, capture_output=True, text=True,
                               timeout=120)
        assert table.returncode == 0, table.stderr
        listed = re.findall(rf"{summary.study_name}/(\d+)", table.stdout)
        assert sorted(int(n) for n in listed) == complete, table.stdout
