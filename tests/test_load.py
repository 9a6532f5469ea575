"""Loading both ATEC formats: types, time order, labels, parts, missing cells, fingerprints, the summary task."""
from __future__ import annotations

import calendar
import csv
import math
import re
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from atec_automl.data.dataset import PARTS, Dataset
from atec_automl.data.formats import RawEventFormat
from atec_automl.data.load import event_table_from_records
from atec_automl.tasks._experiment import load_data
from atec_automl.tasks.check_data import summary

RAW_NUMERIC = {"amt", "is_one_people", "is_peer_pay"}
RAW_DROPPED = {"event_id", "gmt_occur", "is_fraud", "dt"}


def _load(compose_cfg, data: str, files: dict[str, Path], *overrides: str) -> Dataset:
    """Load files through the composed `data=<data>` config."""
    parts = [f"data.{part}={path}" for part, path in files.items()]
    return load_data(compose_cfg([f"data={data}", *parts, *overrides]).data)


def _records(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows as dicts of text, read independently of the loader."""
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def _resolution(text: str) -> int:
    """Seconds a written time spans: '2017-09-05 13' an hour, '2017-09-05 13:04:05' a second, '20170905' a day."""
    return {13: 3600, 19: 1, 8: 86_400}[len(text)]


def _seconds(text: str) -> int:
    """Seconds since 1970 of '2017-09-05 13', '2017-09-05 13:04:05' or '20170905'."""
    layout = {13: "%Y-%m-%d %H", 19: "%Y-%m-%d %H:%M:%S", 8: "%Y%m%d"}[len(text)]
    return calendar.timegm(datetime.strptime(text, layout).timetuple())


def _expected_timeline(files: dict[str, Path], time_column: str) -> list[tuple[str, dict]]:
    """(part, record) of every file row, stably sorted by time in part order then row order."""
    rows = [(part, record) for part in PARTS if part in files for record in _records(files[part])]
    return sorted(rows, key=lambda item: _seconds(item[1][time_column]))


def _is_missing(text: str | None, markers: tuple[str, ...]) -> bool:
    """Whether a cell's text means missing."""
    return text is None or text in markers


def test_raw_csv_is_typed_time_sorted_labelled_and_joined(compose_cfg, raw_files):
    dataset = _load(compose_cfg, "atec", raw_files)
    frame = dataset.frame
    expected = _expected_timeline(raw_files, "gmt_occur")

    assert isinstance(frame.index, pd.RangeIndex) and len(frame) == len(expected)
    assert list(frame.columns[:5]) == ["event_id", "ts", "label", "part", "ts_resolution"]
    assert pd.api.types.is_string_dtype(frame["event_id"])
    assert frame["ts"].dtype == np.int64 and frame["label"].dtype == np.float32
    assert list(frame["part"].cat.categories) == list(PARTS)
    assert not RAW_DROPPED & set(frame.columns[5:])
    assert dataset.id_column == "event_id" and set(dataset.numeric) == RAW_NUMERIC
    assert dataset.sources == raw_files

    assert frame["event_id"].tolist() == [record["event_id"] for _, record in expected]
    assert frame["part"].tolist() == [part for part, _ in expected]
    assert frame["ts"].tolist() == [_seconds(record["gmt_occur"]) for _, record in expected]
    assert frame["ts_resolution"].dtype == np.int32
    assert frame["ts_resolution"].tolist() == [_resolution(record["gmt_occur"]) for _, record in expected]
    assert {1, 3600} <= set(frame["ts_resolution"])
    for (part, record), label in zip(expected, frame["label"]):
        assert math.isnan(label) if part != "train" else label == float(record["is_fraud"])

    for column in ("user_id", "client_ip", "pay_scene", "amt", "is_one_people"):
        for (_, record), value in zip(expected, frame[column]):
            if _is_missing(record.get(column), ("", "-1")):
                assert pd.isna(value), (column, record)
            elif column in RAW_NUMERIC:
                assert value == float(record[column])
            else:
                assert value == record[column]


def test_raw_categories_are_strings_unioned_over_files_and_absent_columns_are_all_missing(compose_cfg, raw_files):
    frame = _load(compose_cfg, "atec", raw_files).frame
    scenes = {r["pay_scene"] for path in raw_files.values() for r in _records(path)} - {"", "-1"}
    assert set(frame["pay_scene"].cat.categories) == scenes
    assert "新场景" in scenes and "新场景" not in {r["pay_scene"] for r in _records(raw_files["train"])}
    for column in ("pay_scene", "user_id", "device_sign", "version"):
        assert isinstance(frame[column].dtype, pd.CategoricalDtype)
        assert pd.api.types.is_string_dtype(frame[column].cat.categories)
    assert frame["device_sign"].isna().all() and frame["is_peer_pay"].isna().all()
    assert frame["is_peer_pay"].dtype == np.float64


def test_test_files_are_optional(compose_cfg, raw_files):
    frame = _load(compose_cfg, "atec", {"train": raw_files["train"]}).frame
    assert set(frame["part"]) == {"train"} and len(frame) == len(_records(raw_files["train"]))
    assert list(frame["part"].cat.categories) == list(PARTS)


def _write_parquet_like(csv_path: Path, parquet_path: Path) -> Path:
    """The CSV's content as parquet with typed columns: numbers as numbers, pay_scene dictionary-encoded."""
    records = _records(csv_path)
    columns = {}
    for name in records[0]:
        cells = [r[name] for r in records]
        if name in RAW_NUMERIC | {"is_fraud"}:
            columns[name] = pa.array([float(c) if c else None for c in cells])
        elif name == "pay_scene":
            columns[name] = pa.array([c or None for c in cells]).dictionary_encode()
        else:
            columns[name] = pa.array(cells)
    pq.write_table(pa.table(columns), parquet_path)
    return parquet_path


def test_gzip_csv_and_parquet_load_to_the_same_frame_as_csv(compose_cfg, raw_files, write_csv, tmp_path):
    plain = _load(compose_cfg, "atec", raw_files).frame
    gzipped, parquet = {}, {}
    for part, path in raw_files.items():
        records = _records(path)
        rows = [list(r.values()) for r in records]
        gzipped[part] = write_csv(tmp_path / f"{part}.csv.gz", list(records[0]), rows)
        parquet[part] = _write_parquet_like(path, tmp_path / f"{part}.parquet")
    pd.testing.assert_frame_equal(_load(compose_cfg, "atec", gzipped).frame, plain)
    pd.testing.assert_frame_equal(_load(compose_cfg, "atec", parquet).frame, plain)


def test_fingerprint_follows_file_content_and_format_config(compose_cfg, raw_files, tmp_path):
    first = _load(compose_cfg, "atec", raw_files).fingerprint
    assert _load(compose_cfg, "atec", raw_files).fingerprint == first

    copies = {}
    for part, path in raw_files.items():
        (tmp_path / "copy").mkdir(exist_ok=True)
        copies[part] = Path(shutil.copy(path, tmp_path / "copy" / f"renamed_{part}.csv"))
    assert _load(compose_cfg, "atec", copies).fingerprint == first

    content = copies["test_b"].read_bytes()
    copies["test_b"].write_bytes(content.replace(b"5.25", b"5.26", 1))
    assert _load(compose_cfg, "atec", copies).fingerprint != first

    relaxed = _load(compose_cfg, "atec", raw_files, "data.format.required=[event_id,gmt_occur]")
    assert relaxed.fingerprint != first


def test_prelim_format_unions_feature_columns_and_keeps_minus_one(compose_cfg, prelim_files):
    dataset = _load(compose_cfg, "atec_prelim", prelim_files)
    frame = dataset.frame
    expected = _expected_timeline(prelim_files, "date")

    assert list(frame.columns) == ["event_id", "ts", "label", "part", "ts_resolution", "f1", "f2", "f5", "f7"]
    assert dataset.id_column == "id" and dataset.numeric == ["f1", "f2", "f5", "f7"] and dataset.categorical == []
    assert all(frame[f].dtype == np.float32 for f in dataset.numeric)
    assert frame["event_id"].tolist() == [record["id"] for _, record in expected]
    assert frame["ts"].tolist() == [_seconds(record["date"]) for _, record in expected]
    assert (frame["ts_resolution"] == 86_400).all()
    for (part, record), (_, row) in zip(expected, frame.iterrows()):
        assert math.isnan(row["label"]) if part != "train" else row["label"] == float(record["label"])
        for column in dataset.numeric:
            cell = record.get(column)
            assert math.isnan(row[column]) if not cell else row[column] == np.float32(cell), (column, record)
    assert (frame["f5"] == -1).any()


def _summary_value(stdout: str, pattern: str) -> str:
    """The first group of a pattern in the printed summary."""
    match = re.search(pattern, stdout, flags=re.MULTILINE)
    assert match, f"{pattern!r} not in:\n{stdout}"
    return match.group(1)


def test_check_data_prints_the_summary_of_a_one_file_prelim_dataset(compose_cfg, prelim_files, run_cli):
    train = prelim_files["train"]
    result = run_cli(["task=check-data", "data=atec_prelim", f"data.train={train}"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    fingerprint = _load(compose_cfg, "atec_prelim", {"train": train}).fingerprint
    assert _summary_value(out, r"^fingerprint: (\w+)$") == fingerprint
    assert _summary_value(out, r"^train +(\d+) ") == str(len(_records(train)))
    assert _summary_value(out, r"^train +\d+ +(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)") == "2017-09-05 00:00:00"
    assert _summary_value(out, r"^train +\d+ +\S+ \S+ +(\S+ \S+)") == "2017-09-06 00:00:00"
    assert _summary_value(out, r"train labels: 1 \(black\) (\d+)") == "1"
    assert _summary_value(out, r"-1 \(grey\) (\d+)") == "1"
    assert _summary_value(out, r"^f1 +(\S+)") == "33.3%"
    assert float(_summary_value(out, r"^load seconds: (\S+)$")) >= 0
    assert "test_a" not in out


def test_check_data_prints_rows_ranges_and_top_missing_columns_of_a_raw_dataset(raw_files, run_cli):
    args = ["task=check-data", "data=atec", "check_data.top=2", *(f"data.{p}={f}" for p, f in raw_files.items())]
    result = run_cli(args)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for part, path in raw_files.items():
        times = sorted(_seconds(r["gmt_occur"]) for r in _records(path))
        first, last = (str(pd.Timestamp(t, unit="s")) for t in (times[0], times[-1]))
        assert re.search(rf"^{part} +{len(times)} +{first} +{last} +{re.escape(str(path))}$", out, re.MULTILINE), out
    labels = [r["is_fraud"] for r in _records(raw_files["train"])]
    counts = {v: _summary_value(out, rf"{v} \(\w+\) (\d+)") for v in ("1", "0", "-1")}
    assert counts == {v: str(labels.count(v)) for v in ("1", "0", "-1")}
    table = out.split("missing share per column")[1].split("\n\n")[0].splitlines()
    assert "top 2 of" in table[0] and table[1].split() == ["column", "all", "train", "test_a", "test_b"]
    shares = [float(line.split()[1].rstrip("%")) for line in table[2:] if not line.startswith("missing in every row")]
    assert len(shares) == 2 and shares == sorted(shares, reverse=True) and shares[0] > 0


def test_summary_lists_every_column_on_request(compose_cfg, raw_files):
    dataset = _load(compose_cfg, "atec", raw_files)
    every = summary(dataset, 0.5, top=None)
    partly = [c for c in dataset.frame.columns[5:] if 0 <= dataset.frame[c].isna().mean() < 1]
    listed = re.findall(r"^(\w+) +\d", every.split("missing share per column")[1], flags=re.MULTILINE)
    assert sorted(listed) == sorted(partly)
    absent = [c for c in dataset.frame.columns[5:] if dataset.frame[c].isna().all()]
    assert f"missing in every row ({len(absent)}): {', '.join(absent)}" in every


def test_missing_synthetic_files_are_generated_once(compose_cfg, tmp_path):
    overrides = ["data=synthetic", "data.rows=3000", f"data.dir={tmp_path / 'synthetic'}"]
    first = load_data(compose_cfg(overrides).data)
    files = sorted((tmp_path / "synthetic").iterdir())
    stamps = [f.stat().st_mtime_ns for f in files]
    again = load_data(compose_cfg(overrides).data)
    assert [f.stat().st_mtime_ns for f in sorted((tmp_path / "synthetic").iterdir())] == stamps
    assert again.fingerprint == first.fingerprint
    assert set(first.frame["part"]) == set(PARTS) and len(first.frame) > 0
    assert first.frame["ts"].is_monotonic_increasing
    train_labels = first.frame.loc[first.frame["part"] == "train", "label"]
    assert set(train_labels.unique()) <= {1.0, 0.0, -1.0} and first.frame.loc[first.frame["part"] != "train", "label"].isna().all()


def test_records_missing_a_field_read_as_the_same_records_with_it_null() -> None:
    """A request's records are read column by column in one pass when each has every field, field by field when
    one lacks some: an absent field is a missing value either way, and each record reads as it does alone."""
    file_format = RawEventFormat()
    full = [{"event_id": f"e{i}", "user_id": f"u{i % 3}", "gmt_occur": f"2017-09-05 13:0{i}:00", "client_ip": None,
             "amt": [None, "10.5", 7][i % 3], "pay_scene": "站内即时到账"} for i in range(6)]
    gappy = [{k: v for k, v in r.items() if v is not None or i % 2} for i, r in enumerate(full)]
    assert any("client_ip" not in r for r in gappy) and all("client_ip" in r for r in full)
    whole = event_table_from_records(full, file_format, "POST /score")
    assert event_table_from_records(gappy, file_format, "POST /score").equals(whole)
    alone = [event_table_from_records([r], file_format, "POST /score").to_pylist()[0] for r in full]
    assert whole.to_pylist() == alone
