"""Random `Dataset`s that follow the timeline contract, for the feature tests (and a check of them).

Raw format: train, test_a, test_b in consecutive time windows, entities reused the way real
traffic reuses them (a user mostly keeps a device, a card, a payee), ~5 % missing fields,
optional hour-resolution times (many ties) or a mix of times to the hour and to the second.
Preliminary format: id/date/f-columns.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from atec_automl.data.dataset import PARTS, Dataset

START = 1_504_569_600  # 2017-09-05 00:00:00
RAW_CATEGORICAL = [
    "user_id", "device_sign", "client_ip", "opposing_id", "cert_no", "bank_card_no", "income_card_no",
    "wireless_mac", "ip_prov", "cert_prov", "card_bin_prov", "card_mobile_prov", "province",
    "network", "mobile_oper_platform", "operation_channel", "pay_scene", "income_card_bank_code", "version",
]
RAW_NUMERIC = ["amt", "is_one_people", "is_peer_pay"]
ENTITY_POOLS = {"device_sign": 3, "client_ip": 4, "bank_card_no": 2, "cert_no": 1, "wireless_mac": 3, "income_card_no": 2}


def raw_events(rows: int, seed: int, days: int = 20, hour_resolution: bool | float = False) -> pd.DataFrame:
    """Unsorted raw events with `event_id`, `ts`, `label`, `ts_resolution` and the raw fields (strings/floats).

    `hour_resolution`: True for times to the hour only, a share (0.3) for that share of times to the hour.
    """
    rng = np.random.default_rng(seed)
    n_users = max(rows // 8, 2)
    user = rng.zipf(1.6, rows) % n_users
    ts = START + rng.integers(0, days * 86_400, rows)
    share = float(hour_resolution)
    to_the_hour = rng.random(rows) < share if 0 < share < 1 else np.full(rows, share == 1)
    ts = np.where(to_the_hour, ts - ts % 3600, ts)
    columns: dict[str, object] = {"user_id": [f"u{u}" for u in user]}
    for name, per_user in ENTITY_POOLS.items():
        own = user * per_user + rng.integers(0, per_user, rows)
        shared = rng.integers(0, n_users * per_user, rows)
        columns[name] = [f"{name[:3]}{v}" for v in np.where(rng.random(rows) < 0.85, own, shared)]
    columns["opposing_id"] = [f"p{v}" for v in np.where(rng.random(rows) < 0.5, user % 50, rng.integers(0, rows, rows))]
    for name in ("ip_prov", "cert_prov", "card_bin_prov", "card_mobile_prov", "province"):
        columns[name] = [str(v) for v in np.where(rng.random(rows) < 0.8, user % 31, rng.integers(0, 31, rows))]
    columns["network"] = rng.choice(["wifi", "4g", "3g"], rows)
    columns["mobile_oper_platform"] = rng.choice(["ios", "android", "other"], rows)
    columns["operation_channel"] = rng.choice(["app", "pc", "wap"], rows)
    columns["pay_scene"] = rng.choice(["站内即时到账", "淘宝实物担保", "other"], rows)
    columns["income_card_bank_code"] = rng.choice(["b1", "b2", "b3", "b4"], rows)
    columns["version"] = rng.choice(["1", "2"], rows)
    frame = pd.DataFrame(columns)
    for name in RAW_CATEGORICAL:
        frame.loc[rng.random(rows) < 0.05, name] = None
    frame["amt"] = np.round(rng.lognormal(5, 1.5, rows), 2)
    frame.loc[rng.random(rows) < 0.02, "amt"] = np.nan
    frame["is_one_people"] = rng.integers(0, 2, rows).astype(float)
    frame["is_peer_pay"] = rng.integers(0, 2, rows).astype(float)
    frame.insert(0, "event_id", [f"e{seed}_{i}" for i in range(rows)])
    frame.insert(1, "ts", ts.astype(np.int64))
    frame.insert(2, "label", rng.choice([0.0, 1.0, -1.0], rows, p=[0.9, 0.07, 0.03]).astype(np.float32))
    frame.insert(3, "ts_resolution", np.where(to_the_hour, 3600, 1).astype(np.int32))
    return frame


def as_dataset(events: pd.DataFrame, numeric: list[str], categorical: list[str], days: int) -> Dataset:
    """Assign parts by time (train 60 %, test_a 20 %, test_b 20 %) and sort into a `Dataset`."""
    offset = events["ts"].to_numpy() - START
    part = np.select([offset < days * 86_400 * 0.6, offset < days * 86_400 * 0.8], [0, 1], 2)
    frame = events.drop(columns=["part"], errors="ignore").copy()
    frame["label"] = np.where(part == 0, frame["label"].to_numpy(), np.nan).astype(np.float32)
    frame.insert(3, "part", pd.Categorical.from_codes(part, categories=list(PARTS)))
    order = np.lexsort((np.arange(len(frame)), part, frame["ts"].to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)
    for name in categorical:
        frame[name] = frame[name].astype("category")
    for name in numeric:
        frame[name] = frame[name].astype(np.float64)
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame.astype({"part": str}), index=False).to_numpy().tobytes()).hexdigest()[:16]
    return Dataset(frame=frame, fingerprint=digest, id_column="event_id", categorical=categorical, numeric=numeric)


def random_raw_dataset(rows: int = 2_000, seed: int = 0, days: int = 20, hour_resolution: bool | float = False) -> Dataset:
    """A random semi-final-format timeline."""
    return as_dataset(raw_events(rows, seed, days, hour_resolution), RAW_NUMERIC, RAW_CATEGORICAL, days)


def prelim_events(rows: int, seed: int, days: int = 20, features: int = 12) -> pd.DataFrame:
    """Unsorted preliminary-format events: `event_id`, day-resolution `ts`, `label`, f1..fN."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, features))
    values[rng.random((rows, features)) < 0.2] = np.nan
    frame = pd.DataFrame(values, columns=[f"f{i + 1}" for i in range(features)]).astype(np.float32)
    frame.insert(0, "event_id", [f"{seed}_{i}" for i in range(rows)])
    frame.insert(1, "ts", (START + rng.integers(0, days, rows) * 86_400).astype(np.int64))
    frame.insert(2, "label", rng.choice([0.0, 1.0, -1.0], rows, p=[0.9, 0.07, 0.03]).astype(np.float32))
    frame.insert(3, "ts_resolution", np.full(rows, 86_400, dtype=np.int32))
    return frame


def random_prelim_dataset(rows: int = 1_000, seed: int = 0, days: int = 20) -> Dataset:
    """A random preliminary-format timeline."""
    events = prelim_events(rows, seed, days)
    return as_dataset(events, [c for c in events.columns if c.startswith("f")], [], days)


def test_random_dataset_follows_the_timeline_contract() -> None:
    """Sorted by ts, RangeIndex, tests unlabelled, categoricals as category, parts in order."""
    dataset = random_raw_dataset(500, seed=3, hour_resolution=True)
    frame = dataset.frame
    assert (np.diff(frame["ts"].to_numpy()) >= 0).all()
    assert frame.index.equals(pd.RangeIndex(len(frame)))
    assert frame.loc[frame["part"] != "train", "label"].isna().all()
    assert frame.loc[frame["part"] == "train", "label"].notna().all()
    assert isinstance(frame["device_sign"].dtype, pd.CategoricalDtype)
    assert set(frame["part"]) == set(PARTS)
    assert (frame["ts"] % 3600 == 0).all()


def test_a_later_value_never_changes_how_earlier_province_fields_compare() -> None:
    from atec_automl.features.codes import shared_codes

    numeric_only = pd.DataFrame({"ip_prov": pd.Categorical(["11", "31"]), "cert_prov": pd.Categorical(["11.0", "32"])})
    with_text_later = pd.DataFrame({"ip_prov": pd.Categorical(["11", "31", "unknown"]),
                                    "cert_prov": pd.Categorical(["11.0", "32", "x"])})
    first, second = shared_codes(numeric_only, ["ip_prov", "cert_prov"])
    later_first, later_second = shared_codes(with_text_later, ["ip_prov", "cert_prov"])
    assert (first == second).tolist() == [True, False]
    assert (later_first == later_second).tolist()[:2] == [True, False]
