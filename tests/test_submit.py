"""Submission files: validated, written all or nothing, blended by rank."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from atec_automl.data.dataset import Dataset
from atec_automl.errors import AtecError
from atec_automl.evaluation import FoldResult, build_entry
from atec_automl.features.featureset import FeatureSet
from atec_automl.leaderboard import Entry, Leaderboard
from atec_automl.pipeline import Prepared
from atec_automl.submit import (Submission, chosen_entries, choose_entries, identical_submission, identity,
                                make_submission, rank_average, submission_frame, SubmitSettings,
                                write_submission)
from atec_automl.submissions import damaged_manifests, read_manifests
from atec_automl.tasks.submissions import run as list_submissions
from atec_automl.tasks.submissions import summary_rows


def timeline(id_column: str = "event_id") -> Dataset:
    """Four train rows, three test_a rows and two test_b rows."""
    parts = ["train"] * 4 + ["test_a"] * 3 + ["test_b"] * 2
    frame = pd.DataFrame({
        "event_id": [f"e{i}" for i in range(9)],
        "ts": np.arange(9, dtype=np.int64) * 86_400 * 10,
        "label": np.array([0, 1, 0, -1] + [np.nan] * 5, dtype=np.float32),
        "part": pd.Categorical(parts, categories=["train", "test_a", "test_b"]),
    })
    return Dataset(frame=frame, fingerprint="f" * 64, id_column=id_column)


def prepared(dataset: Dataset) -> Prepared:
    """The dataset with an empty feature table and no folds (enough for writing files)."""
    return Prepared(dataset, FeatureSet(table=pd.DataFrame(index=dataset.frame.index)), [])


def settings(tmp_path: Path) -> SubmitSettings:
    """The submit keys, writing under tmp_path."""
    return SubmitSettings(dir=str(tmp_path / "submissions"))


def test_files_have_one_row_per_test_row_with_the_files_id_column(tmp_path: Path) -> None:
    dataset = timeline(id_column="id")
    submission = Submission({"test_a": np.array([0.1, 0.9, 0.5]), "test_b": np.array([0.2, 0.3])}, [], "first")
    target = write_submission(submission, prepared(dataset), settings(tmp_path))
    written = pd.read_csv(target / "test_a.csv")
    assert list(written.columns) == ["id", "score"]
    assert written["id"].tolist() == ["e4", "e5", "e6"]
    assert written["score"].tolist() == [0.1, 0.9, 0.5]
    assert pd.read_csv(target / "test_b.csv")["id"].tolist() == ["e7", "e8"]
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["data_fingerprint"] == "f" * 64 and manifest["files"]["test_b"]["rows"] == 2


@pytest.mark.parametrize(("scores", "message"), [
    (np.array([0.1, np.nan]), "NaN"),
    (np.array([0.1, 0.2, 0.3]), "3 scores for 2 test rows"),
])
def test_an_invalid_board_writes_nothing(tmp_path: Path, scores: np.ndarray, message: str) -> None:
    submission = Submission({"test_a": np.array([0.1, 0.9, 0.5]), "test_b": scores}, [], "broken")
    with pytest.raises(AtecError, match=message):
        write_submission(submission, prepared(timeline()), settings(tmp_path))
    assert list((tmp_path / "submissions").iterdir()) == []


def test_duplicate_ids_are_refused() -> None:
    dataset = timeline()
    dataset.frame.loc[5, "event_id"] = "e4"
    with pytest.raises(AtecError, match="duplicate id e4"):
        submission_frame(dataset, "test_a", np.array([0.1, 0.2, 0.3]))


def test_an_existing_submission_is_never_overwritten(tmp_path: Path) -> None:
    submission = Submission({"test_a": np.array([0.1, 0.9, 0.5])}, [], "same")
    write_submission(submission, prepared(timeline()), settings(tmp_path))
    with pytest.raises(AtecError, match="already exists"):
        write_submission(submission, prepared(timeline()), settings(tmp_path))


def test_rank_average() -> None:
    single = np.array([0.3, 0.1])
    assert rank_average([single]) is single
    blended = rank_average([np.array([0.9, 0.1, 0.5]), np.array([10.0, 30.0, 20.0])])
    assert blended.tolist() == pytest.approx([(3 / 3 + 1 / 3) / 2, (1 / 3 + 3 / 3) / 2, (2 / 3 + 2 / 3) / 2])


def test_no_entry_for_this_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AtecError, match="no model entry for data ffffffffffff"):
        choose_entries(Leaderboard(tmp_path / "empty.sqlite"), "f" * 64, None, 1)


def scored_entry(trial: int, signal: float, rows_seed: int = 0, score_seed: int | None = None) -> Entry:
    """An entry on fixed scored rows (`rows_seed`) whose scores rank frauds higher with `signal`."""
    rows = np.random.default_rng(rows_seed)
    label = (rows.random(3000) < 0.03).astype(np.int8)
    noise = np.random.default_rng(score_seed if score_seed is not None else 100 + trial)
    score = noise.random(3000) + signal * label * noise.random(3000)
    fold = FoldResult.of_scores("fold0", (17_500, 17_502), np.array([f"e{i}" for i in range(3000)]), label, score)
    return build_entry([fold], 200, family="catboost", study="s", trial=trial, params={}, config_yaml="",
                       data_fingerprint="f" * 64, split="same", policy="drop",
                       test_scores={"test_a": np.array([0.1, 0.9, 0.5]) * (trial + 1), "test_b": np.array([0.2, 0.3])})


def test_choose_best_lower_bound_and_indistinguishable(tmp_path: Path) -> None:
    board = Leaderboard(tmp_path / "lb.sqlite")
    ids = {name: board.add(scored_entry(trial, signal)) for trial, (name, signal) in
           enumerate([("strong", 3.0), ("close", 2.9), ("weak", 0.2)])}
    ranked = board.ranked()
    assert [e.id for e in choose_entries(board, "f" * 64, None, 1)] == [ranked[0].id]
    by_low = max(ranked, key=lambda e: e.score_low)
    assert [e.id for e in choose_entries(board, "f" * 64, None, 1, "lower_bound")] == [by_low.id]
    blend = {e.id for e in choose_entries(board, "f" * 64, None, 1, "indistinguishable")}
    assert blend == {ids["strong"], ids["close"]}
    with pytest.raises(AtecError, match="submit.choose: 'median' is not one of"):
        choose_entries(board, "f" * 64, None, 1, "median")


def test_blends_skip_entries_with_identical_predictions(tmp_path: Path) -> None:
    board = Leaderboard(tmp_path / "lb.sqlite")
    first = board.add(scored_entry(0, 3.0, score_seed=1))
    board.add(scored_entry(1, 3.0, score_seed=1))  # the same predictions under another trial number
    third = board.add(scored_entry(2, 1.0, score_seed=2))
    assert [e.id for e in choose_entries(board, "f" * 64, None, 2)] == [first, third]


def test_submit_without_refit_writes_the_stored_predictions(tmp_path: Path) -> None:
    board = Leaderboard(tmp_path / "lb.sqlite")
    entry_id = board.add(scored_entry(0, 3.0))
    cfg = SubmitSettings(dir=str(tmp_path / "submissions"), entry=entry_id, blend_top=1,
        choose="best", refit=False, name="stored")
    submission = make_submission(cfg, prepared(timeline()), board, tmp_path / "work")
    target = write_submission(submission, prepared(timeline()), cfg)
    assert pd.read_csv(target / "test_a.csv")["score"].tolist() == pytest.approx([0.1, 0.9, 0.5])
    assert json.loads((target / "manifest.json").read_text())["refit"] is False


def test_submit_without_refit_refuses_predictions_of_other_rows(tmp_path: Path) -> None:
    board = Leaderboard(tmp_path / "lb.sqlite")
    entry = scored_entry(0, 3.0)
    entry.test_scores = {"test_a": np.array([0.1, 0.2])}
    entry_id = board.add(entry)
    cfg = SubmitSettings(entry=entry_id, blend_top=1, refit=False, name=None)
    with pytest.raises(AtecError, match="no stored predictions of test_a's 3 rows; use submit.refit=true"):
        make_submission(cfg, prepared(timeline()), board, tmp_path / "work")


def stored_submission_cfg(tmp_path: Path, **submit: object) -> SubmitSettings:
    """The `submit` settings of a stored-prediction submission of the best entry, writing under tmp_path."""
    return replace(SubmitSettings(dir=str(tmp_path / "submissions"), refit=False), **submit)


def test_an_identical_resubmission_finds_the_folder_and_any_difference_does_not(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("atec_automl.submit.current_git_commit", lambda: "a" * 40)
    board = Leaderboard(tmp_path / "lb.sqlite")
    board.add(scored_entry(0, 3.0))
    board.add(scored_entry(1, 1.0))
    data, cfg = prepared(timeline()), stored_submission_cfg(tmp_path)
    entries = chosen_entries(cfg, data, board)
    written = write_submission(make_submission(cfg, data, board, tmp_path / "work", entries), data, cfg)
    same = identity(chosen_entries(cfg, data, board), "f" * 64, "a" * 40, cfg.identity())
    assert identical_submission(tmp_path / "submissions", same) == written
    blend = stored_submission_cfg(tmp_path, blend_top=2)
    assert identical_submission(tmp_path / "submissions", identity(chosen_entries(blend, data, board), "f" * 64, "a" * 40,
                                                                   blend.identity())) is None
    for changed in ({"git_commit": "b" * 40}, {"git_commit": "a" * 40 + "-dirty"}, {"data_fingerprint": "e" * 64},
                    {"submit_settings": stored_submission_cfg(tmp_path, choose="lower_bound").identity()}):
        assert identical_submission(tmp_path / "submissions", {**same, **changed}) is None, changed


def test_the_submissions_listing_reads_every_manifest_and_names_the_damaged_ones(tmp_path: Path, capsys) -> None:
    board = Leaderboard(tmp_path / "lb.sqlite")
    board.add(scored_entry(0, 3.0))
    board.add(scored_entry(1, 1.0))
    data = prepared(timeline())
    for name, blend_top in (("one", 1), ("two", 2)):
        cfg = stored_submission_cfg(tmp_path, name=name, blend_top=blend_top)
        write_submission(make_submission(cfg, data, board, tmp_path / "work"), data, cfg)
    (tmp_path / "submissions" / "broken").mkdir()
    (tmp_path / "submissions" / "broken" / "manifest.json").write_text("{not json")
    assert [folder.name for folder, _ in read_manifests(tmp_path / "submissions")] == ["one", "two"]
    assert [(folder.name, problem[:11]) for folder, problem in damaged_manifests(tmp_path / "submissions")] == [
        ("broken", "is not JSON")]
    capsys.readouterr()
    list_submissions(OmegaConf.create({"submit": {"dir": str(tmp_path / "submissions")}}))
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"Submissions in {tmp_path / 'submissions'} (2)"
    assert printed[-1].startswith(f"damaged, not listed: {tmp_path / 'submissions' / 'broken'} (its manifest.json is not JSON (")
    rows = summary_rows(tmp_path / "submissions")
    scores = [e.score for e in board.ranked()]
    assert [row[:5] for row in rows] == [("one", "entry", "1", "ffffffff", f"{scores[0]:.4f}"),
                                         ("two", "blend", "1,2", "ffffffff", f"{scores[0]:.4f},{scores[1]:.4f}")]
