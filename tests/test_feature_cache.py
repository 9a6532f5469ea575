"""The feature cache on disk: raw arrays that round-trip exactly, damage detected and rebuilt,
atomic writes, and staging directories of killed runs removed on a later run."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_features_helpers import random_prelim_dataset, random_raw_dataset

from atec_automl.data.dataset import Dataset
from atec_automl.data.synthetic import generate
from atec_automl.features.build import build_features, cache_location, load_or_build
from atec_automl.features.cache import MANIFEST_FILE, load_cached, save_cached
from atec_automl.features.featureset import FeatureSet
from atec_automl.features.spec import EntitySpec, PrelimFeatures, RawEventFeatures, SequenceSpec
from atec_automl.pipeline import Prepared
from atec_automl.staging import QUIET_SECONDS, process_start_time, remove_stale_staging, staging_dir
from atec_automl.submit import Submission, SubmitSettings, write_submission

REPO = Path(__file__).resolve().parents[1]


def small_spec() -> RawEventFeatures:
    """A few raw features with sequences: float32 numeric columns, int32 codes, steps."""
    return RawEventFeatures(
        entities={"user": EntitySpec(columns=["user_id"], windows=["1h", "all"], stats=["count", "amt_sum"])},
        categorical=["network", "pay_scene"],
        sequence=SequenceSpec(length=3, categorical=["network"]),
    )


def mixed_features(rows: int = 50) -> FeatureSet:
    """A table with interleaved dtypes, NaN, int32 codes, pandas categoricals (text with missing
    values, ordered integers, unused categories), and sequences."""
    rng = np.random.default_rng(0)
    numeric = rng.normal(size=rows).astype(np.float32)
    numeric[::4] = np.nan
    table = pd.DataFrame({
        "f32": numeric,
        "f32_b": np.full(rows, np.inf, dtype=np.float32),
        "codes": rng.integers(-1, 5, rows).astype(np.int32),
        "text": pd.Categorical(rng.choice(["站内", "b", None], rows), categories=["站内", "b", "unused"]),
        "f64": np.where(rng.random(rows) < 0.3, np.nan, rng.normal(size=rows)),
        "ordered": pd.Categorical(rng.integers(0, 3, rows), categories=[2, 1, 0], ordered=True),
        "flag": rng.random(rows) < 0.5,
        "count": rng.integers(0, 1 << 40, rows),
        "f32_c": rng.normal(size=rows).astype(np.float32),
        "when": np.datetime64("2017-09-05T00:00:00", "s") + rng.integers(0, 86_400, rows),
    })
    seq_index = rng.integers(-1, rows, (rows, 3)).astype(np.int32)
    steps = rng.normal(size=(rows, 2)).astype(np.float32)
    steps[0] = np.nan
    return FeatureSet(table=table, categorical=["codes"], seq_index=seq_index, steps=steps, step_names=["s1", "s2"], fingerprint="data:spec")


def assert_same_features(loaded: FeatureSet, expected: FeatureSet) -> None:
    """Every column with its dtype and values (NaN in place), the sequences and the other fields."""
    pd.testing.assert_frame_equal(loaded.table, expected.table, check_exact=True)
    assert loaded.table.dtypes.to_dict() == expected.table.dtypes.to_dict()
    for field in ("seq_index", "steps"):
        got, want = getattr(loaded, field), getattr(expected, field)
        assert (got is None) == (want is None)
        if want is not None:
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    assert (loaded.categorical, loaded.step_names, loaded.fingerprint) == (expected.categorical, expected.step_names, expected.fingerprint)


def mapped_file(array: np.ndarray) -> str | None:
    """The file an array is memory-mapped from, or None when it is in memory."""
    while array is not None and not isinstance(array, np.memmap):
        array = array.base if isinstance(array.base, np.ndarray) else None
    return None if array is None else str(array.filename)


def test_every_column_dtype_category_and_nan_round_trips(tmp_path: Path) -> None:
    features = mixed_features()
    save_cached(features, tmp_path / "key", {"build_seconds": 1.5})
    loaded = load_cached(tmp_path / "key")
    assert_same_features(loaded, features)
    assert loaded.table["text"].cat.categories.tolist() == ["站内", "b", "unused"]
    assert loaded.table["ordered"].cat.ordered
    assert sorted(p.name for p in (tmp_path / "key").iterdir()) == [
        MANIFEST_FILE, "seq_index.npy", "steps.npy", *(f"table.{i}.npy" for i in range(9))]
    manifest = json.loads((tmp_path / "key" / MANIFEST_FILE).read_text())
    assert manifest["build_seconds"] == 1.5
    assert manifest["files"]["table.0.npy"]["shape"] == [2, 50] and manifest["files"]["table.0.npy"]["dtype"] == "<f4"


def test_arrays_are_memory_mapped_from_the_cache_not_copied(tmp_path: Path) -> None:
    features = mixed_features()
    save_cached(features, tmp_path / "key", {})
    loaded = load_cached(tmp_path / "key")
    assert mapped_file(loaded.table["f32"].to_numpy()) == str(tmp_path / "key" / "table.0.npy")
    assert mapped_file(loaded.seq_index) == str(tmp_path / "key" / "seq_index.npy")
    loaded.steps[:] = 0  # writable, private: the cache keeps its values
    assert_same_features(load_cached(tmp_path / "key"), features)


@pytest.mark.parametrize("make", [
    lambda: FeatureSet(table=pd.DataFrame(index=pd.RangeIndex(4))),
    lambda: FeatureSet(table=pd.DataFrame({"a": np.zeros(0, np.float32)}), seq_index=np.zeros((0, 2), np.int32),
                       steps=np.zeros((0, 0), np.float32)),
], ids=["no columns", "no rows"])
def test_empty_tables_round_trip(tmp_path: Path, make) -> None:
    save_cached(make(), tmp_path / "key", {})
    assert_same_features(load_cached(tmp_path / "key"), make())


def test_an_intact_cache_written_meanwhile_is_kept_and_a_damaged_one_replaced(tmp_path: Path) -> None:
    save_cached(mixed_features(), tmp_path / "key", {"writer": "first"})
    save_cached(mixed_features(), tmp_path / "key", {"writer": "second"})
    assert json.loads((tmp_path / "key" / MANIFEST_FILE).read_text())["writer"] == "first"
    (tmp_path / "key" / "steps.npy").write_bytes(b"")
    save_cached(mixed_features(), tmp_path / "key", {"writer": "third"})
    assert json.loads((tmp_path / "key" / MANIFEST_FILE).read_text())["writer"] == "third"
    assert_same_features(load_cached(tmp_path / "key"), mixed_features())
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_columns_of_unstorable_dtypes_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'name' has dtype"):
        save_cached(FeatureSet(table=pd.DataFrame({"a": [1.0], "name": ["x"]})), tmp_path / "key", {})
    assert list(tmp_path.iterdir()) == []


def test_built_features_round_trip_through_the_cache(tmp_path: Path) -> None:
    for dataset, spec in [(random_raw_dataset(300, seed=2), small_spec()), (random_prelim_dataset(200, seed=1), PrelimFeatures())]:
        built, reused = load_or_build(dataset, spec, cache_dir=tmp_path, progress=False)
        loaded, reused_now = load_or_build(dataset, spec, cache_dir=tmp_path, progress=False)
        assert (reused, reused_now) == (False, True)
        assert_same_features(loaded, built)


def truncate_npy(directory: Path) -> str:
    (directory / "table.0.npy").write_bytes((directory / "table.0.npy").read_bytes()[:-100])
    return "table.0.npy has"


def flip_a_data_byte(directory: Path) -> str:
    data = bytearray((directory / "steps.npy").read_bytes())
    data[-3] ^= 0xFF
    (directory / "steps.npy").write_bytes(bytes(data))
    return "steps.npy does not match its checksum"


def remove_a_file(directory: Path) -> str:
    (directory / "seq_index.npy").unlink()
    return "seq_index.npy is missing"


def truncate_manifest(directory: Path) -> str:
    (directory / MANIFEST_FILE).write_text((directory / MANIFEST_FILE).read_text()[:200])
    return f"{MANIFEST_FILE} is unreadable"


def edit_manifest(directory: Path) -> str:
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    manifest["table"][0]["columns"][0] = "renamed"
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))
    return f"{MANIFEST_FILE} does not match its checksum"


def old_format(directory: Path) -> str:
    for path in directory.iterdir():
        path.unlink()
    (directory / "meta.json").write_text("{}")
    (directory / "table.parquet").write_bytes(b"PAR1")
    return f"no {MANIFEST_FILE}, a cache of an older version"


@pytest.mark.parametrize("damage", [truncate_npy, flip_a_data_byte, remove_a_file, truncate_manifest, edit_manifest, old_format])
def test_a_damaged_cache_is_reported_in_one_warning_line_and_rebuilt(tmp_path: Path, caplog, damage) -> None:
    dataset = random_raw_dataset(200, seed=3)
    built = build_features(dataset, small_spec(), cache_dir=tmp_path, progress=False)
    location = cache_location(dataset, small_spec(), tmp_path)
    problem = damage(location)
    with caplog.at_level(logging.INFO):
        rebuilt, reused = load_or_build(dataset, small_spec(), cache_dir=tmp_path, progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert f"damaged feature cache {location}: {problem}" in warnings[0]
    assert not reused
    assert_same_features(rebuilt, built)
    caplog.clear()
    again, reused = load_or_build(dataset, small_spec(), cache_dir=tmp_path, progress=False)
    assert reused and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert_same_features(again, built)
    assert [p.name for p in tmp_path.iterdir()] == [location.name]


def test_the_features_task_warns_once_and_rebuilds_a_damaged_cache(run_cli, tmp_path: Path) -> None:
    args = ["task=features", "data.rows=3000", f"data.dir={tmp_path / 'synthetic'}", f"features.cache_dir={tmp_path / 'cache'}"]
    first = run_cli(args)
    assert first.returncode == 0, first.stderr
    location = Path(next(line for line in first.stdout.splitlines() if "cached at" in line).split("cached at ")[1])
    (location / "table.0.npy").write_bytes(b"\x93NUMPY")
    second = run_cli(args)
    assert second.returncode == 0, second.stderr
    output = (second.stdout + second.stderr).splitlines()
    warnings = [line for line in output if "WARNING" in line]
    assert len(warnings) == 1 and f"damaged feature cache {location}: table.0.npy has 6 bytes" in warnings[0], output
    assert "Traceback" not in second.stderr and f"cached at {location}" in second.stdout
    third = run_cli(args)
    assert f"reused cache {location}" in third.stdout and "WARNING" not in third.stdout + third.stderr


KILLED_BUILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[2])
    from test_features_helpers import random_raw_dataset
    from test_feature_cache import small_spec
    from atec_automl.features import cache
    from atec_automl.features.build import build_features

    write = cache._write_npy
    def write_then_die(path, *args):
        entry = write(path, *args)
        if path.name == "table.1.npy":
            os._exit(9)  # killed between two files
        return entry
    cache._write_npy = write_then_die
    build_features(random_raw_dataset(200, seed=3), small_spec(), cache_dir=sys.argv[1], progress=False)
""")


def test_a_build_killed_between_files_leaves_no_visible_cache(tmp_path: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(tmp_path), str(REPO / "tests")], capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr
    dataset = random_raw_dataset(200, seed=3)
    location = cache_location(dataset, small_spec(), tmp_path)
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(f".{location.name}.")
    assert (leftovers[0] / "table.0.npy").is_file() and not location.exists()
    assert load_cached(location) is None
    features, reused = load_or_build(dataset, small_spec(), cache_dir=tmp_path, progress=False)
    assert not reused and load_cached(location) is not None
    assert leftovers[0].exists()  # written moments ago: possibly a concurrent build, kept
    assert remove_stale_staging(tmp_path, started=time.time() + QUIET_SECONDS + 1) == leftovers
    assert [p.name for p in tmp_path.iterdir()] == [location.name]


def age(path: Path, seconds: float) -> Path:
    """Set the modification time of `path` and of everything directly in it to `seconds` before this process started."""
    then = process_start_time() - seconds
    for item in [*path.iterdir(), path] if path.is_dir() else [path]:
        os.utime(item, (then, then))
    return path


def leftover(parent: Path, name: str, seconds_old: float) -> Path:
    """A staging directory as `tempfile.mkdtemp` names them, with a file, `seconds_old` before this process started."""
    path = parent / name
    path.mkdir(parents=True)
    (path / "part.csv").write_text("x")
    return age(path, seconds_old)


def test_only_old_unlocked_staging_directories_are_removed(tmp_path: Path) -> None:
    old = [leftover(tmp_path, ".key.ab_c12yz", 2 * QUIET_SECONDS), leftover(tmp_path, ".300rows_seed0.k2j4h5g6.tmp", 2 * QUIET_SECONDS)]
    kept = [leftover(tmp_path, ".key.zzzzzzzz", -5),  # made after this process started: a concurrent run's
            leftover(tmp_path, ".key.yyyyyyyy", QUIET_SECONDS / 2),  # touched shortly before: maybe still written
            leftover(tmp_path, "results", 2 * QUIET_SECONDS), leftover(tmp_path, ".hidden", 2 * QUIET_SECONDS),
            leftover(tmp_path, ".not.staging-dir", 2 * QUIET_SECONDS)]
    (tmp_path / ".file.abcdefgh").write_text("a file, not a staging directory")
    kept.append(age(tmp_path / ".file.abcdefgh", 2 * QUIET_SECONDS))
    assert sorted(remove_stale_staging(tmp_path)) == sorted(old)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


HOLD_STAGING = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from atec_automl.staging import staging_dir
    with staging_dir(Path(sys.argv[1]) / "result") as staging:
        print(staging, flush=True)
        time.sleep(60)
""")


def test_an_old_staging_directory_locked_by_a_live_writer_is_kept(tmp_path: Path) -> None:
    writer = subprocess.Popen([sys.executable, "-c", HOLD_STAGING, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        staging = Path(writer.stdout.readline().strip())
        age(staging, 2 * QUIET_SECONDS)
        assert remove_stale_staging(tmp_path) == [] and staging.is_dir()
    finally:
        writer.kill()
        writer.wait()
    assert remove_stale_staging(tmp_path) == [staging]


def test_staging_directories_are_locked_and_removed_unless_renamed(tmp_path: Path) -> None:
    with staging_dir(tmp_path / "result") as staging:
        (staging / "file").write_text("x")
        assert staging.parent == tmp_path and staging.name.startswith(".result.")
    assert list(tmp_path.iterdir()) == []
    with staging_dir(tmp_path / "result") as staging:
        os.rename(staging, tmp_path / "result")
    assert [p.name for p in tmp_path.iterdir()] == ["result"]


def submission_inputs() -> tuple[Submission, Prepared]:
    """A one-board submission of a two-row test set."""
    frame = pd.DataFrame({"event_id": ["e0", "e1"], "ts": np.array([0, 1], dtype=np.int64),
                          "label": np.array([np.nan, np.nan], dtype=np.float32),
                          "part": pd.Categorical(["test_a", "test_a"], categories=["train", "test_a", "test_b"])})
    dataset = Dataset(frame=frame, fingerprint="f" * 64, id_column="event_id")
    return Submission({"test_a": np.array([0.1, 0.9])}, [], "new"), Prepared(dataset, FeatureSet(table=pd.DataFrame(index=frame.index)), [])


def test_the_next_submission_feature_build_and_generation_remove_old_leftovers(tmp_path: Path) -> None:
    submissions, cache, synthetic = tmp_path / "submissions", tmp_path / "cache", tmp_path / "synthetic"
    old = [leftover(submissions, ".killed.a1b2c3d4", 2 * QUIET_SECONDS), leftover(cache, ".0f3e.a1b2c3d4", 2 * QUIET_SECONDS),
           leftover(synthetic, ".10000rows.a1b2c3d4.tmp", 2 * QUIET_SECONDS)]
    fresh = [leftover(submissions, ".other.e5f6g7h8", 0), leftover(cache, ".0f3e.e5f6g7h8", 0),
             leftover(synthetic, ".10000rows.e5f6g7h8.tmp", 0)]
    write_submission(*submission_inputs(), SubmitSettings(dir=str(submissions)))
    build_features(random_prelim_dataset(50, seed=0), PrelimFeatures(), cache_dir=cache, progress=False)
    generate(10_000, 1, synthetic / "data")
    assert not any(path.exists() for path in old)
    assert all(path.is_dir() for path in fresh)
    assert (submissions / "new" / "test_a.csv").is_file() and (synthetic / "data").is_dir() and len(list(cache.iterdir())) == 2
