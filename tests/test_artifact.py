"""A submission is a reloadable model: reloaded, it reproduces its A/B scores exactly; a damaged or
foreign one, or one made without refit, is refused in one line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atec_automl.artifact import load_submission
from atec_automl.errors import AtecError
from atec_automl.features.codes import appearance_codes, frozen_codes
from saved_submissions import prepared_data, refit_submission, small_config


@pytest.fixture(scope="module")
def catboost_submission(tmp_path_factory: pytest.TempPathFactory):
    """A refit CatBoost submission on tiny synthetic data, and what it was made from."""
    cfg = small_config(tmp_path_factory.mktemp("artifact"), "catboost", data_root=tmp_path_factory.getbasetemp())
    prepared = prepared_data(cfg)
    submission, path = refit_submission(cfg, prepared, "cb")
    return cfg, prepared, submission, path


def test_a_reloaded_submission_reproduces_its_board_scores_exactly(catboost_submission) -> None:
    _, prepared, submission, path = catboost_submission
    saved = load_submission(path)
    assert [m.family for m in saved.members] == ["catboost"]
    for board, scores in submission.scores.items():
        rows = prepared.dataset.part_rows(board)
        np.testing.assert_array_equal(saved.predict(prepared.dataset, rows), scores)
        written = pd.read_csv(path / f"{board}.csv")["score"].to_numpy()
        np.testing.assert_allclose(written, scores, rtol=1e-7)


def test_the_manifest_describes_the_model(catboost_submission) -> None:
    _, _, _, path = catboost_submission
    section = json.loads((path / "manifest.json").read_text())["model"]
    assert section["blend"] == "single" and section["members"][0]["family"] == "catboost"
    assert {"models/entry1/model.cbm", "models/entry1/model.json", "models/entry1/features.json", "vocabulary.json",
            "test_a.csv"} <= set(section["checksums"])
    assert section["libraries"]["catboost"] and section["data_format"]["_target_"].endswith("RawEventFormat")


def damaged_copy(path: Path, tmp_path: Path, change) -> Path:
    """A copy of the submission folder with `change(copy)` applied."""
    copy = tmp_path / path.name
    shutil.copytree(path, copy)
    change(copy)
    return copy


def edit_manifest(key: str, value) -> callable:
    """A change setting the manifest's model[key]."""
    def change(folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["model"][key] = value
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return change


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: (f / "models/entry1/model.cbm").write_bytes(b"garbage"),
     r"file models/entry1/model.cbm does not match its checksum \(damaged submission\)"),
    (lambda f: (f / "vocabulary.json").unlink(), r"file vocabulary.json is missing"),
    (edit_manifest("format_version", 99), r"saved in artifact format 99, this code reads format 1"),
    (edit_manifest("features_version", 1), r"its models read features of version 1"),
    (lambda f: (f / "manifest.json").write_text("{not json"), r"manifest.json is damaged"),
])
def test_a_damaged_or_foreign_submission_is_refused_in_one_line(catboost_submission, tmp_path: Path, change,
                                                                 message: str) -> None:
    _, _, _, path = catboost_submission
    with pytest.raises(AtecError, match=message) as error:
        load_submission(damaged_copy(path, tmp_path, change))
    assert "\n" not in str(error.value)


def test_a_submission_without_refit_says_it_has_no_model(catboost_submission) -> None:
    cfg, prepared, _, _ = catboost_submission
    _, path = refit_submission(cfg, prepared, "stored", refit=False)
    assert not (path / "models").exists()
    with pytest.raises(AtecError, match=r"made without refit \(submit.refit=false\); no model to load"):
        load_submission(path)


def test_frozen_codes_keep_the_training_code_space() -> None:
    training = pd.Series(pd.Categorical(["b", "a", None, "b", "c"]))
    vocabulary = pd.Index(pd.factorize(training)[1].astype(str), dtype="str")
    assert frozen_codes(training, vocabulary).tolist() == appearance_codes(training).tolist()
    later = pd.Series(pd.Categorical(["c", "new", None, "b", "newer", "new"]))
    assert frozen_codes(later, vocabulary).tolist() == [2, 3, -1, 0, 4, 3]
