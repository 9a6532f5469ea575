"""No time travel: events at or after a time T, and labels, never move an earlier event's features.

Each test builds features twice: on a timeline, and on the same timeline with rows at or after T
changed, dropped and added (in train and in the test files, hour-resolution times included), or
with other labels. Every tabular feature, sequence (as event ids) and step of every event before
T must be bit-for-bit identical; events are matched by event_id since row positions shift.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from test_features_helpers import RAW_CATEGORICAL, RAW_NUMERIC, START, as_dataset, prelim_events, raw_events

from atec_automl.data.dataset import Dataset
from atec_automl.features.build import as_spec, compute_features
from atec_automl.features.featureset import FeatureSet
from atec_automl.features.spec import FeatureSpec

CONF = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "conf")
DAYS = 20


def spec_from_config(name: str) -> FeatureSpec:
    """The shipped feature config `conf/features/<name>.yaml`, without a cache."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[f"features={name}", "features.cache_dir=null"])
    return as_spec(cfg.features)


def perturb_after(events: pd.DataFrame, cutoff: int, seed: int) -> pd.DataFrame:
    """Change, drop and add events at or after `cutoff`; earlier events are left as they are."""
    rng = np.random.default_rng(seed)
    late = np.flatnonzero(events["ts"].to_numpy() >= cutoff)
    changed = events.copy()
    for column in [c for c in changed.columns if c not in ("event_id", "ts")]:
        rows = late[rng.random(len(late)) < 0.3]
        donors = rng.integers(0, len(events), len(rows))
        changed.loc[rows, column] = events[column].to_numpy()[donors]
    moved = late[rng.random(len(late)) < 0.2]
    changed.loc[moved, "ts"] = rng.integers(cutoff, int(events["ts"].max()) + 1, len(moved))
    changed = changed.drop(index=late[rng.random(len(late)) < 0.25])
    added = events.iloc[rng.integers(0, len(events), max(len(late) // 3, 1))].copy()
    added["event_id"] = [f"new{i}" for i in range(len(added))]
    resolution = 3600 if (events["ts"] % 3600 == 0).all() else 1
    added["ts"] = rng.integers(cutoff, int(events["ts"].max()) + 1, len(added)) // resolution * resolution
    added["ts"] = np.maximum(added["ts"].to_numpy(), cutoff)
    return pd.concat([changed, added], ignore_index=True)


def by_event(features: FeatureSet, dataset: Dataset, before: int) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None]:
    """Features of the events before `before`, ordered by event id; sequences as event ids."""
    frame = dataset.frame
    ids = frame["event_id"].to_numpy()
    keep = np.flatnonzero(frame["ts"].to_numpy() < before)
    order = keep[np.argsort(ids[keep], kind="stable")]
    table = features.table.iloc[order].reset_index(drop=True)
    table.insert(0, "event_id", ids[order])
    if features.seq_index is None:
        return table, None, None
    seq = features.seq_index[order]
    seq_ids = np.where(seq >= 0, ids[np.maximum(seq, 0)], "")
    return table, seq_ids, features.steps[order]


def assert_unchanged_before(base: tuple, other: tuple) -> None:
    """Tables equal exactly (NaN = NaN); sequence ids and steps identical."""
    pd.testing.assert_frame_equal(base[0], other[0], check_exact=True)
    if base[1] is not None:
        np.testing.assert_array_equal(base[1], other[1])
        np.testing.assert_array_equal(base[2], other[2])


@pytest.mark.parametrize(
    ("seed", "cutoff_day", "hour_resolution"),
    [(11, 5.5, False), (12, 9.3, True), (13, 14.2, True), (14, 18.7, False)],
)
def test_raw_features_before_t_ignore_later_rows(seed: int, cutoff_day: float, hour_resolution: bool) -> None:
    """Later changes (T inside train, test_a or test_b) leave every earlier feature and sequence alone."""
    spec = spec_from_config("default")
    events = raw_events(1_500, seed, DAYS, hour_resolution)
    cutoff = START + int(cutoff_day * 86_400)
    if hour_resolution:
        cutoff -= cutoff % 3600
    base = as_dataset(events, RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    other = as_dataset(perturb_after(events, cutoff, seed), RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    assert (base.frame["ts"] >= cutoff).sum() > 50
    base_features = compute_features(base, spec, progress=False)
    assert base_features.table.shape[1] >= 80
    assert_unchanged_before(
        by_event(base_features, base, cutoff),
        by_event(compute_features(other, spec, progress=False), other, cutoff),
    )


@pytest.mark.parametrize("hour_resolution", [False, True])
def test_labels_never_move_a_feature(hour_resolution: bool) -> None:
    """Other train labels: every feature, sequence and step of every event is identical."""
    spec = spec_from_config("default")
    events = raw_events(1_000, 21, DAYS, hour_resolution)
    relabelled = events.assign(label=np.random.default_rng(0).choice([0.0, 1.0, -1.0], len(events)).astype(np.float32))
    base = as_dataset(events, RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    other = as_dataset(relabelled, RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    assert not base.frame["label"].equals(other.frame["label"])
    everything = int(base.frame["ts"].max()) + 1
    assert_unchanged_before(
        by_event(compute_features(base, spec, progress=False), base, everything),
        by_event(compute_features(other, spec, progress=False), other, everything),
    )


@pytest.mark.parametrize("cutoff_day", [4, 13, 18])
def test_prelim_features_before_t_ignore_later_rows_and_labels(cutoff_day: int) -> None:
    """Preliminary format: later rows and any labels leave earlier features alone."""
    spec = spec_from_config("prelim")
    events = prelim_events(800, cutoff_day, DAYS)
    cutoff = START + cutoff_day * 86_400
    f_columns = [c for c in events.columns if c.startswith("f")]
    base = as_dataset(events, f_columns, [], DAYS)
    changed = perturb_after(events, cutoff, cutoff_day)
    changed["label"] = np.random.default_rng(1).choice([0.0, 1.0, -1.0], len(changed)).astype(np.float32)
    other = as_dataset(changed, f_columns, [], DAYS)
    assert_unchanged_before(
        by_event(compute_features(base, spec, progress=False), base, cutoff),
        by_event(compute_features(other, spec, progress=False), other, cutoff),
    )


def test_events_sharing_a_time_do_not_see_each_other() -> None:
    """Hour resolution: events added at exactly T (ahead in file order) leave the events at T alone."""
    spec = spec_from_config("default")
    events = raw_events(1_500, 31, DAYS, hour_resolution=True)
    busiest = events["ts"].value_counts().idxmax()
    twins = events[events["ts"] == busiest].copy()
    twins["event_id"] = [f"twin{i}" for i in range(len(twins))]
    twins["amt"] = twins["amt"] * 3
    base = as_dataset(events, RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    other = as_dataset(pd.concat([twins, events], ignore_index=True), RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    originals = other.frame["event_id"].isin(events["event_id"]).to_numpy()
    other_features = compute_features(other, spec, progress=False)
    kept = FeatureSet(
        table=other_features.table[originals].reset_index(drop=True),
        seq_index=other_features.seq_index[originals],
        steps=other_features.steps[originals],
    )
    positions_of_originals = np.cumsum(originals) - 1
    kept.seq_index = np.where(kept.seq_index >= 0, positions_of_originals[np.maximum(kept.seq_index, 0)], -1)
    only_originals = Dataset(other.frame[originals].reset_index(drop=True), "x", "event_id")
    assert len(twins) >= 2
    assert_unchanged_before(
        by_event(compute_features(base, spec, progress=False), base, busiest + 1),
        by_event(kept, only_originals, busiest + 1),
    )


def perturb_file(source: pd.DataFrame, cutoff: pd.Timestamp, seed: int) -> pd.DataFrame:
    """One generated file with its rows at or after `cutoff` changed, dropped and duplicated."""
    rng = np.random.default_rng(seed)
    late = np.flatnonzero((pd.to_datetime(source["gmt_occur"]) >= cutoff).to_numpy())
    changed = source.copy()
    changed.loc[late, "amt"] = changed.loc[late, "amt"] * 2
    for column in ("device_sign", "user_id", "opposing_id"):
        changed.loc[late, column] = rng.permutation(changed.loc[late, column].to_numpy())
    copies = changed.iloc[rng.choice(late, len(late) // 4)].copy() if len(late) else changed.iloc[:0]
    copies["event_id"] = [f"copy{seed}_{i}" for i in range(len(copies))]
    changed = changed.drop(index=late[rng.random(len(late)) < 0.2])
    return pd.concat([changed, copies], ignore_index=True)


@pytest.mark.parametrize(("cutoff_part", "share"), [("train", 0.6), ("test_a", 0.5)])
def test_generated_files_changed_after_t_leave_earlier_features_alone(tmp_path, cutoff_part: str, share: float) -> None:
    """The synthetic generator's hour-resolution files, edited after T and loaded by the real loader."""
    from atec_automl.data.load import load_dataset
    from atec_automl.data.synthetic import generate

    paths = generate(rows=3_000, seed=4, out_dir=tmp_path / "generated", time_resolution="hour")
    files = {part: pd.read_parquet(paths[part]) for part in ("train", "test_a", "test_b")}
    times = pd.to_datetime(files[cutoff_part]["gmt_occur"]).sort_values()
    cutoff = times.iloc[int(len(times) * share)]
    (tmp_path / "changed").mkdir()
    changed_paths = {}
    for index, (part, frame) in enumerate(files.items()):
        changed_paths[part] = tmp_path / "changed" / f"{part}.parquet"
        perturb_file(frame, cutoff, index).to_parquet(changed_paths[part], index=False)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        configs = [
            compose("config", overrides=["data=atec", *[f"data.{part}={path}" for part, path in chosen.items()]]).data
            for chosen in ({p: paths[p] for p in files}, changed_paths)
        ]
    base, other = (load_dataset(cfg) for cfg in configs)
    before = int(cutoff.timestamp())
    assert (base.frame["ts"] < before).sum() > 300 and (base.frame["ts"] >= before).sum() > 300
    spec = spec_from_config("default")
    assert_unchanged_before(
        by_event(compute_features(base, spec, progress=False), base, before),
        by_event(compute_features(other, spec, progress=False), other, before),
    )
