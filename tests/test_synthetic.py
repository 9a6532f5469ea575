"""The synthetic generator: files, schema, windows, labels, determinism, atomicity and realism."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from atec_automl.data import synthetic
from atec_automl.data.synthetic import COLUMNS, INT_COLUMNS, MANIFEST_NAME, WINDOWS, generate, read_manifest
from atec_automl.errors import AtecError

REPO = Path(__file__).resolve().parents[1]
ROWS = 20_000
DAY = 86_400


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory) -> Path:
    """A 20 k-row parquet data set (seed 3)."""
    out = tmp_path_factory.mktemp("parquet") / "data"
    generate(ROWS, 3, out)
    return out


@pytest.fixture(scope="module")
def timeline(parquet_dir) -> pd.DataFrame:
    """All three parts joined with their (hidden) labels, in file order, with `part` and `ts` seconds."""
    parts = []
    for window in WINDOWS:
        frame = pd.read_parquet(parquet_dir / f"{window.part}.parquet")
        frame["part"] = window.part
        parts.append(frame)
    events = pd.concat(parts, ignore_index=True)
    hidden = pd.read_parquet(parquet_dir / "test_labels.parquet").set_index("event_id")["is_fraud"]
    events["is_fraud"] = events["is_fraud"].fillna(events["event_id"].map(hidden)).astype(int)
    stamps = pd.to_datetime(events["gmt_occur"], format="%Y-%m-%d %H:%M:%S")
    events["ts"] = (stamps - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    return events


def sha256(path: Path) -> str:
    """Hex digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    first = generate(10_000, 7, tmp_path / "a")
    second = generate(10_000, 7, tmp_path / "b")
    other = generate(10_000, 8, tmp_path / "c")
    assert {key: sha256(path) for key, path in first.items()} == {key: sha256(path) for key, path in second.items()}
    assert sha256(tmp_path / "a" / MANIFEST_NAME) == sha256(tmp_path / "b" / MANIFEST_NAME)
    assert sha256(first["train"]) != sha256(other["train"])
    assert read_manifest(tmp_path / "a")["parts"]["train"]["sha256"] == sha256(first["train"])


def test_regenerating_into_an_existing_directory_replaces_the_files(tmp_path):
    paths = generate(10_000, 1, tmp_path / "data")
    digests = {key: sha256(path) for key, path in paths.items()}
    (tmp_path / "data" / "unrelated.txt").write_text("kept")
    again = generate(10_000, 1, tmp_path / "data")
    assert {key: sha256(path) for key, path in again.items()} == digests
    assert (tmp_path / "data" / "unrelated.txt").read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temp dir left behind


def test_interrupted_run_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_manifest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate(10_000, 1, tmp_path / "data")
    assert list(tmp_path.iterdir()) == []


def test_returned_paths_and_file_names(parquet_dir):
    paths = generate(ROWS, 3, parquet_dir)
    assert paths == {
        "train": parquet_dir / "train.parquet",
        "test_a": parquet_dir / "test_a.parquet",
        "test_b": parquet_dir / "test_b.parquet",
        "hidden_labels": parquet_dir / "test_labels.parquet",
    }
    assert all(path.exists() for path in paths.values())
    assert read_manifest(parquet_dir)["rows"] == ROWS


def test_schema_columns_order_and_types(parquet_dir):
    train = pq.read_schema(parquet_dir / "train.parquet")
    assert train.names == list(COLUMNS)
    for part in ("test_a", "test_b"):
        assert pq.read_schema(parquet_dir / f"{part}.parquet").names == [c for c in COLUMNS if c != "is_fraud"]
    assert pq.read_schema(parquet_dir / "test_labels.parquet").names == ["event_id", "is_fraud", "true_fraud"]
    for field in train:
        expected = "double" if field.name == "amt" else "int64" if field.name in INT_COLUMNS else "string"
        assert str(field.type) == expected, field.name


def test_values_look_like_the_contest_data(timeline):
    assert timeline["user_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert timeline["event_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert set(timeline["network"]) == {"wifi", "4g", "3g", "-1"}
    assert set(timeline["mobile_oper_platform"]) == {"ios", "android", "other", "-1"}
    assert set(timeline["operation_channel"]) == {"app", "pc", "wap", "other", "-1"}
    assert {"站内即时到账", "淘宝实物担保", "线下扫码"} <= set(timeline["pay_scene"])
    assert set(timeline["sample_seg"]) == {"INS", "OOT"}
    assert (timeline["amt"] > 0).all()
    assert timeline["ip_prov"].between(-1, 31).all()


def test_same_entity_gives_the_same_hash(timeline):
    known = timeline[(timeline["cert_no"] != "-1") & (timeline["phone_no"] != "-1")]
    assert known.groupby("user_id")["cert_no"].nunique().max() == 1
    assert known.groupby("user_id")["phone_no"].nunique().max() == 1
    one_people = known[(known["is_one_people"] == 1) & (known["card_cert_no"] != "-1")]
    assert (one_people["card_cert_no"] == one_people["cert_no"]).all()


def test_rows_per_file_and_date_windows(timeline):
    counts = timeline["part"].value_counts()
    assert counts["train"] == ROWS // 2 and counts["test_a"] == ROWS // 4 and counts["test_b"] == ROWS // 4
    for window in WINDOWS:
        part = timeline[timeline["part"] == window.part]
        assert part["dt"].min() == window.first_day and part["dt"].max() == window.last_day
        assert (part["dt"] == part["gmt_occur"].str[:10]).all()
        assert part["ts"].is_monotonic_increasing


def test_label_shares_and_codes(timeline, parquet_dir):
    hidden = pd.read_parquet(parquet_dir / "test_labels.parquet")
    assert set(hidden["is_fraud"]) == {1, 0, -1}
    for window in WINDOWS:
        labels = timeline.loc[timeline["part"] == window.part, "is_fraud"]
        assert 0.006 <= (labels == 1).mean() <= 0.015, window.part
        assert 0.005 <= (labels == -1).mean() <= 0.015, window.part


def test_hidden_labels_cover_every_test_row_in_order(timeline, parquet_dir):
    hidden = pd.read_parquet(parquet_dir / "test_labels.parquet")
    tests = timeline[timeline["part"] != "train"]
    assert hidden["event_id"].tolist()[:len(tests)] == tests["event_id"].tolist()


def test_hidden_labels_hold_the_truth_of_every_grey_and_mislabelled_training_row(timeline, parquet_dir):
    hidden = pd.read_parquet(parquet_dir / "test_labels.parquet")
    train = timeline[timeline["part"] == "train"].set_index("event_id")
    listed = hidden[hidden["event_id"].isin(train.index)]
    assert set(listed["event_id"]) >= set(train.index[train["is_fraud"] == -1])
    assert (listed["is_fraud"].to_numpy() == train.loc[listed["event_id"], "is_fraud"].to_numpy()).all()
    mislabelled = listed[listed["is_fraud"] == 0]
    assert len(mislabelled) > 0 and (mislabelled["true_fraud"] == 1).all()
    grey = listed[listed["is_fraud"] == -1]
    assert 0 < grey["true_fraud"].mean() < 1
    manifest = read_manifest(parquet_dir)["parts"]["train"]
    assert grey["true_fraud"].sum() == manifest["grey_really_fraud"]
    assert set(listed["is_fraud"]) == {-1, 0}  # black rows are always truly fraud: never listed


def test_event_ids_unique_across_files(timeline):
    assert timeline["event_id"].is_unique


def test_missing_fields_are_minus_one_and_more_frequent_in_test_b(timeline):
    def missing_share(part: str) -> float:
        rows = timeline[timeline["part"] == part]
        id_missing = (rows[["device_sign", "client_ip", "version", "network"]] == "-1").to_numpy().mean()
        int_missing = (rows[["ip_prov", "card_mobile_prov", "cert_prov"]] == -1).to_numpy().mean()
        return (id_missing + int_missing) / 2

    assert (timeline["device_sign"] == "-1").any() and (timeline["ip_prov"] == -1).any()
    assert not timeline.drop(columns=["is_fraud", "ts"]).isna().any().any()
    assert missing_share("test_b") > 1.5 * missing_share("train") > 0


def test_csv_with_hour_resolution_round_trips_chinese_text(tmp_path):
    paths = generate(10_000, 5, tmp_path / "csv", file_format="csv", time_resolution="hour")
    assert [p.suffix for p in paths.values()] == [".csv"] * 4
    train = pd.read_csv(paths["train"], encoding="utf-8", dtype=str)
    assert train.columns.tolist() == list(COLUMNS)
    assert train["gmt_occur"].str.fullmatch(r"2017-\d\d-\d\d \d\d").all()
    assert "站内即时到账" in set(train["pay_scene"])
    parquet = generate(10_000, 5, tmp_path / "parquet")
    same = pd.read_parquet(parquet["train"])
    assert train["pay_scene"].tolist() == same["pay_scene"].tolist()
    assert train["gmt_occur"].tolist() == same["gmt_occur"].str[:13].tolist()


def test_bad_settings_name_the_config_key(tmp_path):
    with pytest.raises(AtecError, match="data.rows"):
        generate(10, 0, tmp_path / "x")
    with pytest.raises(AtecError, match="data.file_format"):
        generate(10_000, 0, tmp_path / "x", file_format="xlsx")
    with pytest.raises(AtecError, match="data.seed"):
        generate(10_000, -1, tmp_path / "x")
    with pytest.raises(AtecError, match="data.time_resolution"):
        generate(10_000, 0, tmp_path / "x", time_resolution="minute")
    assert list(tmp_path.iterdir()) == []


def other_users_on_device_last_day(events: pd.DataFrame) -> np.ndarray:
    """Distinct other users of the event's device in the 24 h strictly before it (0 for a missing device)."""
    rows = events[["device_sign", "user_id", "ts"]].reset_index(names="row")
    rows = rows[rows["device_sign"] != "-1"]
    pairs = rows.merge(rows, on="device_sign", suffixes=("", "_past"))
    in_last_day = (pairs["ts_past"] < pairs["ts"]) & (pairs["ts_past"] >= pairs["ts"] - DAY)
    recent = pairs[in_last_day & (pairs["user_id_past"] != pairs["user_id"])]
    counts = recent.groupby("row")["user_id_past"].nunique()
    return counts.reindex(range(len(events)), fill_value=0).to_numpy()


def test_fraud_concentrates_on_devices_shared_in_the_previous_day(timeline):
    events = timeline.sort_values("ts", kind="stable", ignore_index=True)
    shared = other_users_on_device_last_day(events) >= 1
    fraud = (events["is_fraud"] != 0).to_numpy()
    overall = fraud.mean()
    assert 0.001 < shared.mean() < 0.2
    assert fraud[shared].mean() > 5 * overall
    assert fraud[shared].sum() < 0.8 * fraud.sum()  # many frauds leave no trace on the device


def test_no_single_raw_value_separates_fraud(timeline):
    labelled = timeline[timeline["is_fraud"] != -1]
    fraud = labelled["is_fraud"] == 1
    for column in ("network", "operation_channel", "mobile_oper_platform", "pay_scene", "version", "is_one_people"):
        rates = fraud.groupby(labelled[column]).mean()
        assert rates.max() < 0.5, column
    big = labelled["amt"] >= 1000
    assert fraud[big].mean() < 0.5 and fraud[~big].sum() > 0.2 * fraud.sum()


def test_run_py_task_generate_end_to_end(tmp_path):
    out = tmp_path / "generated"
    result = subprocess.run(
        [sys.executable, "run.py", "task=generate", "data.rows=20000", f"data.dir={out}", "hydra.run.dir=" + str(tmp_path / "run")],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"}, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "rows/s" in result.stdout and "train.parquet" in result.stdout
    written = sorted(p.name for p in out.iterdir())
    assert written == [MANIFEST_NAME, "test_a.parquet", "test_b.parquet", "test_labels.parquet", "train.parquet"]
    assert pq.read_metadata(out / "train.parquet").num_rows == 10_000


def test_outdated_or_different_generations_are_not_current(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"dir": str(tmp_path / "gen"), "rows": 10_000, "seed": 3, "file_format": "parquet",
                            "time_resolution": "second"})
    assert not synthetic.is_current(cfg)
    synthetic.generate_from_config(cfg)
    assert synthetic.is_current(cfg)
    assert not synthetic.is_current(OmegaConf.merge(cfg, {"time_resolution": "hour"}))
    assert not synthetic.is_current(OmegaConf.merge(cfg, {"seed": 4}))
    manifest = tmp_path / "gen" / MANIFEST_NAME
    manifest.write_text(manifest.read_text().replace(f'"generator_version": {synthetic.GENERATOR_VERSION}', '"generator_version": 0'))
    assert not synthetic.is_current(cfg)
