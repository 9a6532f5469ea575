"""Trial loggers write what a user will look for: CSV rows, one offline wandb run per trial."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from atec_automl.loggers import CsvLogger, WandbLogger


def test_csv_logger_appends_one_row_per_metric(tmp_path: Path) -> None:
    logger = CsvLogger(str(tmp_path / "metrics.csv"))
    for trial in range(2):
        logger.start(f"mlp-{trial}", "study", {"lr": 0.1})
        logger.log({"valid_proxy": 0.5 + trial}, step=0)
        logger.log({"score": 0.3, "auc": 0.8})
        logger.finish()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["run"] for r in rows] == ["study/mlp-0"] * 3 + ["study/mlp-1"] * 3
    assert rows[3] == {"run": "study/mlp-1", "step": "0", "metric": "valid_proxy", "value": "1.5"}
    assert rows[4]["step"] == "" and rows[4]["metric"] == "score"


@pytest.mark.slow
def test_wandb_logger_makes_one_finished_offline_run_per_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    logger = WandbLogger(project="atec-test", directory=str(tmp_path))
    assert logger.mode == "offline"
    for trial in range(2):
        logger.start(f"catboost-{trial}", "study", {"depth": 4 + trial})
        logger.log({"valid_proxy": 0.7}, step=3)
        logger.log({"score": 0.4})
        logger.finish()
        assert logger.run is None
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    assert all(any(run.glob("*.wandb")) for run in runs)
