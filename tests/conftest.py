"""Shared fixtures: config composition, the command line, and small ATEC-format files on disk."""
from __future__ import annotations

import csv
import glob
import gzip
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"

RAW_HEADER = ["event_id", "user_id", "gmt_occur", "client_ip", "pay_scene", "amt", "is_one_people", "is_fraud", "dt"]
# Train, to the hour and to the second mixed, out of time order, with a tie (e2/e3), Chinese values, -1 and empty cells.
RAW_TRAIN = [
    ["e1", "u1", "2017-09-05 13", "ip1", "站内即时到账", "10.5", "1", "0", "2017-09-05"],
    ["e2", "u2", "2017-09-05 12:04:05", "-1", "淘宝实物担保", "-1", "0", "1", "2017-09-05"],
    ["e3", "u1", "2017-09-05 12:04:05", "ip2", "", "3", "-1", "-1", "2017-09-05"],
    ["e4", "u3", "2017-09-06 01", "ip1", "站内即时到账", "", "1", "0", "2017-09-06"],
]
RAW_TEST_HEADER = RAW_HEADER[:-2] + ["dt"]
RAW_TEST_A = [
    ["a1", "u1", "2018-01-05 13", "ip1", "新场景", "1", "1", "2018-01-05"],
    ["a2", "u9", "2018-01-05 10:00:00", "-1", "站内即时到账", "2", "0", "2018-01-05"],
]
RAW_TEST_B = [
    ["b1", "u2", "2018-02-06 00:00:00", "ip3", "淘宝实物担保", "5.25", "1", "2018-02-06"],
]

PRELIM_TRAIN_HEADER = ["id", "label", "date", "f1", "f2", "f5"]
PRELIM_TRAIN = [
    ["p1", "0", "20170906", "1.5", "", "-1"],
    ["p2", "1", "20170905", "", "2", "3"],
    ["p3", "-1", "20170905", "0.25", "7", ""],
]
PRELIM_TEST_HEADER = ["id", "date", "f1", "f2", "f7"]
PRELIM_TEST = [
    ["q1", "20180105", "4", "", "8"],
    ["q2", "20180105", "", "5", "9"],
]


@pytest.fixture(autouse=True)
def wandb_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test talks to wandb."""
    monkeypatch.setenv("WANDB_MODE", "disabled")


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose `conf/config.yaml` with overrides, as `run.py` would: the one way tests build a config
    (test_config_check.py alone composes inside Hydra's context, which the check it tests reads)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def compose_cfg() -> Callable[[Sequence[str]], DictConfig]:
    """`compose_config` as a fixture."""
    return compose_config


def _run_cli(args: Sequence[str], run_dir: Path) -> subprocess.CompletedProcess:
    """Run `python run.py <args>` from the repo with its Hydra run dir at `run_dir`."""
    command = [sys.executable, "run.py", *args, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def cli() -> Callable[[Sequence[str], Path], subprocess.CompletedProcess]:
    """`cli(args, run_dir)`: `python run.py <args>` as a subprocess, for fixtures wider than one test."""
    return _run_cli


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[[Sequence[str]], subprocess.CompletedProcess]:
    """`run_cli(args)`: `python run.py <args>` as a subprocess, its Hydra run dir under tmp_path."""
    return lambda args: _run_cli(args, tmp_path / "run")


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]], delimiter: str = ",", encoding: str = "utf-8") -> Path:
    """Write a CSV file (gzip-compressed when the name ends with .gz)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding=encoding, newline="") as stream:
        writer = csv.writer(stream, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def write_csv() -> Callable[..., Path]:
    """`write_csv(path, header, rows, delimiter=",", encoding="utf-8")`; gzip when the name ends with .gz."""
    return _write_csv


@pytest.fixture
def raw_files(tmp_path: Path) -> dict[str, Path]:
    """Semi-final raw train, test_a and test_b CSV files."""
    return {
        "train": _write_csv(tmp_path / "train.csv", RAW_HEADER, RAW_TRAIN),
        "test_a": _write_csv(tmp_path / "test_a.csv", RAW_TEST_HEADER, RAW_TEST_A),
        "test_b": _write_csv(tmp_path / "test_b.csv", RAW_TEST_HEADER, RAW_TEST_B),
    }


@pytest.fixture
def prelim_files(tmp_path: Path) -> dict[str, Path]:
    """Preliminary-round train and test_a CSV files (the test file has other f-columns)."""
    return {
        "train": _write_csv(tmp_path / "atec_anti_fraud_train.csv", PRELIM_TRAIN_HEADER, PRELIM_TRAIN),
        "test_a": _write_csv(tmp_path / "atec_anti_fraud_test_a.csv", PRELIM_TEST_HEADER, PRELIM_TEST),
    }


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries' folder, if installed (Debian layout)."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    return Path(folders[-1]) if folders else None


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server (run as the `postgres` user when we are root) and its URL without a database.

    Its folder is made directly under the system temp dir: pytest's own temp root is private to
    the user running the tests, which the `postgres` user could not enter."""
    binaries = postgres_bin()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing: run scripts/install-system-packages.sh")
        pytest.skip("PostgreSQL server binaries are not installed")
    home = Path(tempfile.mkdtemp(prefix="atec-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(home, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = home / "data", free_port()
    subprocess.run([*as_user, binaries / "initdb", "-D", data, "-U", "atec", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, binaries / "pg_ctl", "-D", data, "-l", home / "server.log", "-w", "start",
                    "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://atec@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


_database_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The URL of a new empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"db{next(_database_numbers)}"
    with psycopg.connect(f"{postgres_server.replace('postgresql+psycopg', 'postgresql')}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"
