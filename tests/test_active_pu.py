"""Active PU learning and the review cycle, with real CatBoost fits on small data.

- active_pu with the oracle asks only grey training rows of the fold (never early-stopping or scored
  rows), folds the answers in as seed 001 says, and the trial records what it asked;
- a reviewed label changes the training target of exactly that row (scored rows keep theirs);
- the oracle refuses real data; bad review files are refused in one line, exit 2;
- `task=review` writes a batch, `labels.reviews=` reads it back into the store.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atec_automl.errors import AtecError
from atec_automl.experts import OracleExpert, ReviewExpert
from atec_automl.labels import ActivePU
from atec_automl.leaderboard import Leaderboard
from atec_automl.models.base import ModelData
from atec_automl.pipeline import Prepared, fit_fold, label_policy, policy_queries
from atec_automl.reviews import ReviewStore
from atec_automl.tasks._experiment import build_policy, prepare, read_reviews, recipe
from atec_automl.testing import ToyData, make_toy
from conftest import compose_config

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
ROWS = 40_000
FAST = ["model.iterations=40", "model.early_stopping_rounds=10", "model.thread_count=1"]


def data_overrides(data_dir: Path, board: Path) -> list[str]:
    """The module's small synthetic data, features cache and a leaderboard (with its review store) under `board`."""
    return [f"data.rows={ROWS}", f"data.dir={data_dir / 'synthetic'}", f"features.cache_dir={data_dir / 'cache'}",
            f"leaderboard.path={board / 'leaderboard.sqlite'}", *FAST]


def config(data_dir: Path, board: Path, *overrides: str):
    return compose_config([*data_overrides(data_dir, board), *overrides])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("active_pu")


@pytest.fixture(scope="module")
def prepared(data_dir: Path) -> Prepared:
    return prepare(config(data_dir, data_dir / "board"))


@pytest.fixture(scope="module")
def truth(prepared: Prepared, data_dir: Path) -> np.ndarray:
    """The hidden truth of every timeline row (what the oracle answers)."""
    return OracleExpert.load(data_dir / "synthetic" / "test_labels.parquet", prepared.dataset).truth


def write_reviews(path: Path, rows: dict[str, str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["event_id", "label"])
        writer.writerows(rows.items())
    return path


# ---------------------------------------------------------------------------------------------- policy


@pytest.fixture(scope="module")
def toy() -> ToyData:
    return make_toy(n_rows=8000, seed=1)


def test_answers_fold_in_as_the_seed_says(toy: ToyData) -> None:
    train = np.flatnonzero(toy.day < 9)
    valid = np.flatnonzero((toy.day >= 9) & (toy.label >= 0))
    cfg = compose_config(["model.iterations=60", "model.thread_count=1"])
    policy = ActivePU(rounds=2, queries_per_round=15, positive_weight=4.0, expert=OracleExpert(toy.true_label.astype(float)))
    out = policy.apply(ModelData(toy.features, train), toy.label[train], lambda: recipe(cfg).build_model(),
                       ModelData(toy.features, valid, toy.label[valid]))
    asked = np.array([q.row for q in policy.queries])
    assert len(asked) == 30 and len(set(asked)) == 30
    assert (toy.label[asked] == -1).all() and np.isin(asked, train).all() and not np.isin(asked, valid).any()
    for round_number in (0, 1):
        clusters = [q.cluster for q in policy.queries if q.round == round_number]
        assert len(set(clusters)) == 15  # one row per K-means cluster
    answers = np.array([q.answer for q in policy.queries])
    np.testing.assert_array_equal(answers, toy.true_label[asked])
    position = {row: i for i, row in enumerate(out.rows)}
    fraud, legit = asked[answers == 1], asked[answers == 0]
    assert len(fraud) and len(legit)
    assert all(out.target[position[r]] == 1.0 and out.weight[position[r]] == 4.0 for r in fraud)
    assert all(out.target[position[r]] < 1.0 and out.weight[position[r]] == 1.0 for r in legit)  # back to U: soft
    assert "K-means cluster" in policy.queries[0].reason(75, 15)


def test_earlier_reviews_count_as_answers(toy: ToyData) -> None:
    train = np.flatnonzero(toy.day < 9)
    grey = train[toy.label[train] == -1]
    reviewed = np.full(len(toy.label), np.nan)
    reviewed[grey[0]], reviewed[grey[1]] = 1.0, 0.0
    cfg = compose_config(["model.iterations=30", "model.thread_count=1"])
    policy = ActivePU(rounds=1, queries_per_round=5, expert=ReviewExpert(reviewed))
    out = policy.apply(ModelData(toy.features, train), toy.label[train], lambda: recipe(cfg).build_model())
    first, second = (np.flatnonzero(out.rows == row)[0] for row in grey[:2])
    assert out.target[first] == 1.0 and out.weight[first] == policy.positive_weight
    assert 0.0 <= out.target[second] < 1.0 and out.weight[second] == 1.0
    assert [q.answer for q in policy.queries] == [pytest.approx(np.nan, nan_ok=True)] * 5  # nobody answers now
    assert not {q.row for q in policy.queries} & set(grey[:2])


def test_active_pu_checks_its_settings_and_needs_an_expert(toy: ToyData) -> None:
    with pytest.raises(AtecError, match="queries_per_round >= 0"):
        ActivePU(queries_per_round=-1)
    train = np.flatnonzero(toy.day < 9)
    with pytest.raises(AtecError, match="needs an expert"):
        ActivePU().apply(ModelData(toy.features, train), toy.label[train], lambda: None)


def test_oracle_on_the_fold_asks_only_grey_training_rows_and_the_trial_records_them(
        prepared: Prepared, truth: np.ndarray, data_dir: Path, tmp_path: Path) -> None:
    cfg = config(data_dir, tmp_path, "labels=active_pu", "labels.rounds=2", "labels.queries_per_round=10")
    fold = prepared.folds[-1]
    policy = label_policy(recipe(cfg), prepared)
    assert isinstance(policy.expert, OracleExpert)
    fit_fold(recipe(cfg), prepared, fold, tmp_path / "work", policy=policy)
    queries = policy_queries(policy, prepared)
    assert len(queries) == 20
    rows = pd.Index(prepared.dataset.frame["event_id"]).get_indexer([q["event_id"] for q in queries])
    assert len(set(rows)) == 20 and np.isin(rows, fold.train).all()
    assert not np.isin(rows, fold.early_stop).any() and not np.isin(rows, fold.scored).any()
    assert (prepared.labels[rows] == -1).all()
    assert [q["answer"] for q in queries] == truth[rows].astype(int).tolist()
    assert policy_queries(build_policy(config(data_dir, tmp_path, "labels=two_step_pu")), prepared) is None


def test_scored_labels_change_neither_the_queries_nor_the_model(prepared: Prepared, data_dir: Path,
                                                               tmp_path: Path) -> None:
    cfg = config(data_dir, tmp_path, "labels=active_pu", "labels.rounds=1", "labels.queries_per_round=5")
    fold = prepared.folds[-1]
    frame = prepared.dataset.frame.copy()
    labels = frame["label"].to_numpy().copy()
    labels[fold.scored] = np.random.default_rng(7).permutation(labels[fold.scored])
    frame["label"] = labels
    shuffled = replace(prepared, dataset=replace(prepared.dataset, frame=frame))
    test_rows = ModelData(prepared.features, prepared.dataset.part_rows("test_a"))
    asked, predictions = [], []
    for k, which in enumerate((prepared, shuffled)):
        policy = label_policy(recipe(cfg), which)
        _, model = fit_fold(recipe(cfg), which, fold, tmp_path / str(k), policy=policy)
        asked.append(policy_queries(policy, which))
        predictions.append(model.predict(test_rows))
    assert asked[0] == asked[1] and len(asked[0]) == 5
    np.testing.assert_array_equal(predictions[0], predictions[1])


# ---------------------------------------------------------------------------------------------- reviews


def test_a_reviewed_label_changes_the_training_target_of_exactly_that_row(prepared: Prepared, data_dir: Path,
                                                                         tmp_path: Path) -> None:
    fold = prepared.folds[-1]
    labels, ids = prepared.labels, prepared.dataset.frame["event_id"].to_numpy()
    grey = fold.train[labels[fold.train] == -1][3]
    white = fold.train[labels[fold.train] == 0][10]
    scored_white = fold.scored[prepared.labels[fold.scored] == 0][0]
    reviews = write_reviews(tmp_path / "filled.csv", {ids[grey]: "0", ids[white]: "1", ids[scored_white]: "1"})
    cfg = config(data_dir, tmp_path, "labels=as_black", f"labels.reviews={reviews}")
    reviewed = replace(prepared, reviews=read_reviews(cfg, prepared.dataset))
    assert ReviewStore(tmp_path / "reviews.sqlite").read() == {ids[grey]: 0, ids[white]: 1, ids[scored_white]: 1}
    policy = build_policy(cfg)
    before = policy.apply(ModelData(prepared.features, fold.train), prepared.training_labels[fold.train])
    after = policy.apply(ModelData(reviewed.features, fold.train), reviewed.training_labels[fold.train])
    changed = fold.train[np.flatnonzero(before.target != after.target)]
    assert changed.tolist() == sorted([grey, white])
    assert after.target[fold.train == grey] == 0.0 and after.target[fold.train == white] == 1.0
    result, _ = fit_fold(recipe(cfg), reviewed, fold, tmp_path / "work")
    assert result.label[list(result.event_id).index(ids[scored_white])] == 0  # scored rows keep their raw label


@pytest.mark.parametrize(("rows", "message"), [
    ({"not-an-event": "1"}, "line 2: event_id 'not-an-event' is not a training row of this data"),
    ({"GREY": "2"}, "line 2, column 'label': '2' is not 0 or 1 (leave it empty if not reviewed)"),
    ({"GREY": "fraud"}, "line 2, column 'label': 'fraud' is not 0 or 1 (leave it empty if not reviewed)"),
])
def test_bad_review_files_are_refused_in_one_line(rows: dict, message: str, prepared: Prepared, data_dir: Path,
                                                   tmp_path: Path, run_cli) -> None:
    grey_id = prepared.dataset.frame["event_id"].to_numpy()[prepared.labels == -1][0]
    path = write_reviews(tmp_path / "bad.csv", {key.replace("GREY", grey_id): value for key, value in rows.items()})
    result = run_cli(["task=train", *data_overrides(data_dir, tmp_path), f"labels.reviews={path}"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: labels.reviews={path}: {message}"]
    assert not (tmp_path / "reviews.sqlite").exists()


def test_duplicate_review_ids_are_refused_in_one_line(prepared: Prepared, data_dir: Path, tmp_path: Path, run_cli) -> None:
    grey_id = prepared.dataset.frame["event_id"].to_numpy()[prepared.labels == -1][0]
    path = tmp_path / "dup.csv"
    path.write_text(f"event_id,label\n{grey_id},1\n{grey_id},0\n", encoding="utf-8")
    result = run_cli(["task=train", *data_overrides(data_dir, tmp_path), f"labels.reviews={path}"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: labels.reviews={path}: line 3: event_id {grey_id!r} is listed twice (first on line 2)"]


def test_the_oracle_refuses_real_data(raw_files: dict[str, Path], tmp_path: Path, run_cli) -> None:
    result = run_cli(["task=train", "data=atec", f"data.train={raw_files['train']}", "labels=active_pu",
                      f"leaderboard.path={tmp_path / 'leaderboard.sqlite'}"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: labels.expert=oracle answers from synthetic data's hidden labels, and data.train={raw_files['train']} "
        "has none (real data): use labels.expert=file with labels.reviews=PATH"]


def test_review_then_reviews_round_trips(prepared: Prepared, truth: np.ndarray, data_dir: Path, tmp_path: Path,
                                         run_cli) -> None:
    common = ["task=review", *data_overrides(data_dir, tmp_path), "review.size=8"]
    first = run_cli([*common, f"review.out={tmp_path / 'review.csv'}"])
    assert first.returncode == 0, first.stderr
    batch = pd.read_csv(tmp_path / "review.csv", dtype={"event_id": str, "label": str}, keep_default_na=False)
    assert batch.columns[:6].tolist() == ["event_id", "label", "score", "reason", "time", "current_label"]
    assert {"amt", "device_sign", "pay_scene"} <= set(batch.columns)
    assert len(batch) == 8 and (batch["label"] == "").all() and (batch["current_label"] == -1).all()
    assert batch["reason"].str.contains("K-means cluster").all()
    rows = pd.Index(prepared.dataset.frame["event_id"]).get_indexer(batch["event_id"])
    assert (rows >= 0).all() and (prepared.labels[rows] == -1).all()
    batch.loc[:4, "label"] = truth[rows[:5]].astype(int).astype(str)  # a person fills 5 of the 8
    batch.to_csv(tmp_path / "filled.csv", index=False)
    filled = (tmp_path / "filled.csv").read_bytes()
    over = run_cli([*common, f"review.out={tmp_path / 'filled.csv'}"])  # the labels are not read in yet
    assert over.returncode == 2 and "[review]" not in over.stdout, over.stdout + over.stderr
    assert over.stderr.strip().splitlines() == [
        f"error: review.out={tmp_path / 'filled.csv'}: it holds 5 filled-in labels not in the reviewed-labels store "
        f"(event_id {batch['event_id'][0]!r} first); read them in with labels.reviews={tmp_path / 'filled.csv'}, "
        "or choose another review.out"]
    assert (tmp_path / "filled.csv").read_bytes() == filled

    second = run_cli([*common, f"labels.reviews={tmp_path / 'filled.csv'}", f"review.out={tmp_path / 'next.csv'}"])
    assert second.returncode == 0, second.stderr
    expected = dict(zip(batch["event_id"][:5], truth[rows[:5]].astype(int)))
    assert ReviewStore(tmp_path / "reviews.sqlite").read() == expected
    following = pd.read_csv(tmp_path / "next.csv", dtype={"event_id": str})
    assert len(following) == 8 and not set(following["event_id"]) & set(expected)
    assert "5 reviewed so far" in second.stdout


@pytest.mark.slow
def test_a_sweep_with_active_pu_records_the_queries_with_the_entry(data_dir: Path, tmp_path: Path,
                                                                  prepared: Prepared) -> None:
    command = [sys.executable, "run.py", "experiment=smoke", "sweep.models=[catboost]", "study.n_trials=1",
               "sweep.submit=false", *data_overrides(data_dir, tmp_path), f"hydra.run.dir={tmp_path / 'run'}",
               "sweep.family_overrides.catboost=['model.iterations=40','model.thread_count=1']",
               f"study.storage=sqlite:///{tmp_path}/optuna.sqlite", "labels=active_pu", "labels.rounds=1",
               "labels.queries_per_round=6"]
    result = subprocess.run(command, cwd=CONF_DIR.parent, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    entry, = Leaderboard(tmp_path / "leaderboard.sqlite").ranked()
    assert entry.policy == "active_pu"
    ids = pd.Index(prepared.dataset.frame["event_id"])
    for fold, scores in zip(prepared.folds, entry.fold_scores):
        rows = ids.get_indexer([q["event_id"] for q in scores["queries"]])
        assert len(rows) == 6 and np.isin(rows, fold.train).all() and (prepared.labels[rows] == -1).all()
        assert {q["answer"] for q in scores["queries"]} <= {0, 1}
