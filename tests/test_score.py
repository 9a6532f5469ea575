"""task=score: an outside prediction file scored on the last fold's scored days, validated row by row."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atec_automl.errors import DataError
from atec_automl.leaderboard import Leaderboard
from atec_automl.metric import atec_score, auc
from atec_automl.prediction_file import read_prediction_file

DAYS = 20
ROWS_PER_DAY = 150
FIRST_DAY = date(2017, 9, 5)


@pytest.fixture
def prelim_train(tmp_path: Path) -> pd.DataFrame:
    """A preliminary-format train file of 20 days (written to tmp_path), returned as written."""
    rng = np.random.default_rng(0)
    days = np.repeat(np.arange(DAYS), ROWS_PER_DAY)
    label = rng.choice([0, 1, -1], size=len(days), p=[0.9, 0.08, 0.02])
    frame = pd.DataFrame({
        "id": [f"p{i}" for i in range(len(days))],
        "label": label,
        "date": [(FIRST_DAY + timedelta(days=int(d))).strftime("%Y%m%d") for d in days],
        "f1": rng.normal(size=len(days)).round(3),
    })
    frame.to_csv(tmp_path / "atec_anti_fraud_train.csv", index=False)
    return frame


def scored_rows(train: pd.DataFrame) -> pd.DataFrame:
    """The rows the default split scores: 0/1 labels of the last 3 days."""
    last_days = {(FIRST_DAY + timedelta(days=d)).strftime("%Y%m%d") for d in range(DAYS - 3, DAYS)}
    return train[train["date"].isin(last_days) & train["label"].isin([0, 1])]


def data_args(tmp_path: Path) -> list[str]:
    """Overrides for the preliminary train file and a leaderboard in tmp_path."""
    return ["task=score", "data=atec_prelim", f"data.train={tmp_path / 'atec_anti_fraud_train.csv'}",
            f"leaderboard.path={tmp_path / 'lb.sqlite'}"]


def write_predictions(path: Path, ids, scores, id_column: str = "id") -> Path:
    """A prediction CSV with an id column and `score`."""
    pd.DataFrame({id_column: ids, "score": scores}).to_csv(path, index=False)
    return path


def test_scores_the_last_three_days_and_adds_the_file(tmp_path: Path, prelim_train: pd.DataFrame, run_cli) -> None:
    rng = np.random.default_rng(1)
    scores = prelim_train["label"].clip(lower=0) * rng.random(len(prelim_train)) + rng.random(len(prelim_train))
    preds = write_predictions(tmp_path / "preds.csv", prelim_train["id"], scores.round(6))
    scored = scored_rows(prelim_train)
    expected = atec_score(scored["label"].to_numpy(), scores.round(6)[scored.index].to_numpy())
    expected_auc = auc(scored["label"].to_numpy(), scores.round(6)[scored.index].to_numpy())

    result = run_cli([*data_args(tmp_path), f"file={preds}", "score.add=true"])
    assert result.returncode == 0, result.stderr
    assert f"score {expected.score:.4f}  TPR1 {expected.tpr1:.4f}" in result.stdout
    assert f"AUC {expected_auc:.4f}" in result.stdout
    assert f"scored {len(scored)} events" in result.stdout and "2017-09-22..2017-09-24" in result.stdout
    assert f"{len(prelim_train) - len(scored)} other rows ignored" in result.stdout
    (entry,) = Leaderboard(tmp_path / "lb.sqlite").ranked()
    assert (entry.family, entry.study, entry.trial) == ("file", "file", None)
    assert entry.score == pytest.approx(expected.score) and entry.auc == pytest.approx(expected_auc)
    assert entry.params == {"file": str(preds.resolve())}
    assert sorted(Leaderboard(tmp_path / "lb.sqlite").predictions(entry.id).event_id) == sorted(scored["id"])

    again = run_cli([*data_args(tmp_path), f"file={preds}", "score.add=true"])
    assert again.returncode == 0, again.stderr
    assert f"not added: the same predictions are already entry {entry.id}" in again.stdout
    assert len(Leaderboard(tmp_path / "lb.sqlite").ranked()) == 1


def test_only_scored_rows_are_needed(tmp_path: Path, prelim_train: pd.DataFrame, run_cli) -> None:
    scored = scored_rows(prelim_train)
    perfect = scored["label"] + np.linspace(0, 0.5, len(scored))
    preds = write_predictions(tmp_path / "preds.csv", scored["id"], perfect)
    result = run_cli([*data_args(tmp_path), f"file={preds}"])
    assert result.returncode == 0, result.stderr
    expected = atec_score(scored["label"].to_numpy(), perfect.to_numpy())
    assert f"score {expected.score:.4f}  TPR1 {expected.tpr1:.4f}  TPR2 1.0000  TPR3 1.0000  AUC 1.0000" in result.stdout
    assert "0 other rows ignored" in result.stdout
    assert not (tmp_path / "lb.sqlite").exists()


def test_missing_scored_ids_are_a_one_line_error(tmp_path: Path, prelim_train: pd.DataFrame, run_cli) -> None:
    scored = scored_rows(prelim_train)
    preds = write_predictions(tmp_path / "preds.csv", scored["id"].iloc[1:], np.linspace(0, 1, len(scored) - 1))
    result = run_cli([*data_args(tmp_path), f"file={preds}"])
    assert result.returncode == 2
    stopping_day = (FIRST_DAY + timedelta(days=DAYS - 4)).strftime("%Y%m%d")
    early_stop = prelim_train[(prelim_train["date"] == stopping_day) & prelim_train["label"].isin([0, 1])]
    assert result.stderr.strip().splitlines() == [
        f"error: file {preds}, column 'id': 1 of the {len(scored)} scored events (fold2: scored "
        f"2017-09-22..2017-09-24, {len(prelim_train) - ROWS_PER_DAY * 4} train rows, {len(early_stop)} early-stopping "
        f"rows, {len(scored)} scored rows) "
        f"have no score, e.g. id {scored['id'].iloc[0]!r}"]


def test_score_needs_a_file(tmp_path: Path, prelim_train: pd.DataFrame, run_cli) -> None:
    result = run_cli(data_args(tmp_path))
    assert result.returncode == 2 and "task=score needs file=" in result.stderr


@pytest.mark.parametrize("id_column", ["id", "event_id"])
def test_reads_either_id_column(tmp_path: Path, id_column: str) -> None:
    path = write_predictions(tmp_path / "p.csv", ["a", "b", "c"], [0.5, 1e-3, 7], id_column=id_column)
    read = read_prediction_file(path, "event_id")
    assert read.ids.tolist() == ["a", "b", "c"] and read.id_column == id_column
    np.testing.assert_array_equal(read.scores, [0.5, 1e-3, 7.0])


@pytest.mark.parametrize(("text", "column", "row", "problem"), [
    ("id,score\na,0.5\nb,0.1\na,0.2\n", "id", 3, "duplicate id 'a' (first at row 1)"),
    ("id,score\na,0.5\nb,\n", "score", 2, "missing or NaN score"),
    ("id,score\na,0.5\nb,0.3\nc,NaN\n", "score", 3, "missing or NaN score"),
    ("id,score\na,0.5\nb,high\n", "score", 2, "non-numeric score 'high'"),
    ("id,score\na,inf\n", "score", 1, "infinite score 'inf'"),
    ("id,score\na,0.5\n,0.1\n", "id", 2, "missing id"),
])
def test_bad_rows_are_named(tmp_path: Path, text: str, column: str, row: int, problem: str) -> None:
    path = tmp_path / "preds.csv"
    path.write_text(text)
    with pytest.raises(DataError) as raised:
        read_prediction_file(path, "event_id")
    assert str(raised.value) == f"file {path}, column {column!r}, row {row}: {problem}"


@pytest.mark.parametrize(("text", "problem"), [
    ("user,score\na,0.5\n", "no id column: expected 'event_id' or 'id' and 'score', found ['user', 'score']"),
    ("id,prob\na,0.5\n", "no 'score' column, found ['id', 'prob']"),
    ("", "not a readable CSV"),
])
def test_bad_files_are_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "preds.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=r"^file .*preds\.csv: " + problem.replace("[", r"\[").replace("(", r"\(")):
        read_prediction_file(path, "event_id")
    with pytest.raises(DataError, match="file not found"):
        read_prediction_file(tmp_path / "absent.csv", "event_id")


def test_the_file_is_checked_before_the_data_is_loaded(tmp_path: Path, run_cli) -> None:
    preds = tmp_path / "preds.csv"
    preds.write_text("id,score\na,0.5\na,0.1\n")
    result = run_cli([*data_args(tmp_path), f"file={preds}"])
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: file {preds}, column 'id', row 2: duplicate id 'a' (first at row 1)"
