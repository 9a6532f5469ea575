"""The HTML report: its parts computed right, written atomically, and rendered by headless Chromium.

The browser test needs the Debian packages `chromium` and `chromium-driver` (/usr/bin/chromium,
/usr/bin/chromedriver) and the pip packages `selenium` and `pillow`. Without them it is skipped
locally and fails when CI=true.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.metrics import roc_curve

from atec_automl.data.dataset import Dataset
from atec_automl.features.featureset import FeatureSet
from atec_automl.leaderboard import Leaderboard, Predictions
from atec_automl.pipeline import Prepared
from atec_automl.report import (build_report, correlation_importances, importance_figure, roc_on_log_grid,
                                submissions_html, write_report)
from atec_automl.submit import SubmitSettings, make_submission, write_submission
from atec_automl.tasks._experiment import load_data
from atec_automl.tasks.report import configured_fingerprint, optuna_storage
from test_leaderboard import make_entry

OTHER_DATA = "fe" * 8

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,2400")


def filled_board(path: Path) -> Leaderboard:
    """Two CatBoost and MLP studies of 5 trials each, plus one outside file: 11 entries."""
    board = Leaderboard(path)
    for family, offset in (("catboost", 0), ("mlp", 50)):
        for trial in range(5):
            depth = 4 + trial
            entry = make_entry(offset + trial, study=f"atec-{family}", trial=trial, family=family,
                               signal=0.4 + 0.25 * trial, depth=depth, loss=["Logloss", "Focal"][trial % 2])
            entry.true_a, entry.true_b = entry.score - 0.05 * trial, entry.score - 0.1
            board.add(entry)
    board.add(make_entry(99, study="file", trial=None, family="file", signal=1.0))
    return board


def board_with_other_data(path: Path) -> Leaderboard:
    """`filled_board`, a one-trial CNN-LSTM study, and two weaker entries on another data set: 14 entries."""
    board = filled_board(path)
    board.add(make_entry(70, study="atec-cnn_lstm", trial=0, family="cnn_lstm", signal=0.5, depth=5))
    for trial in range(2):
        board.add(make_entry(80 + trial, study="atec-catboost-other", trial=trial, signal=0.1 + 0.1 * trial, depth=4 + trial,
                             fingerprint=OTHER_DATA))
    return board


def board_rows(fingerprint: str) -> Prepared:
    """A data set of 4 train, 7 test_a and 3 test_b rows (the boards of `make_entry`'s stored predictions)."""
    parts = ["train"] * 4 + ["test_a"] * 7 + ["test_b"] * 3
    frame = pd.DataFrame({"event_id": [f"e{i}" for i in range(14)], "ts": np.arange(14, dtype=np.int64) * 86_400,
                          "label": np.array([0, 1, 0, 0] + [np.nan] * 10, dtype=np.float32),
                          "part": pd.Categorical(parts, categories=["train", "test_a", "test_b"])})
    dataset = Dataset(frame=frame, fingerprint=fingerprint, id_column="event_id")
    return Prepared(dataset, FeatureSet(table=pd.DataFrame(index=frame.index)), [])


def submit_stored(board: Leaderboard, root: Path, fingerprint: str, name: str, blend_top: int) -> Path:
    """Write a stored-prediction submission of the best `blend_top` entries on `fingerprint`."""
    cfg = SubmitSettings(dir=str(root), entry=None, blend_top=blend_top, choose="best",
        refit=False, name=name)
    data = board_rows(fingerprint)
    return write_submission(make_submission(cfg, data, board, root / ".work"), data, cfg)


def test_roc_grid_is_the_step_roc_of_sklearn() -> None:
    rng = np.random.default_rng(0)
    label = (rng.random(5000) < 0.05).astype(np.int8)
    score = np.round(rng.random(5000) + label * rng.random(5000), 2)
    fpr_grid, tpr_grid = roc_on_log_grid(Predictions(np.arange(5000).astype(str), label, score, np.full(5000, "f")))
    fpr, tpr, _ = roc_curve(label, score, drop_intermediate=False)
    negatives = int((label == 0).sum())
    assert fpr_grid[0] == pytest.approx(1 / negatives) and fpr_grid[-1] == pytest.approx(1.0)
    expected = [tpr[fpr <= x].max() for x in fpr_grid]
    np.testing.assert_allclose(tpr_grid, expected)


def test_correlation_importances_rank_the_parameter_that_drives_the_score(tmp_path: Path) -> None:
    board = filled_board(tmp_path / "lb.sqlite")
    importances = correlation_importances(board.ranked(study="atec-catboost"))
    assert set(importances) == {"depth", "loss"}
    assert importances["depth"] > 0.8
    assert 0.0 <= importances["loss"] < importances["depth"]


def objective_driven_by_learning_rate(trial: optuna.Trial) -> float:
    """A score that depends on the learning rate only; depth is sampled but irrelevant."""
    trial.suggest_int("depth", 4, 10)
    return trial.suggest_float("learning_rate", 1e-3, 0.3, log=True)


def test_importances_come_from_the_optuna_study_when_its_storage_is_given(tmp_path: Path) -> None:
    board = filled_board(tmp_path / "lb.sqlite")
    storage = f"sqlite:///{tmp_path / 'optuna.sqlite'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="atec-catboost", storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective_driven_by_learning_rate, n_trials=12)
    entries = board.ranked(study="atec-catboost")
    from_optuna = importance_figure("atec-catboost", entries, storage)
    assert "Optuna fANOVA" in from_optuna.layout.title.text
    assert set(from_optuna.data[0].y) == {"learning_rate", "depth"}
    assert from_optuna.data[0].y[-1] == "learning_rate"
    unknown_study = importance_figure("atec-mlp", board.ranked(study="atec-mlp"), storage)
    assert "Spearman" in unknown_study.layout.title.text
    absent_storage = importance_figure("atec-catboost", entries, f"sqlite:///{tmp_path / 'absent.sqlite'}")
    assert "Spearman" in absent_storage.layout.title.text and not (tmp_path / "absent.sqlite").exists()


def test_storage_key_precedence(compose_cfg) -> None:
    assert optuna_storage(compose_cfg(["~study"])) is None
    assert optuna_storage(compose_cfg(["~study", "report.storage=sqlite:///a.db"])) == "sqlite:///a.db"
    assert optuna_storage(compose_cfg(["study=sqlite"])) == "sqlite:///leaderboard/optuna.sqlite"
    assert optuna_storage(compose_cfg(["study=sqlite", "report.storage=sqlite:///a.db"])) == "sqlite:///a.db"


def test_report_is_written_atomically_and_self_contained(tmp_path: Path) -> None:
    empty = write_report(Leaderboard(tmp_path / "none.sqlite"), tmp_path / "out" / "report.html")
    assert "No entries yet" in empty.read_text()
    board = filled_board(tmp_path / "lb.sqlite")
    path = write_report(board, tmp_path / "out" / "report.html", top=3)
    text = path.read_text()
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.html"]
    assert text.count("<tr>") == 1 + 11
    assert "<script src" not in text and "Plotly.newPlot" in text
    assert text.count('class="plotly-graph-div"') == 6  # ROC, local vs true, history, 2 importances, families
    assert "|Spearman correlation|" in text


def test_one_data_set_per_report_with_a_note_of_the_others(tmp_path: Path) -> None:
    board = board_with_other_data(tmp_path / "lb.sqlite")
    best_data = build_report(board, 3, None)
    assert "14 entries" not in best_data and "12 entries" in best_data
    assert "data fp0123456789abcd (the best entry&#x27;s); 2 entries of 1 other data set left out" in best_data
    other = build_report(board, 3, None, data=OTHER_DATA[:8])
    assert "2 entries;" in other and "12 entries of 1 other data set left out" in other
    assert "atec-catboost-other" in other and "atec-mlp" not in other


def test_damaged_submissions_are_named_not_skipped_in_silence(tmp_path: Path) -> None:
    board = filled_board(tmp_path / "lb.sqlite")
    (tmp_path / "submissions" / "broken").mkdir(parents=True)
    (tmp_path / "submissions" / "broken" / "manifest.json").write_text("{not json")
    text = submissions_html(tmp_path / "submissions", board.ranked()[0].data_fingerprint[:16], board)
    assert "id='no-submissions'" in text
    assert "<p class='note' id='damaged-submissions'>Damaged, not listed (manifest.json unreadable): broken.</p>" in text


def test_importances_from_two_trials_and_a_note_below_that(tmp_path: Path) -> None:
    board = board_with_other_data(tmp_path / "lb.sqlite")
    two = [e for e in board.ranked(data=OTHER_DATA)]
    assert len(two) == 2 and importance_figure("atec-catboost-other", two, None) is not None
    text = build_report(board, 3, None)
    assert "atec-cnn_lstm: 1 complete trial; parameter importances need at least 2" in text


def test_the_configured_data_fingerprint_is_the_loaders(raw_files: dict[str, Path], compose_cfg) -> None:
    cfg = compose_cfg(["data=atec", *(f"data.{part}={path}" for part, path in raw_files.items())])
    assert configured_fingerprint(cfg.data) == load_data(cfg.data).fingerprint
    absent = compose_cfg(["data=atec", f"data.train={raw_files['train'].parent / 'absent.csv'}", "data.test_a=null",
                          "data.test_b=null"])
    assert configured_fingerprint(absent.data) is None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium driven by selenium through /usr/bin/chromedriver, with console logging."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        message = f"browser test needs {', '.join(missing)}: apt-get install -y chromium chromium-driver; pip install selenium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    """Messages the page logged at level SEVERE (uncaught errors, console.error, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_console_error_detection_works(browser) -> None:
    browser.get("data:text/html,<html><body><script>undefinedFunction()</script></body></html>")
    assert any("undefinedFunction" in message for message in console_errors(browser))


def test_report_renders_in_headless_chromium(tmp_path: Path, run_cli, browser) -> None:
    from PIL import Image

    board = board_with_other_data(tmp_path / "lb.sqlite")
    submissions = tmp_path / "submissions"
    best = submit_stored(board, submissions, "fp0123456789abcdef", "best-entry", 1)
    blend = submit_stored(board, submissions, "fp0123456789abcdef", "blend-of-two", 2)
    submit_stored(board, submissions, OTHER_DATA, "other-data", 1)
    result = run_cli(["task=report", f"leaderboard.path={board.path}", "report.top=4", "leaderboard.data=fp01234567",
                      f"submit.dir={submissions}"])
    assert result.returncode == 0, result.stderr
    report = tmp_path / "report.html"
    assert f"Wrote {report} (12 entries)" in result.stdout

    browser.get(report.as_uri())
    assert console_errors(browser) == []
    rows = browser.execute_script("return [...document.querySelectorAll('#ranked tbody tr')]"
                                  ".map(r => [...r.cells].map(c => c.textContent))")
    ranked = board.ranked(data="fp01234567")
    assert [row[3] for row in rows] == [e.label() for e in ranked]
    assert [row[4] for row in rows] == [e.policy for e in ranked]
    assert [row[5] for row in rows] == [f"{e.score:.4f}" for e in ranked]
    assert [row[6] for row in rows] == [f"{e.score_low:.3f}..{e.score_high:.3f}" for e in ranked]
    assert rows[0][7] == "best" and set(row[7] for row in rows[1:]) <= {"~", "<", "-"}
    assert [row[8] for row in rows] == [str(e.frauds) for e in ranked]
    assert [row[13] for row in rows] == ["-" if e.true_a is None else f"{e.true_a:.4f}" for e in ranked]
    note = browser.execute_script("return document.getElementById('data-note').textContent")
    assert note == "data fp01234567 (configured); 2 entries of 1 other data set left out (leaderboard.data=FINGERPRINT shows another)"

    submitted = browser.execute_script("return [...document.querySelectorAll('#submissions tbody tr')]"
                                       ".map(r => [...r.cells].map(c => c.textContent))")
    models = [e for e in ranked if e.family != "file"]
    assert [row[0] for row in submitted] == [best.name, blend.name]
    assert submitted[0][1:5] == ["entry", f"#{models[0].id} {models[0].score:.4f}", f"{models[0].true_a:.4f}",
                                 f"{models[0].true_b:.4f}"]
    assert submitted[1][2] == f"#{models[0].id} {models[0].score:.4f}, #{models[1].id} {models[1].score:.4f}"
    assert submitted[1][3:5] == ["-", "-"]
    assert "2 submissions in" in browser.page_source and "(1 on other data left out)" in browser.page_source
    notes = browser.execute_script("return [...document.querySelectorAll('#importance-notes li')].map(l => l.textContent)")
    assert notes == ["atec-cnn_lstm: 1 complete trial; parameter importances need at least 2"]

    plots = browser.execute_script(
        "return [...document.querySelectorAll('.js-plotly-plot')].map(p => ({"
        "title: p.layout.title.text, traces: p.data.length, "
        "svgs: p.querySelectorAll('svg.main-svg').length, marks: p.querySelectorAll('.scatterlayer .trace, .barlayer .trace, .boxlayer .trace').length}))")
    assert [p["title"].split("<br>")[0] for p in plots] == [
        "ROC of the top entries (scored days, folds pooled)", "Local score against the true board scores",
        "Optimisation history", "Parameter importance, study atec-catboost", "Parameter importance, study atec-mlp",
        "Score by model family"]
    assert all(p["svgs"] >= 2 and p["marks"] >= 1 for p in plots)
    assert plots[0]["traces"] == 4 + 3 and plots[2]["traces"] == 3 * 2 and plots[5]["traces"] == 4
    assert plots[1]["traces"] == 3 and "Spearman(local, true A)" in plots[1]["title"]
    log_axis = browser.execute_script("return document.querySelector('.js-plotly-plot')._fullLayout.xaxis.type")
    assert log_axis == "log"
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert [r for r in resources if r.startswith("http")] == []

    screenshot = browser.get_screenshot_as_png()
    (tmp_path / "report.png").write_bytes(screenshot)
    pixels = np.asarray(Image.open(io.BytesIO(screenshot)).convert("RGB")).reshape(-1, 3)
    non_white = (pixels < 245).any(axis=1).mean()
    colours = len(np.unique(pixels[::7], axis=0))
    assert non_white > 0.05, f"screenshot is nearly blank ({non_white:.1%} non-white pixels)"
    assert colours > 100, f"screenshot has only {colours} distinct colours"
