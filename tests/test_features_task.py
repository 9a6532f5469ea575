"""`python run.py task=features` end to end: build, cache, reuse, export, on both formats."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd


def test_task_builds_caches_reuses_and_exports_synthetic_features(run_cli, tmp_path: Path) -> None:
    """First run builds and caches; the second reuses the cache; export writes event_id + features."""
    export = tmp_path / "out" / "features.parquet"
    args = [
        "task=features",
        "data.rows=3000",
        f"data.dir={tmp_path / 'synthetic'}",
        f"features.cache_dir={tmp_path / 'cache'}",
    ]
    first = run_cli(args)
    assert first.returncode == 0, first.stderr
    assert re.search(r"features: 3,000 rows x \d+ columns \(\d+ categorical\)", first.stdout)
    assert "sequences: 3,000 x 20 index, 3,000 x 13 steps" in first.stdout
    cache_path = re.search(r"cached at (\S+)", first.stdout).group(1)
    assert (Path(cache_path) / "manifest.json").is_file() and (Path(cache_path) / "seq_index.npy").is_file()

    second = run_cli([*args, f"features.export={export}"])
    assert second.returncode == 0, second.stderr
    assert f"reused cache {cache_path}" in second.stdout
    assert "exported:" in second.stdout
    table = pd.read_parquet(export)
    assert table.columns[0] == "event_id" and len(table) == 3000 and table["event_id"].is_unique
    assert table.shape[1] >= 81
    train = pd.read_parquet(tmp_path / "synthetic" / "train.parquet")
    assert set(train["event_id"]) <= set(table["event_id"])
    assert not list(export.parent.glob(".*.tmp"))


def test_task_on_preliminary_files_without_a_cache(run_cli, prelim_files: dict[str, Path], tmp_path: Path) -> None:
    """features=prelim on the preliminary format: f-columns, missing count, dates, no sequences."""
    export = tmp_path / "prelim.parquet"
    result = run_cli([
        "task=features",
        "data=atec_prelim",
        "features=prelim",
        f"data.train={prelim_files['train']}",
        f"data.test_a={prelim_files['test_a']}",
        "features.cache_dir=null",
        f"features.export={export}",
    ])
    assert result.returncode == 0, result.stderr
    assert "sequences: none (no users in this format)" in result.stdout
    assert "cache off" in result.stdout
    table = pd.read_parquet(export).set_index("event_id")
    assert {"f1", "f2", "f5", "f7", "missing_count", "weekday", "holiday"} <= set(table.columns)
    assert table.loc["p1", "missing_count"] == 2 and table.loc["q1", "missing_count"] == 2
    assert np.isnan(table.loc["p2", "f1"]) and table.loc["p1", "f5"] == -1


def test_task_names_the_right_feature_config_for_the_data(run_cli, prelim_files: dict[str, Path]) -> None:
    """Raw-format features on preliminary data stop with one error line naming features=prelim."""
    result = run_cli(["task=features", "data=atec_prelim", f"data.train={prelim_files['train']}", "features.cache_dir=null"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: features:")
    assert "features=prelim" in result.stderr


def test_task_on_sparse_raw_csv_skips_absent_fields(run_cli, raw_files: dict[str, Path], tmp_path: Path) -> None:
    """Tiny raw CSVs lacking most fields still build (absent fields are all-missing)."""
    export = tmp_path / "raw.parquet"
    result = run_cli([
        "task=features",
        "data=atec",
        *[f"data.{part}={path}" for part, path in raw_files.items()],
        "features.cache_dir=null",
        f"features.export={export}",
    ])
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(export).set_index("event_id")
    # e2 and e3 share a time: neither sees the other; e1 (an hour later) sees e3 of the same user u1
    assert table.loc["e3", "user_count_all"] == 0 and table.loc["e1", "user_count_all"] == 1
    assert table.loc["e1", "user_amt_sum_1h"] == 3 and table.loc["e1", "user_since_prev"] == 13 * 3600 - (12 * 3600 + 4 * 60 + 5)
    assert table.loc["a1", "user_count_all"] == 2 and table.loc["a1", "new_ip"] == 0
