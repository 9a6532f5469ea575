"""`python run.py task=train` end to end on small synthetic data, real features and the time split."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from atec_automl.models import load_model
from test_startup import heavy, imported

REPO = Path(__file__).resolve().parents[1]
FAST = {
    "catboost": ["model.iterations=60", "model.thread_count=1"],
    "mlp": ["model.epochs=2", "trainer.cpu_threads=1"],
    "cnn_lstm": ["model.epochs=1", "model.lstm_hidden=16", "model.conv_channels=8", "trainer.cpu_threads=1"],
}


@pytest.fixture(scope="module")
def data_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Overrides pointing at a small synthetic data set and feature cache shared by the module's runs."""
    shared = tmp_path_factory.mktemp("train_task")
    return ["task=train", "data.rows=40000", f"data.dir={shared / 'synthetic'}", f"features.cache_dir={shared / 'cache'}"]


@pytest.mark.parametrize("family", ["catboost", "mlp", "cnn_lstm"])
def test_train_task_prints_the_score_and_saves_a_loadable_model(family, data_args, cli, tmp_path, monkeypatch):
    leftovers = {name: (REPO / name).exists() for name in ("catboost_info", "lightning_logs")}
    run_dir = tmp_path / "run"
    if family == "catboost":  # the command lists its imports (test_startup.py)
        monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    result = cli([*data_args, f"model={family}", *FAST[family]], run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    if family == "catboost":  # CatBoost's fit, scores and AUC need no neural-network or statistics library
        assert heavy(imported(result.stderr)) == []
    line = re.search(r"ATEC score (\d\.\d+) \(TPR@FPR=0.001 (\d\.\d+), TPR@FPR=0.005 (\d\.\d+), "
                     r"TPR@FPR=0.01 (\d\.\d+)\), AUC (\d\.\d+)", result.stdout)
    assert line, result.stdout
    figures = json.loads((run_dir / "train.json").read_text())
    assert figures["family"] == family
    assert float(line.group(1)) == pytest.approx(figures["score"], abs=1e-4)
    assert figures["score"] == pytest.approx(0.4 * figures["tpr1"] + 0.3 * figures["tpr2"] + 0.3 * figures["tpr3"])
    assert figures["auc"] > 0.5
    assert load_model(run_dir / "model").family == family
    assert not list(run_dir.glob(".*partial"))
    assert {name: (REPO / name).exists() for name in leftovers} == leftovers
    if family == "catboost":  # a second train into the same run dir keeps the first model and says so first
        saved = {path: path.read_bytes() for path in (run_dir / "model").iterdir()}
        again = cli([*data_args, f"model={family}", *FAST[family]], run_dir)
        assert again.returncode == 2 and "[train]" not in again.stdout, again.stdout + again.stderr
        assert [line for line in again.stderr.splitlines() if not line.startswith("import time:")] == [
            f"error: hydra.run.dir={run_dir}: it already holds a model ({run_dir / 'model'}, an earlier task=train); "
            "give another run dir, or move that model away"]
        assert {path: path.read_bytes() for path in (run_dir / "model").iterdir()} == saved
