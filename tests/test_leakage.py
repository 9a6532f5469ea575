"""No time travel: events at or after a time T, and labels, never move an earlier event's features.

Each test builds features twice: on a timeline, and on the same timeline with rows at or after T
changed, dropped and added (in train and in the test files, hour-resolution times included), or
with other labels. Every tabular feature, sequence (as event ids) and step of every event before
T must be bit-for-bit identical; events are matched by event_id since row positions shift.
An event written to the hour (`2017-09-05 13`) may have happened at any second of that hour, so
with times to the hour and to the second mixed, "at or after T" includes the hour-only events of
T's own hour: they may be later than an event at 13:30 and must stay out of its features.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_features_helpers import RAW_CATEGORICAL, RAW_NUMERIC, START, as_dataset, prelim_events, raw_events

from atec_automl.data.dataset import Dataset
from atec_automl.features.build import as_spec, compute_features
from atec_automl.tasks._experiment import load_data, plain
from atec_automl.features.featureset import FeatureSet
from atec_automl.features.spec import FeatureSpec
from conftest import compose_config

DAYS = 20


def spec_from_config(name: str) -> FeatureSpec:
    """The shipped feature config `conf/features/<name>.yaml`, without a cache."""
    cfg = compose_config([f"features={name}", "features.cache_dir=null"])
    return as_spec(plain(cfg.features))


def perturb_after(events: pd.DataFrame, cutoff: int, seed: int) -> pd.DataFrame:
    """Change, drop and add events that may be at or after `cutoff` (their written time ends after it); earlier events are left as they are."""
    rng = np.random.default_rng(seed)
    late = np.flatnonzero((events["ts"] + events["ts_resolution"]).to_numpy() > cutoff)
    changed = events.copy()
    for column in [c for c in changed.columns if c not in ("event_id", "ts", "ts_resolution")]:
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


def by_event(features: FeatureSet, dataset: Dataset, before: int, whole_time: bool = False) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None]:
    """Features of the events before `before` (with `whole_time`, whose written time ends by then), ordered by event id; sequences as event ids."""
    frame = dataset.frame
    ids = frame["event_id"].to_numpy()
    ends = frame["ts"].to_numpy() + (frame["ts_resolution"].to_numpy() - 1 if whole_time else 0)
    keep = np.flatnonzero(ends < before)
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


@pytest.mark.parametrize(("seed", "cutoff_hours"), [(15, 7 * 24 + 13.5), (16, 15 * 24 + 0.25)])
def test_mixed_resolution_features_ignore_events_that_may_be_later(seed: int, cutoff_hours: float) -> None:
    """Times to the hour and to the second mixed, T inside an hour: changing everything that may be at or
    after T (the hour-only events of T's hour included) leaves every event surely before T alone."""
    spec = spec_from_config("default")
    events = raw_events(1_500, seed, DAYS, hour_resolution=0.4)
    cutoff = START + int(cutoff_hours * 3600)
    hour_start = cutoff - cutoff % 3600
    users = events.drop_duplicates("user_id").dropna(subset=["user_id"]).head(6)
    in_hour = pd.concat([users, users], ignore_index=True)
    in_hour["event_id"] = [f"in_hour{i}" for i in range(len(in_hour))]
    in_hour["ts"] = np.r_[np.full(len(users), hour_start), hour_start + np.arange(len(users)) * (cutoff - hour_start) // len(users)]
    in_hour["ts_resolution"] = np.r_[np.full(len(users), 3600), np.ones(len(users))].astype(np.int32)
    events = pd.concat([events, in_hour], ignore_index=True)
    base = as_dataset(events, RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    other = as_dataset(perturb_after(events, cutoff, seed), RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    assert_unchanged_before(
        by_event(compute_features(base, spec, progress=False), base, cutoff, whole_time=True),
        by_event(compute_features(other, spec, progress=False), other, cutoff, whole_time=True),
    )


def _probe_user(background: pd.DataFrame, day: int, times: list[tuple[str, int, int]]) -> pd.DataFrame:
    """The background events plus events of a new user `probe` (and its own device) at (id, seconds into the day, resolution)."""
    template = background.iloc[[0] * len(times)].copy()
    template["event_id"] = [event_id for event_id, _, _ in times]
    template["ts"] = [START + day * 86_400 + offset for _, offset, _ in times]
    template["ts_resolution"] = np.array([resolution for _, _, resolution in times], dtype=np.int32)
    template["user_id"], template["device_sign"], template["amt"] = "probe", "probe_device", [100.0 * (i + 1) for i in range(len(times))]
    return pd.concat([background, template], ignore_index=True)


def _features_of(dataset: Dataset, event_ids: list[str]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Feature rows of these events (in this order) and their sequences as event ids."""
    spec = spec_from_config("default")
    features = compute_features(dataset, spec, progress=False)
    ids = dataset.frame["event_id"].to_numpy()
    rows = [int(np.flatnonzero(ids == event_id)[0]) for event_id in event_ids]
    sequences = {event_id: [ids[p] for p in features.seq_index[row] if p >= 0] for event_id, row in zip(event_ids, rows)}
    return features.table.iloc[rows].reset_index(drop=True), sequences


def test_an_hour_only_event_is_past_only_for_later_hours() -> None:
    """`13` (hour only) and 13:30:00 of one user do not see each other (either may be first); 14:05 sees both.

    Changing the hour-only event (it may be later than 13:30) moves nothing of the 13:30 event.
    """
    background = raw_events(400, 41, DAYS, hour_resolution=0.3)
    times = [("hour13", 13 * 3600, 3600), ("at1330", 13 * 3600 + 1800, 1), ("at1405", 14 * 3600 + 300, 1)]
    base = as_dataset(_probe_user(background, 3, times), RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    table, sequences = _features_of(base, ["hour13", "at1330", "at1405"])
    assert table["user_count_all"].tolist() == [0.0, 0.0, 2.0]
    assert table["user_count_1h"].tolist() == [0.0, 0.0, 2.0]
    assert table["device_count_24h"].tolist() == [0.0, 0.0, 2.0]
    assert np.isnan(table.loc[1, "user_amt_sum_all"]) and table.loc[2, "user_amt_sum_all"] == 300.0
    assert table["new_device"].tolist() == [1.0, 1.0, 0.0]
    assert sequences == {"hour13": [], "at1330": [], "at1405": ["at1330", "hour13"]}  # in the order they became visible
    assert table.loc[2, "user_since_prev"] == 35 * 60

    changed = _probe_user(background, 3, times)
    changed.loc[changed["event_id"] == "hour13", ["amt", "device_sign"]] = [9_999.0, "other_device"]
    other = as_dataset(changed, RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    other_table, other_sequences = _features_of(other, ["hour13", "at1330", "at1405"])
    pd.testing.assert_series_equal(other_table.iloc[1], table.iloc[1], check_exact=True)
    assert other_sequences["at1330"] == []
    assert other_table.loc[2, "user_amt_sum_all"] == 200.0 + 9_999.0


def test_times_to_the_hour_only_give_the_features_they_always_had() -> None:
    """Data written to the hour only: the same features as when its times are read as exact seconds
    (how every time was read before times carried a resolution); same-hour events do not see each other."""
    spec = spec_from_config("default")
    hourly = as_dataset(raw_events(1_500, 51, DAYS, hour_resolution=True), RAW_NUMERIC, RAW_CATEGORICAL, DAYS)
    assert (hourly.frame["ts_resolution"] == 3600).all() and hourly.frame["ts"].duplicated().sum() > 100
    as_seconds = Dataset(hourly.frame.assign(ts_resolution=np.int32(1)), "x", "event_id")
    features = compute_features(hourly, spec, progress=False)
    exact = compute_features(as_seconds, spec, progress=False)
    pd.testing.assert_frame_equal(features.table, exact.table, check_exact=True)
    np.testing.assert_array_equal(features.seq_index, exact.seq_index)
    np.testing.assert_array_equal(features.steps, exact.steps)
    frame = hourly.frame
    same_hour = frame.groupby(["user_id", "ts"], observed=True)["event_id"].transform("size") > 1
    first_of_user = frame.groupby("user_id", observed=True)["ts"].transform("min") == frame["ts"]
    sharing_first_hour = (same_hour & first_of_user).to_numpy()
    assert sharing_first_hour.sum() > 2
    assert (features.table["user_count_all"].to_numpy()[sharing_first_hour] == 0).all()


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
    configs = [compose_config(["data=atec", *[f"data.{part}={path}" for part, path in chosen.items()]]).data
               for chosen in ({p: paths[p] for p in files}, changed_paths)]
    base, other = (load_data(cfg) for cfg in configs)
    before = int(cutoff.timestamp())
    assert (base.frame["ts"] < before).sum() > 300 and (base.frame["ts"] >= before).sum() > 300
    spec = spec_from_config("default")
    assert_unchanged_before(
        by_event(compute_features(base, spec, progress=False), base, before),
        by_event(compute_features(other, spec, progress=False), other, before),
    )
