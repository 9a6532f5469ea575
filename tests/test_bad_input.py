"""Malformed input: `python run.py task=check-data` stops with one `error: ...` line, exit status 2, no traceback."""
from __future__ import annotations

import os
import subprocess
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

HEADER = ["event_id", "user_id", "gmt_occur", "amt", "is_fraud"]
TRAIN = [
    ["e1", "u1", "2017-09-05 10", "1.5", "0"],
    ["e2", "u2", "2017-09-05 11:00:00", "-1", "1"],
    ["e3", "u1", "2017-09-06 12", "3", "-1"],
]
TEST_HEADER = HEADER[:-1]
TEST_A = [["a1", "u1", "2018-01-05 10", "1"], ["a2", "u3", "2018-01-06 10:30:00", "2"]]
TEST_B = [["b1", "u2", "2018-02-06 10", "4"]]
PRELIM_HEADER = ["id", "label", "date", "f1", "f2"]
PRELIM_TRAIN = [["p1", "0", "20170905", "1", ""], ["p2", "1", "20170906", "", "2"]]


# Each case builder writes files with the defect its name says and the error line expected for them.


@dataclass
class Case:
    """Files to load and what the one-line error must say."""

    files: dict[str, Path]
    file: Path
    problem: str
    column: str | None = None
    row: int | None = None
    data: str = "atec"


def _changed(rows: list[list[str]], row: int, column: str, value: str, header: list[str] = HEADER) -> list[list[str]]:
    """A copy of rows with one cell (1-based data row, named column) replaced."""
    copy = [list(r) for r in rows]
    copy[row - 1][header.index(column)] = value
    return copy


def _raw(tmp: Path, write_csv: Callable, train: list[list[str]] = TRAIN, test_a=TEST_A, test_b=TEST_B, train_name="train.csv"):
    """Train, test_a and test_b files in tmp."""
    return {
        "train": write_csv(tmp / train_name, HEADER, train),
        "test_a": write_csv(tmp / "test_a.csv", TEST_HEADER, test_a),
        "test_b": write_csv(tmp / "test_b.csv", TEST_HEADER, test_b),
    }


def missing_required_column(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", [c for c in HEADER if c != "user_id"], [r[:1] + r[2:] for r in TRAIN])
    return Case({"train": train}, train, "missing required column", column="user_id")


def unparseable_time(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, train=_changed(TRAIN, 2, "gmt_occur", "2017-09-05 1x"))
    return Case(files, files["train"], "unparseable time, expected 'YYYY-MM-DD HH' or 'YYYY-MM-DD HH:MM:SS': '2017-09-05 1x'", "gmt_occur", 2)


def label_outside_the_three_values(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, train=_changed(TRAIN, 3, "is_fraud", "2"))
    return Case(files, files["train"], "label '2' outside {1, 0, -1}", "is_fraud", 3)


def non_numeric_label(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, train=_changed(TRAIN, 1, "is_fraud", "black"))
    return Case(files, files["train"], "label outside {1, 0, -1}: 'black'", "is_fraud", 1)


def duplicate_id_within_a_file(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, train=_changed(TRAIN, 3, "event_id", "e1"))
    return Case(files, files["train"], f"duplicate id 'e1' (first seen in train {files['train']} row 1)", "event_id", 3)


def duplicate_id_across_files(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, test_a=_changed(TEST_A, 2, "event_id", "e2", TEST_HEADER))
    return Case(files, files["test_a"], f"duplicate id 'e2' (first seen in train {files['train']} row 2)", "event_id", 2)


def zero_byte_file(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv)
    files["test_b"].write_bytes(b"")
    return Case(files, files["test_b"], "empty file (0 bytes)")


def header_only_file(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, test_a=[])
    return Case(files, files["test_a"], "no data rows (only a header)")


def window_a_before_train_ends(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, test_a=_changed(TEST_A, 2, "gmt_occur", "2017-09-06 11", TEST_HEADER))
    problem = "test_a starts before train ends: 2017-09-06 11:00:00 is earlier than train's last time 2017-09-06 12:00:00"
    return Case(files, files["test_a"], problem, "gmt_occur", 2)


def window_b_before_test_a_ends(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, test_b=_changed(TEST_B, 1, "gmt_occur", "2018-01-06 10:29:59", TEST_HEADER))
    problem = "test_b starts before test_a ends: 2018-01-06 10:29:59 is earlier than test_a's last time 2018-01-06 10:30:00"
    return Case(files, files["test_b"], problem, "gmt_occur", 1)


def gbk_encoded_file(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", HEADER, _changed(TRAIN, 2, "user_id", "用户二"), encoding="gbk")
    return Case({"train": train}, train, "not UTF-8 (it looks GBK/GB18030-encoded); convert the file to UTF-8", row=2)


def latin1_id(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", HEADER, _changed(TRAIN, 3, "event_id", "é3"), encoding="latin-1")
    return Case({"train": train}, train, "not UTF-8", row=3)


def gbk_amount(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", HEADER, _changed(TRAIN, 3, "amt", "１２"), encoding="gbk")
    return Case({"train": train}, train, "not UTF-8 (it looks GBK/GB18030-encoded)", row=3)


def semicolon_separated(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", HEADER, TRAIN, delimiter=";")
    return Case({"train": train}, train, "the header is a single column; the file seems semicolon (;)-separated, expected comma-separated CSV")


def tab_separated(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", HEADER, TRAIN, delimiter="\t")
    return Case({"train": train}, train, "the header is a single column; the file seems tab-separated, expected comma-separated CSV")


def missing_file(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv)
    files["test_a"] = tmp / "no_such_test_a.csv"
    return Case(files, files["test_a"], "file not found")


def non_numeric_amount_in_gzip_csv(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, train=_changed(TRAIN, 3, "amt", "12,5元"), train_name="train.csv.gz")
    return Case(files, files["train"], "non-numeric value: '12,5元'", "amt", 3)


def row_with_an_extra_field(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, train=[TRAIN[0], TRAIN[1] + ["x"], TRAIN[2]])
    return Case(files, files["train"], "6 fields where the header has 5", row=2)


def unknown_file_type(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.txt", HEADER, TRAIN)
    return Case({"train": train}, train, "unknown file type; expected one of .csv, .csv.gz, .parquet")


def prelim_date_not_yyyymmdd(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", PRELIM_HEADER, _changed(PRELIM_TRAIN, 2, "date", "2017-09-06", PRELIM_HEADER))
    return Case({"train": train}, train, "unparseable date, expected an integer YYYYMMDD: '2017-09-06'", "date", 2, "atec_prelim")


def prelim_non_numeric_feature(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", PRELIM_HEADER, _changed(PRELIM_TRAIN, 1, "f2", "n/a", PRELIM_HEADER))
    return Case({"train": train}, train, "non-numeric value: 'n/a'", "f2", 1, "atec_prelim")


def impossible_day_to_the_second(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, train=_changed(TRAIN, 2, "gmt_occur", "2017-02-30 10:00:00"))
    return Case(files, files["train"], "impossible time (no such day or second): '2017-02-30 10:00:00'", "gmt_occur", 2)


def impossible_day_to_the_hour(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, test_a=_changed(TEST_A, 1, "gmt_occur", "2018-02-29 10", TEST_HEADER))
    return Case(files, files["test_a"], "impossible time (no such day or second): '2018-02-29 10'", "gmt_occur", 1)


def second_sixty(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, train=_changed(TRAIN, 2, "gmt_occur", "2017-09-05 11:00:60"))
    return Case(files, files["train"], "impossible time (no such day or second): '2017-09-05 11:00:60'", "gmt_occur", 2)


def prelim_impossible_date(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", PRELIM_HEADER, _changed(PRELIM_TRAIN, 2, "date", "20170931", PRELIM_HEADER))
    return Case({"train": train}, train, "impossible date (no such day or second): '20170931'", "date", 2, "atec_prelim")


def duplicate_header_name(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", HEADER + ["amt"], [row + ["7"] for row in TRAIN])
    return Case({"train": train}, train, "the header names this column twice (fields 4 and 6)", "amt")


def infinite_amount(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, train=_changed(TRAIN, 3, "amt", "inf"))
    return Case(files, files["train"], "infinite or beyond the float32 range (±3.4e38): inf", "amt", 3)


def nan_amount(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, test_b=_changed(TEST_B, 1, "amt", "NaN", TEST_HEADER))
    return Case(files, files["test_b"], "not a number: nan", "amt", 1)


def amount_beyond_float32(tmp: Path, write_csv: Callable) -> Case:
    files = _raw(tmp, write_csv, train=_changed(TRAIN, 1, "amt", "1e39"))
    return Case(files, files["train"], "infinite or beyond the float32 range (±3.4e38): 1e+39", "amt", 1)


def prelim_feature_beyond_float32(tmp: Path, write_csv: Callable) -> Case:
    train = write_csv(tmp / "train.csv", PRELIM_HEADER, _changed(PRELIM_TRAIN, 2, "f1", "-4e38", PRELIM_HEADER))
    return Case({"train": train}, train, "infinite or beyond the float32 range (±3.4e38): -inf", "f1", 2, "atec_prelim")


def infinite_amount_in_parquet(tmp: Path, write_csv: Callable) -> Case:
    train = tmp / "train.parquet"
    columns = {name: [row[i] for row in TRAIN] for i, name in enumerate(HEADER)}
    columns["amt"] = [1.5, float("-inf"), 3.0]
    pq.write_table(pa.table(columns), train)
    return Case({"train": train}, train, "infinite or beyond the float32 range (±3.4e38): -inf", "amt", 2)


def truncated_gzip_csv(tmp: Path, write_csv: Callable) -> Case:
    rows = [[f"e{i}", f"u{i % 7}", "2017-09-05 10", str(i), "0"] for i in range(20_000)]
    train = write_csv(tmp / "train.csv.gz", HEADER, rows)
    kept = train.read_bytes()[: train.stat().st_size // 2]
    train.write_bytes(kept)
    lines_kept = zlib.decompressobj(wbits=31).decompress(kept).count(b"\n")
    problem = "the compressed file is cut short or corrupt (Truncated compressed stream); rows from here on are lost"
    return Case({"train": train}, train, problem, row=lines_kept)


CASES = [
    missing_required_column, unparseable_time, label_outside_the_three_values, non_numeric_label,
    duplicate_id_within_a_file, duplicate_id_across_files, zero_byte_file, header_only_file,
    window_a_before_train_ends, window_b_before_test_a_ends, gbk_encoded_file, latin1_id, gbk_amount,
    semicolon_separated, tab_separated, missing_file, non_numeric_amount_in_gzip_csv,
    row_with_an_extra_field, unknown_file_type, prelim_date_not_yyyymmdd, prelim_non_numeric_feature,
    impossible_day_to_the_second, impossible_day_to_the_hour, second_sixty, prelim_impossible_date,
    duplicate_header_name, infinite_amount, nan_amount, amount_beyond_float32, prelim_feature_beyond_float32,
    infinite_amount_in_parquet, truncated_gzip_csv,
]


def _expected_message(case: Case) -> str:
    """The exact line the command must print."""
    where = [f"file {case.file}"]
    if case.column is not None:
        where.append(f"column {case.column!r}")
    if case.row is not None:
        where.append(f"row {case.row}")
    return f"error: {', '.join(where)}: {case.problem}"


def _assert_one_line_error(result, expected: str) -> None:
    """Exit status 2, a single stderr line starting with `expected`, no traceback anywhere."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected), f"{lines[0]!r} does not start with {expected!r}"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, write_csv, cli) -> dict[str, tuple[Case, subprocess.CompletedProcess]]:
    """Every case's files and `task=check-data` result; the commands run side by side, one per CPU."""

    def check(build: Callable) -> tuple[str, tuple[Case, subprocess.CompletedProcess]]:
        tmp = tmp_path_factory.mktemp(build.__name__)
        case = build(tmp, write_csv)
        args = ["task=check-data", f"data={case.data}", *(f"data.{part}={path}" for part, path in case.files.items())]
        return build.__name__, (case, cli(args, tmp / "run"))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(pool.map(check, CASES))


@pytest.mark.parametrize("name", [build.__name__ for build in CASES])
def test_bad_input_stops_with_one_line_naming_file_column_and_row(name, outcomes):
    case, result = outcomes[name]
    _assert_one_line_error(result, _expected_message(case))


def test_unset_train_file_is_a_one_line_error(run_cli):
    _assert_one_line_error(run_cli(["task=check-data", "data=atec"]), "error: data.train is not set")


def test_debug_shows_the_traceback(tmp_path, write_csv, run_cli):
    case = unparseable_time(tmp_path, write_csv)
    args = ["task=check-data", "data=atec", "debug=true", *(f"data.{p}={f}" for p, f in case.files.items())]
    result = run_cli(args)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "DataError" in result.stderr
