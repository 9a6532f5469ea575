"""The leaderboard on its SQLite file and on PostgreSQL: round trips, ranking, unique keys under concurrent
writers, compact scores that keep every rank and tie, the CLI table."""
from __future__ import annotations

import multiprocessing
import re
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy
from scipy.stats import rankdata

from atec_automl.errors import AtecError
from atec_automl.evaluation import FoldResult, build_entry
from atec_automl.leaderboard import DuplicateEntryError, Entry, Leaderboard
from atec_automl.metric import atec_score, auc
from atec_automl.provenance import current_git_commit

ROWS_PER_FOLD = 2000


def random_folds(seed: int, n_folds: int = 2, signal: float = 1.0) -> list[FoldResult]:
    """Random 0/1 labels (about 5 % positive) and noisy scores that rank positives higher with `signal`."""
    rng = np.random.default_rng(seed)
    folds = []
    for k in range(n_folds):
        label = (rng.random(ROWS_PER_FOLD) < 0.05).astype(np.int8)
        score = rng.random(ROWS_PER_FOLD) + signal * label * rng.random(ROWS_PER_FOLD)
        ids = np.array([f"f{k}-e{i}" for i in range(ROWS_PER_FOLD)])
        folds.append(FoldResult.of_scores(f"fold{k}", (17_500 + 3 * k, 17_502 + 3 * k), ids, label, score))
    return folds


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's leaderboard lives: a SQLite file, or a new database on a PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "lb" / "leaderboard.sqlite")
    return request.getfixturevalue("postgres_url")


def count_rows(board: Leaderboard, table: str) -> int:
    """Rows in one of the store's tables, read past the store's own code."""
    engine = sqlalchemy.create_engine(board.url)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text(f"SELECT count(*) FROM leaderboard_{table}")).scalar_one()
    finally:
        engine.dispose()


def assert_same_ranking(stored: np.ndarray, original: np.ndarray) -> None:
    """Stored scores: float32 precision, and exactly the original ranks and ties."""
    np.testing.assert_allclose(stored, original, rtol=2 ** -24, atol=0)
    np.testing.assert_array_equal(rankdata(stored), rankdata(original))


def make_entry(seed: int, study: str = "atec-catboost-abc", trial: int | None = 0, family: str = "catboost",
               signal: float = 1.0, fingerprint: str = "fp0123456789abcdef", **params: object) -> Entry:
    """An entry scored by the real metric on random predictions."""
    return build_entry(random_folds(seed, signal=signal), 50, family=family, study=study, trial=trial,
                       params={"learning_rate": 0.05, "depth": 6, **params}, config_yaml="model: catboost\n",
                       data_fingerprint=fingerprint, split="TimeSplit(scored_days=3)", fit_seconds=12.5,
                       predict_seconds=0.25, best_iteration=321, policy="drop",
                       test_scores={"test_a": np.linspace(0, 1, 7), "test_b": np.full(3, 0.25)})


def test_entry_scores_are_the_metric_per_fold_and_their_mean() -> None:
    folds = random_folds(1)
    entry = make_entry(1)
    for fold, scores in zip(folds, entry.fold_scores):
        expected = atec_score(fold.label, fold.score)
        assert scores["score"] == pytest.approx(expected.score)
        assert scores["tpr1"] == pytest.approx(expected.tpr1)
        assert scores["auc"] == pytest.approx(auc(fold.label, fold.score))
    assert entry.score == pytest.approx(np.mean([atec_score(f.label, f.score).score for f in folds]))
    assert entry.fold_scores[0]["first_scored_day"] == "2017-11-30"
    assert entry.fold_scores[1]["last_scored_day"] == "2017-12-05"
    assert len(entry.predictions.score) == 2 * ROWS_PER_FOLD


def test_add_get_and_predictions_round_trip(location: str) -> None:
    board = Leaderboard(location)
    entry = make_entry(2, unicode_param="站内即时到账", ratio=np.float32(0.5))
    entry_id = board.add(entry)
    stored = board.get(entry_id)
    assert stored.id == entry_id and stored.created_at
    assert stored.key == "atec-catboost-abc/0"
    assert stored.params == {"learning_rate": 0.05, "depth": 6, "unicode_param": "站内即时到账", "ratio": 0.5}
    for name in ("family", "study", "trial", "config_yaml", "data_fingerprint", "split", "fold_scores", "score",
                 "tpr1", "tpr2", "tpr3", "auc", "fit_seconds", "predict_seconds", "git_commit", "best_iteration",
                 "policy", "frauds", "score_low", "score_high", "true_a", "true_b"):
        assert getattr(stored, name) == getattr(entry, name), name
    assert stored.frauds == sum(f["frauds"] for f in entry.fold_scores) > 0
    np.testing.assert_array_equal(board.bootstrap(entry_id), entry.bootstrap)
    stored_tests = board.test_scores(entry_id)
    assert stored_tests["test_a"].dtype == np.float32
    np.testing.assert_array_equal(stored_tests["test_a"], np.linspace(0, 1, 7).astype(np.float32))
    predictions = board.predictions(entry_id)
    for name in ("event_id", "label", "fold"):
        np.testing.assert_array_equal(getattr(predictions, name), getattr(entry.predictions, name))
    assert_same_ranking(predictions.score, entry.predictions.score)
    assert atec_score(predictions.label, predictions.score) == atec_score(entry.predictions.label, entry.predictions.score)


def test_store_is_in_wal_mode(tmp_path: Path) -> None:
    board = Leaderboard(tmp_path / "leaderboard.sqlite")
    board.add(make_entry(3))
    with sqlite3.connect(board.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_scores_float32_would_merge_are_stored_exactly(location: str) -> None:
    """Rounded to float32, 1 + 2**-30 (every fraud) ties with 1.0 (50 legitimate events): plain float32 would change the score."""
    entry = make_entry(4)
    score = entry.predictions.score.copy()
    label = entry.predictions.label
    frauds, negatives = np.flatnonzero(label == 1), np.flatnonzero(label == 0)
    score[negatives[:50]] = 1.0
    score[frauds] = 1.0 + 2 ** -30
    entry.predictions = replace(entry.predictions, score=score)
    assert atec_score(label, score.astype(np.float32)) != atec_score(label, score)
    board = Leaderboard(location)
    stored = board.predictions(board.add(entry)).score
    assert_same_ranking(stored, score)
    assert stored[frauds[0]] == 1.0 + 2 ** -30 and stored[negatives[0]] == 1.0
    assert atec_score(label, stored) == atec_score(label, score)


def tail_permuted(folds: list[FoldResult]) -> list[FoldResult]:
    """The same folds with the scores of the lower half permuted among themselves: same TPRs, other AUC."""
    permuted = []
    for fold in folds:
        score = fold.score.copy()
        bottom = np.flatnonzero(score < np.median(score))
        score[bottom] = score[bottom][::-1]
        permuted.append(FoldResult.of_scores(fold.fold, (fold.first_scored_day, fold.last_scored_day),
                                             fold.event_id, fold.label, score))
    return permuted


def test_trials_on_the_same_rows_share_one_stored_row_set(location: str) -> None:
    board = Leaderboard(location)
    entries = [make_entry(0, trial=t, signal=0.5 + t) for t in range(3)]
    ids = [board.add(entry) for entry in entries]
    board.add(make_entry(1, trial=3))
    assert (count_rows(board, "row_sets"), count_rows(board, "predictions")) == (2, 4)
    for entry_id, entry in zip(ids, entries):
        assert_same_ranking(board.predictions(entry_id).score, entry.predictions.score)
        np.testing.assert_array_equal(board.predictions(entry_id).event_id, entry.predictions.event_id)


def test_a_store_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 1")
    with pytest.raises(AtecError, match="store format 1, this code reads format 4; move the old file away"):
        Leaderboard(path).ranked()


def test_a_database_of_another_format_is_refused(postgres_url: str) -> None:
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE leaderboard_version (version integer PRIMARY KEY)"))
        connection.execute(sqlalchemy.text("INSERT INTO leaderboard_version VALUES (3)"))
    engine.dispose()
    with pytest.raises(AtecError, match="store format 3, this code reads format 4; drop its leaderboard_. tables") as raised:
        Leaderboard(postgres_url).add(make_entry(0))
    assert "\n" not in str(raised.value)


def test_ranked_best_first_with_ties_by_auc_then_id(location: str) -> None:
    board = Leaderboard(location)
    signals = [0.5, 0.8, 1.1, 1.4, 1.7]
    ids = [board.add(make_entry(seed, trial=seed, signal=signal)) for seed, signal in enumerate(signals)]
    twin_id = board.add(make_entry(2, trial=10, signal=signals[2]))
    permuted = build_entry(tail_permuted(random_folds(2, signal=signals[2])), 0, family="mlp", study="atec-mlp",
                           trial=11, params={}, config_yaml="", data_fingerprint="fp", split="",
                           fit_seconds=1.0, predict_seconds=0.1)
    permuted_id = board.add(permuted)

    ranked = board.ranked()
    assert len(ranked) == 7
    keys = [(-e.score, -e.auc, e.id) for e in ranked]
    assert keys == sorted(keys)
    by_id = {e.id: e for e in ranked}
    assert (by_id[twin_id].score, by_id[twin_id].auc) == (by_id[ids[2]].score, by_id[ids[2]].auc)
    assert by_id[permuted_id].score == by_id[ids[2]].score and by_id[permuted_id].auc != by_id[ids[2]].auc
    tied = [e.id for e in ranked if e.id in (ids[2], twin_id, permuted_id)]
    expected = [ids[2], twin_id, permuted_id] if by_id[permuted_id].auc < by_id[ids[2]].auc else [permuted_id, ids[2], twin_id]
    assert tied == expected


def test_ranked_filters_and_top(location: str) -> None:
    board = Leaderboard(location)
    board.add(make_entry(0, study="cat", trial=0, family="catboost", fingerprint="aaaa1111"))
    board.add(make_entry(1, study="cat", trial=1, family="catboost", fingerprint="bbbb2222"))
    board.add(make_entry(2, study="mlp", trial=0, family="mlp", fingerprint="aaaa1111"))
    assert [e.family for e in board.ranked(family="mlp")] == ["mlp"]
    assert {(e.study, e.trial) for e in board.ranked(study="cat")} == {("cat", 0), ("cat", 1)}
    assert {e.data_fingerprint for e in board.ranked(data="aaaa")} == {"aaaa1111"}
    assert len(board.ranked(data="aaaa", family="catboost")) == 1
    assert board.ranked(top=2) == board.ranked()[:2]
    assert board.ranked(family="blend") == []


def test_same_trial_twice_is_rejected_and_nothing_is_written(location: str) -> None:
    board = Leaderboard(location)
    first = board.add(make_entry(0, trial=7))
    with pytest.raises(DuplicateEntryError, match=r"atec-catboost-abc/7.*entry id 1") as raised:
        board.add(make_entry(99, trial=7))
    assert raised.value.existing_id == first
    assert len(board.ranked()) == 1
    assert count_rows(board, "predictions") == 1


def test_entries_without_trial_are_keyed_by_their_predictions(location: str) -> None:
    board = Leaderboard(location)
    board.add(make_entry(0, study="file", trial=None, family="file"))
    with pytest.raises(DuplicateEntryError):
        board.add(make_entry(0, study="file", trial=None, family="file"))
    board.add(make_entry(1, study="file", trial=None, family="file"))
    board.add(make_entry(0, study="file", trial=None, family="file", fingerprint="other-data"))
    assert len(board.ranked(family="file")) == 3


def test_bad_entries_are_refused(location: str) -> None:
    board = Leaderboard(location)
    entry = make_entry(0)
    entry.family = "xgboost"
    with pytest.raises(AtecError, match="unknown family 'xgboost'"):
        board.add(entry)
    entry = make_entry(0)
    entry.predictions = None
    with pytest.raises(AtecError, match="no predictions"):
        board.add(entry)
    with pytest.raises(AtecError, match="no entry with id 5"):
        board.get(5)
    assert board.ranked() == []



def test_families_are_the_model_registry_and_the_leaderboard_own_without_loading_torch() -> None:
    """The leaderboard takes its model families from `models.FAMILIES`; importing it loads no model library."""
    code = ("import sys; from atec_automl.leaderboard import FAMILIES; "
            "print(','.join(FAMILIES)); print(sorted({'torch', 'lightning', 'catboost', 'pandas'} & set(sys.modules)))")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines == ["catboost,mlp,cnn_lstm,blend,file", "[]"]

def _add_many(path: str, worker: int, barrier: multiprocessing.synchronize.Barrier,
              results: multiprocessing.Queue) -> None:
    """Worker process: add 6 own entries and try the 4 shared trials; report ids and rejections."""
    board = Leaderboard(path)
    own = [make_entry(100 * worker + t, study=f"worker{worker}", trial=t) for t in range(6)]
    shared = [make_entry(t, study="shared", trial=t) for t in range(4)]
    barrier.wait()
    added, rejected = [], 0
    for entry in [*shared, *own]:
        try:
            added.append(board.add(entry))
        except DuplicateEntryError:
            rejected += 1
    results.put((worker, added, rejected))


def test_concurrent_writers_all_land_and_duplicates_are_rejected(location: str) -> None:
    path = location
    context = multiprocessing.get_context("spawn")
    workers = 4
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_add_many, args=(path, w, barrier, results)) for w in range(workers)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    added = [entry_id for _, ids, _ in outcomes for entry_id in ids]
    assert len(added) == len(set(added)) == workers * 6 + 4
    assert sum(rejected for _, _, rejected in outcomes) == (workers - 1) * 4
    ranked = Leaderboard(path).ranked()
    assert sorted(e.id for e in ranked) == sorted(added)
    assert len({(e.study, e.trial) for e in ranked}) == len(ranked)
    assert len(Leaderboard(path).ranked(study="shared")) == 4


def test_a_store_opened_while_another_worker_creates_the_file_waits_for_it(tmp_path: Path) -> None:
    """SQLite refuses the WAL switch at once, busy timeout or not, while another connection holds the
    new file's write lock: the store retries until that worker is done instead of failing the worker."""
    path = tmp_path / "lb.sqlite"
    creator = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    creator.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, creator.rollback)
    release.start()
    started = time.monotonic()
    entry_id = Leaderboard(path).add(make_entry(0))
    release.join()
    creator.close()
    assert time.monotonic() - started >= 0.4, "the store cannot have written while the other worker held the lock"
    assert [e.id for e in Leaderboard(path).ranked()] == [entry_id]


def test_current_git_commit(tmp_path: Path) -> None:
    assert current_git_commit(tmp_path) == "unknown"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", current_git_commit())


def test_cli_prints_the_ranked_table(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "lb.sqlite"
    board = Leaderboard(path)
    board.add(make_entry(0, study="atec-mlp", trial=3, family="mlp", signal=0.3))
    board.add(make_entry(1, study="atec-catboost", trial=5, family="catboost", signal=2.0))
    result = run_cli(["task=leaderboard", f"leaderboard.path={path}"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    assert lines[header].split() == ["rank", "id", "family", "study/trial", "policy", "score", "interval90", "vs-best",
                                     "frauds", "TPR1", "TPR2", "TPR3", "AUC", "true-A", "true-B", "folds", "fit-s", "data"]
    rows = [line.split() for line in lines[header + 1:header + 3]]
    best, second = board.ranked()
    assert [row[:4] for row in rows] == [["1", str(best.id), "catboost", "atec-catboost/5"],
                                         ["2", str(second.id), "mlp", "atec-mlp/3"]]
    assert rows[0][4:9] == ["drop", f"{best.score:.4f}", f"{best.score_low:.3f}..{best.score_high:.3f}", "best",
                            str(best.frauds)]
    assert rows[1][7] == "<"  # signal 0.3 against 2.0 on the same rows: a paired bootstrap tells them apart
    assert rows[0][12] == f"{best.auc:.4f}"
    assert rows[0][13:] == ["-", "-", "2", "12.5", "fp012345"]

    filtered = run_cli(["task=leaderboard", f"leaderboard.path={path}", "leaderboard.family=mlp"])
    assert "atec-mlp/3" in filtered.stdout and "atec-catboost" not in filtered.stdout
    top = run_cli(["task=leaderboard", f"leaderboard.path={path}", "leaderboard.top=1"])
    assert "atec-catboost/5" in top.stdout and "atec-mlp/3" not in top.stdout


def test_cli_on_an_empty_leaderboard_says_so(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "none" / "lb.sqlite"
    result = run_cli(["task=leaderboard", f"leaderboard.path={path}", "leaderboard.study=nothing"])
    assert result.returncode == 0, result.stderr
    assert "has no entries matching study=nothing yet" in result.stdout
    assert not path.exists()


def test_unconfirmed_entries_are_never_ranked_until_confirmed(location: str) -> None:
    board = Leaderboard(location)
    confirmed = board.add(make_entry(0, trial=0, signal=0.5))
    orphan = make_entry(1, trial=1, signal=3.0)
    orphan.confirmed = False
    orphan_id = board.add(orphan)
    assert [e.id for e in board.ranked()] == [confirmed]
    assert [e.id for e in board.unconfirmed("atec-catboost-abc")] == [orphan_id]
    board.confirm([orphan_id])
    assert [e.id for e in board.ranked()] == [orphan_id, confirmed] and board.unconfirmed("atec-catboost-abc") == []


def test_recover_confirms_entries_of_complete_trials_only(tmp_path: Path) -> None:
    import optuna

    from atec_automl.search.sweep import recover

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.sqlite'}", study_name="atec-catboost-abc",
                                direction="maximize")
    done = study.ask()
    study.tell(done, 0.5)
    study.ask()  # a trial whose worker died before it was told
    board = Leaderboard(tmp_path / "lb.sqlite")
    ids = []
    for number in (0, 1):
        entry = make_entry(number, trial=number)
        entry.confirmed = False
        ids.append(board.add(entry))
    recover(study, board, grace_s=90)
    assert [e.id for e in board.ranked()] == [ids[0]]
