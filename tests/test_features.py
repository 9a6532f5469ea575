"""Feature values against brute-force per-event references and pandas' rolling windows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_features_helpers import random_prelim_dataset, random_raw_dataset

from atec_automl.errors import AtecError, DataError
from atec_automl.features.build import build_features, compute_features
from atec_automl.features import sequences
from atec_automl.features.sequences import shift_sequences
from atec_automl.features.spec import EntitySpec, PrelimFeatures, RawEventFeatures, SequenceSpec
from atec_automl.features.windows import stable_argsort

WINDOWS = {"1h": 3600, "24h": 86_400, "all": None}


def small_spec(**overrides) -> RawEventFeatures:
    """A spec covering every kind of raw feature on a few keys."""
    settings = dict(
        entities={
            "user": EntitySpec(columns=["user_id"], windows=list(WINDOWS), stats=["count", "amt_sum", "amt_mean", "amt_max", "amt_std", "amt_vs_mean", "amt_vs_max"],
                               distinct={"device_sign": list(WINDOWS)}),
            "payee": EntitySpec(columns=["opposing_id"], windows=["24h", "all"], stats=["count", "amt_sum"], distinct={"user_id": ["1h", "all"]}),
            "user_device": EntitySpec(columns=["user_id", "device_sign"], windows=["24h"], stats=["count", "amt_max"]),
        },
        first_seen={"device": ["user_id", "device_sign"]},
        usual=["device_sign"],
        mismatches={"ip_cert_prov": ["ip_prov", "cert_prov"]},
        categorical=["network", "pay_scene"],
        sequence=SequenceSpec(length=4, categorical=["network"], novelty=["device"]),
    )
    settings.update(overrides)
    return RawEventFeatures(**settings)


def past_of(frame: pd.DataFrame, i: int, columns: list[str]) -> pd.DataFrame:
    """Events surely earlier than row i (their written time ends by row i's start) with its known values in `columns`.

    Ordered by the end of their written time, then timeline order.
    """
    row = frame.iloc[i]
    if any(pd.isna(row[c]) for c in columns):
        return frame.iloc[:0]
    ends = frame["ts"] + frame["ts_resolution"]
    mask = ends <= row["ts"]
    for column in columns:
        mask &= frame[column] == row[column]
    past = frame[mask.fillna(False)]
    return past.iloc[np.lexsort((past.index.to_numpy(), ends[past.index].to_numpy()))]


def reference_entity(frame: pd.DataFrame, columns: list[str], other: str | None) -> dict[str, list[float]]:
    """Per event, brute force: count, amount sum/mean/max/std, since_prev, distinct `other`, per window."""
    out: dict[str, list[float]] = {}
    for i in range(len(frame)):
        past = past_of(frame, i, columns)
        row = frame.iloc[i]
        known_key = all(pd.notna(row[c]) for c in columns)
        for w, seconds in WINDOWS.items():
            window = past if seconds is None else past[past["ts"] + past["ts_resolution"] > row["ts"] - seconds]
            amounts = window["amt"].dropna()
            values = {
                "count": len(window),
                "amt_sum": amounts.sum() if len(amounts) else np.nan,
                "amt_mean": amounts.mean() if len(amounts) else np.nan,
                "amt_max": amounts.max() if len(amounts) else np.nan,
                "amt_std": amounts.std() if len(amounts) > 1 else np.nan,
                "nuniq": window[other].nunique() if other else np.nan,
            }
            for name, value in values.items():
                out.setdefault(f"{name}_{w}", []).append(value if known_key else np.nan)
        out.setdefault("since_prev", []).append(row["ts"] - past["ts"].max() if len(past) else np.nan)
    return out


@pytest.mark.parametrize("hour_resolution", [False, True, 0.4])
def test_user_window_aggregates_match_brute_force(hour_resolution: bool | float) -> None:
    """Counts, sums, means, maxima, stds, distinct devices and gaps equal a per-event loop (also with times to the hour and to the second mixed)."""
    dataset = random_raw_dataset(400, seed=5, days=3, hour_resolution=hour_resolution)
    table = compute_features(dataset, small_spec(), progress=False).table
    expected = reference_entity(dataset.frame, ["user_id"], "device_sign")
    for w in WINDOWS:
        for stat in ("count", "amt_sum", "amt_mean", "amt_max", "amt_std"):
            np.testing.assert_allclose(table[f"user_{stat}_{w}"], expected[f"{stat}_{w}"], rtol=2e-5, err_msg=f"{stat}_{w}")
        np.testing.assert_array_equal(table[f"user_nuniq_device_sign_{w}"], np.asarray(expected[f"nuniq_{w}"], dtype=np.float32))
        amount = dataset.frame["amt"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            np.testing.assert_allclose(table[f"user_amt_vs_mean_{w}"], amount / np.asarray(expected[f"amt_mean_{w}"]), rtol=2e-5)
    np.testing.assert_allclose(table["user_since_prev"], expected["since_prev"], rtol=1e-6)


def test_pair_key_and_payee_distinct_users_match_brute_force() -> None:
    """A (user, device) key and distinct payers per payee equal a per-event loop, with ties."""
    dataset = random_raw_dataset(400, seed=6, days=2, hour_resolution=True)
    table = compute_features(dataset, small_spec(), progress=False).table
    pair = reference_entity(dataset.frame, ["user_id", "device_sign"], None)
    np.testing.assert_array_equal(table["user_device_count_24h"], np.asarray(pair["count_24h"], dtype=np.float32))
    np.testing.assert_allclose(table["user_device_amt_max_24h"], pair["amt_max_24h"], rtol=1e-6)
    payee = reference_entity(dataset.frame, ["opposing_id"], "user_id")
    for w in ("1h", "all"):
        np.testing.assert_array_equal(table[f"payee_nuniq_user_id_{w}"], np.asarray(payee[f"nuniq_{w}"], dtype=np.float32))
    assert table["payee_nuniq_user_id_all"].max() >= 2


@pytest.mark.parametrize("hour_resolution", [True, 0.5])
def test_flags_match_brute_force(hour_resolution: bool | float) -> None:
    """New-device, usual-device and province-mismatch flags equal their definitions."""
    dataset = random_raw_dataset(300, seed=7, days=2, hour_resolution=hour_resolution)
    frame = dataset.frame
    table = compute_features(dataset, small_spec(), progress=False).table
    new, usual = [], []
    for i in range(len(frame)):
        row = frame.iloc[i]
        pair_past = past_of(frame, i, ["user_id", "device_sign"])
        user_past = past_of(frame, i, ["user_id"])
        known = pd.notna(row["user_id"]) and pd.notna(row["device_sign"])
        new.append(float(len(pair_past) == 0) if known else np.nan)
        counts = user_past["device_sign"].astype(object).value_counts()
        usual.append(float(len(pair_past) == counts.max()) if known and len(counts) else np.nan)
    np.testing.assert_array_equal(table["new_device"], np.asarray(new, dtype=np.float32))
    np.testing.assert_array_equal(table["usual_device_sign"], np.asarray(usual, dtype=np.float32))
    ip, cert = frame["ip_prov"].astype(object), frame["cert_prov"].astype(object)
    mismatch = np.where(ip.isna() | cert.isna(), np.nan, (ip != cert).astype(float))
    np.testing.assert_array_equal(table["mismatch_ip_cert_prov"], mismatch.astype(np.float32))
    assert np.nansum(table["usual_device_sign"]) > 0 and np.nansum(table["new_device"]) > 0


def test_window_counts_and_sums_equal_pandas_rolling_closed_left() -> None:
    """The 24 h count and sum per payee equal `groupby().rolling(closed="left")` (ties excluded)."""
    dataset = random_raw_dataset(1_500, seed=8, days=4, hour_resolution=True)
    frame = dataset.frame
    table = compute_features(dataset, small_spec(), progress=False).table
    known = frame[frame["opposing_id"].notna()].copy()
    known["time"] = pd.to_datetime(known["ts"], unit="s")
    known["one"] = 1.0
    rolled = known.groupby("opposing_id", observed=True).rolling("24h", on="time", closed="left")[["one", "amt"]].sum()
    rolled.index = known.sort_values("opposing_id", kind="stable").index
    rows = known.index
    np.testing.assert_array_equal(table.loc[rows, "payee_count_24h"], rolled.loc[rows, "one"].fillna(0).astype(np.float32))
    np.testing.assert_allclose(table.loc[rows, "payee_amt_sum_24h"].fillna(0), rolled.loc[rows, "amt"].fillna(0), rtol=1e-5)


@pytest.mark.parametrize("hour_resolution,chunk_rows", [(True, sequences.CHUNK_ROWS), (0.5, sequences.CHUNK_ROWS), (0.5, 7)])
def test_sequence_index_lists_the_users_latest_strictly_earlier_events(hour_resolution: bool | float, chunk_rows: int,
                                                                       monkeypatch) -> None:
    """Row i's index holds the user's K latest earlier events, most recent last, -1 padded (in chunks of any size)."""
    monkeypatch.setattr(sequences, "CHUNK_ROWS", chunk_rows)
    dataset = random_raw_dataset(300, seed=9, days=2, hour_resolution=hour_resolution)
    frame = dataset.frame
    features = compute_features(dataset, small_spec(), progress=False)
    assert features.seq_index.dtype == np.int32 and features.seq_index.shape == (300, 4)
    for i in range(len(frame)):
        past = past_of(frame, i, ["user_id"]).index.to_numpy()[-4:]
        expected = np.concatenate([np.full(4 - len(past), -1), past])
        np.testing.assert_array_equal(features.seq_index[i], expected)
    assert features.steps.shape == (300, len(features.step_names)) and features.steps.dtype == np.float32
    assert np.isfinite(features.steps).all()
    assert {"log_amount", "log_gap", "new_device", "code_network"} <= set(features.step_names)


@pytest.mark.parametrize("low,high", [(0, 17), (-1, 70_000), (-5, 3 << 40)])
def test_stable_argsort_is_numpys_stable_argsort(low: int, high: int) -> None:
    """The radix sort (one pass per 16 bits of the range) orders ties by position, like numpy's stable sort."""
    codes = np.random.default_rng(high).integers(low, high, 50_000)
    np.testing.assert_array_equal(stable_argsort(codes), np.argsort(codes, kind="stable"))
    assert len(stable_argsort(codes[:0])) == 0


def test_shift_drops_the_latest_past_events_for_arrays_and_tensors() -> None:
    """Shifting by n moves the index right by n (per row too) and pads the front with -1."""
    import torch

    index = np.array([[-1, 3, 5, 7], [1, 2, 4, 6]], dtype=np.int32)
    np.testing.assert_array_equal(shift_sequences(index, 1), [[-1, -1, 3, 5], [-1, 1, 2, 4]])
    np.testing.assert_array_equal(shift_sequences(index, np.array([0, 3])), [[-1, 3, 5, 7], [-1, -1, -1, 1]])
    tensor = torch.as_tensor(index)
    assert torch.equal(shift_sequences(tensor, torch.tensor([2, 1])), torch.tensor([[-1, -1, -1, 3], [-1, 1, 2, 4]], dtype=torch.int32))


def test_prelim_features_are_f_columns_missing_count_and_dates() -> None:
    """f-columns unchanged, missing count per row, weekday and holiday from the date; no sequences."""
    dataset = random_prelim_dataset(200, seed=1, days=40)
    features = compute_features(dataset, PrelimFeatures(), progress=False)
    frame, table = dataset.frame, features.table
    f_columns = [c for c in frame.columns if c.startswith("f")]
    np.testing.assert_array_equal(table[f_columns].to_numpy(), frame[f_columns].to_numpy(dtype=np.float32))
    np.testing.assert_array_equal(table["missing_count"], frame[f_columns].isna().sum(axis=1).to_numpy())
    weekday = pd.to_datetime(frame["ts"], unit="s").dt.day_of_week.to_numpy()
    np.testing.assert_array_equal(table["weekday"], weekday)
    holiday = pd.to_datetime(frame["ts"], unit="s").between("2017-10-01", "2017-10-08 23:59")
    np.testing.assert_array_equal(table["holiday"], holiday.to_numpy(dtype=np.float32))
    assert holiday.any() and features.seq_index is None and features.steps is None


def test_the_wrong_spec_for_the_format_names_the_right_one() -> None:
    """Raw features on preliminary data (and the reverse) fail with the config to use."""
    with pytest.raises(AtecError, match="features=prelim"):
        build_features(random_prelim_dataset(50), small_spec(), progress=False)
    with pytest.raises(AtecError, match="features=default"):
        build_features(random_raw_dataset(50), PrelimFeatures(), progress=False)


def test_an_unsorted_timeline_is_rejected() -> None:
    """A frame that breaks the time-order contract is a DataError naming the ts column."""
    dataset = random_raw_dataset(50)
    dataset.frame = dataset.frame.iloc[::-1].reset_index(drop=True)
    with pytest.raises(DataError, match="'ts'.*not sorted"):
        compute_features(dataset, small_spec(), progress=False)


def test_a_timeline_without_time_resolutions_is_rejected() -> None:
    """Without `ts_resolution` nobody can tell when an event may be seen: a DataError naming the column."""
    dataset = random_raw_dataset(50)
    dataset.frame = dataset.frame.drop(columns=["ts_resolution"])
    with pytest.raises(DataError, match="'ts_resolution'.*no ts_resolution column"):
        compute_features(dataset, small_spec(), progress=False)


def test_build_caches_on_disk_and_reuses_it(tmp_path) -> None:
    """The second build reads the cache (same values); another definition gets another entry."""
    dataset = random_raw_dataset(300, seed=2)
    first = build_features(dataset, small_spec(), cache_dir=tmp_path, progress=False)
    entries = [p for p in tmp_path.iterdir()]
    assert len(entries) == 1 and (entries[0] / "manifest.json").is_file() and (entries[0] / "seq_index.npy").is_file()
    second = build_features(dataset, small_spec(), cache_dir=tmp_path, progress=False)
    pd.testing.assert_frame_equal(first.table, second.table)
    np.testing.assert_array_equal(first.seq_index, second.seq_index)
    np.testing.assert_array_equal(first.steps, second.steps)
    assert second.categorical == first.categorical and second.step_names == first.step_names
    assert second.table["cat_network"].dtype == np.int32
    assert isinstance(second.seq_index, np.memmap) and str(second.seq_index.filename) == str(entries[0] / "seq_index.npy")
    build_features(dataset, small_spec(usual=[]), cache_dir=tmp_path, progress=False)
    build_features(dataset, small_spec(export="elsewhere.parquet"), cache_dir=tmp_path, progress=False)
    assert len([p for p in tmp_path.iterdir()]) == 2


def test_cache_entries_are_complete_even_when_a_build_fails(tmp_path) -> None:
    """A cache directory appears only once fully written; a missing cache_dir means no cache."""
    dataset = random_raw_dataset(100, seed=4)
    build_features(dataset, small_spec(cache_dir=None), progress=False)
    bad = small_spec(cache_dir=str(tmp_path), entities={"x": EntitySpec(columns=["user_id"], windows=["1h"])})
    dataset.frame["ts"] = dataset.frame["ts"].to_numpy()[::-1]
    with pytest.raises(DataError):
        build_features(dataset, bad, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_ratios_against_a_zero_mean_are_nan_and_numeric_columns_float32() -> None:
    """amount / mean with a zero past mean is NaN, never infinite; codes are int32, the rest float32."""
    dataset = random_raw_dataset(400, seed=10)
    ts = dataset.frame["ts"]
    dataset.frame["amt"] = np.where(ts < ts.median(), 0.0, 5.0)
    features = compute_features(dataset, small_spec(), progress=False)
    table = features.table
    assert (table[features.numeric].dtypes == np.float32).all()
    assert (table[features.categorical].dtypes == np.int32).all()
    assert not np.isinf(table[features.numeric].to_numpy()).any()
    zero_past = (table["user_amt_mean_all"] == 0) & (table["amount"] > 0)
    assert zero_past.any() and table.loc[zero_past, "user_amt_vs_mean_all"].isna().all()
