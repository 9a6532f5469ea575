"""task=predict: new events scored from a saved submission, each from strictly earlier events only."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atec_automl.artifact import load_submission, score_file
from saved_submissions import prepared_data, refit_submission, small_config
from test_startup import heavy, imported

TAIL = 400


@pytest.fixture(scope="module")
def split_test_b(tmp_path_factory: pytest.TempPathFactory):
    """A CatBoost submission, and test_b cut into a history head (parquet) and a tail of new events (CSV)."""
    root = tmp_path_factory.mktemp("predict")
    cfg = small_config(root, "catboost", data_root=tmp_path_factory.getbasetemp())
    prepared = prepared_data(cfg)
    submission, path = refit_submission(cfg, prepared, "cb")
    test_b = pd.read_parquet(cfg.data.test_b).sort_values("gmt_occur", kind="stable")
    head = root / "test_b_head.parquet"
    test_b.iloc[:-TAIL].to_parquet(head, index=False)
    events = root / "new_events.csv"
    test_b.iloc[-TAIL:].to_csv(events, index=False)
    history = [Path(cfg.data.train), Path(cfg.data.test_a), head]
    return submission, path, history, events


def test_predict_reproduces_the_submitted_scores_of_the_same_events(split_test_b, run_cli, tmp_path: Path) -> None:
    submission, path, history, events = split_test_b
    output = tmp_path / "scores.csv"
    result = run_cli(["task=predict", f"predict.submission={path}", f"predict.events={events}",
                      f"predict.history=[{','.join(str(p) for p in history)}]", f"predict.output={output}"])
    assert result.returncode == 0, result.stderr
    written = pd.read_csv(output)
    assert list(written.columns) == ["event_id", "score"]
    expected = pd.read_csv(events)["event_id"].tolist()
    assert written["event_id"].tolist() == expected
    np.testing.assert_allclose(written["score"].to_numpy(), submission.scores["test_b"][-TAIL:], rtol=1e-9)


def test_a_catboost_submission_predicts_without_torch(split_test_b, run_cli, monkeypatch, tmp_path: Path) -> None:
    """Scoring with a CatBoost model imports no neural-network or statistics library (see test_startup.py)."""
    _, path, history, events = split_test_b
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    result = run_cli(["task=predict", f"predict.submission={path}", f"predict.events={events}",
                      f"predict.history=[{','.join(str(p) for p in history)}]", f"predict.output={tmp_path / 'scores.csv'}"])
    assert result.returncode == 0, result.stderr[-2000:]
    modules = imported(result.stderr)
    assert "catboost" in modules
    assert heavy(modules) == []


def test_a_later_event_never_moves_an_earlier_score(split_test_b, tmp_path: Path) -> None:
    _, path, history, events = split_test_b
    saved = load_submission(path)
    before = score_file(saved, history, events)
    frame = pd.read_csv(events, dtype=str, keep_default_na=False)
    frame.loc[len(frame) - 50:, "amt"] = "99999"
    frame.loc[len(frame) - 50:, "device_sign"] = "a-new-device"
    changed = tmp_path / "changed.csv"
    frame.to_csv(changed, index=False)
    after = score_file(saved, history, changed)
    np.testing.assert_array_equal(after["score"].to_numpy()[:-50], before["score"].to_numpy()[:-50])
    assert not np.array_equal(after["score"].to_numpy()[-50:], before["score"].to_numpy()[-50:])


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: f.assign(gmt_occur=f["gmt_occur"].where(f.index != 3, "2018-02-30 10:00:00")),
     r"column 'gmt_occur', row 4: impossible time"),
    (lambda f: f.drop(columns=["user_id"]), r"column 'user_id'.*missing required column"),
    (lambda f: f.assign(gmt_occur="2017-09-01 00:00:00"), r"events starts before history file 3 ends"),
])
def test_bad_events_are_one_error_line_and_no_output(split_test_b, run_cli, tmp_path: Path, edit, message) -> None:
    _, path, history, events = split_test_b
    bad = tmp_path / "bad.csv"
    edit(pd.read_csv(events, dtype=str, keep_default_na=False)).to_csv(bad, index=False)
    output = tmp_path / "scores.csv"
    result = run_cli(["task=predict", f"predict.submission={path}", f"predict.events={bad}",
                      f"predict.history=[{','.join(str(p) for p in history)}]", f"predict.output={output}"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"file {bad}" in lines[0], result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not output.exists()
