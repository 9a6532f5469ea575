"""Submission files: validated, written all or nothing, blended by rank."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from atec_automl.data.dataset import Dataset
from atec_automl.errors import AtecError
from atec_automl.features.featureset import FeatureSet
from atec_automl.leaderboard import Leaderboard
from atec_automl.pipeline import Prepared
from atec_automl.submit import Submission, choose_entries, rank_average, submission_frame, write_submission


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


def settings(tmp_path: Path) -> OmegaConf:
    """The submit keys, writing under tmp_path."""
    return OmegaConf.create({"submit": {"dir": str(tmp_path / "submissions")}})


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
