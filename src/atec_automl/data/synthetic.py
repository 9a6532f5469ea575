"""Realistic synthetic payment events in the ATEC semi-final raw schema.

`generate(rows, seed, out_dir)` writes `train`, `test_a`, `test_b` (same columns as the contest
files, tests without `is_fraud`), `test_labels` (the hidden labels: event_id, is_fraud and
true_fraud of every test row, then of every training row whose label is not the truth: each grey
row and each unreported fraud labelled 0) and `manifest.json`, all at once: files are built in a hidden temp dir next to `out_dir` and moved in
with renames, the manifest last, so an interrupted run leaves nothing that looks complete.
Same rows and seed give byte-identical files.

The generative story
--------------------
World. Users live in a home province/city (integer ids, population weighted); a fifth were born
elsewhere (`cert_prov` differs from where they pay from: migrants). A user has an activity rate
(log-normal: a few heavy users), an active period (some join or leave during the timeline), a
habitual hour of day (a few night owls), an amount scale, 1-3 devices (platform, app-version
update lag), 1-3 cards (sometimes a relative's: `is_one_people` 0), a household (home Wi-Fi,
home IP rotating monthly, shared by family members who sometimes use each other's phone) and
2-8 usual payees (friends and favourite merchants). Shared entities: mobile traffic leaves through
a few carrier-NAT IPs per province (hundreds of users per IP), public hotspots are shared by
strangers, merchants have Zipf popularity (many payers), shop "agent" devices serve many users.

Normal behaviour, some of which looks risky. Sessions of 1-10 events (shopping bursts a minute
apart) on the user's main device, sometimes another of theirs, a family or a shop device; some
users switch to a new phone mid-way. Payees: usual ones, popular merchants, or one-off strangers
(12 % of events). Scenes set the payee fields: merchant scenes and account transfers fill the
`opposing_*` fields, transfers to a card fill the `income_card_*` fields and `province`/`city`,
credit-card repayment pays the user's own card. Trips move a user's IP to another province
(more around the 2017-10-01..08 holiday; migrants go home for the 2018-02-15..21 Spring Festival,
which also brings red packets and more volume). Amounts are log-normal per user and scene.

Fraud that unfolds over time. Rings run campaigns of a few days over many victims (real users
with their own normal history), drawing on sliding pools of devices, proxy IPs and mule payees
(pools overlap from one campaign to the next, then rotate). Each victim: often a small probe
payment first, then 1-4 large payments minutes apart, night hours common. Tactics:
- takeover: the ring's device (new for the victim), proxy IP or ring Wi-Fi in another province,
  transfers to the ring's mules;
- stolen phone: the victim's own device and home-province network, transfers to mules (device and
  IP look normal; the payee, the hour, the burst and the amount do not);
- device farm (the new tactic, rare in train, a third of fraud in test_b): a fresh emulator device
  per payment (fingerprint often missing), wap/other channels, proxy IPs, purchases at the ring's
  fake shops.
Lone thieves (a third of the victims, stolen phones and some takeovers, one victim each) are
spread over every day, so fraud arrives daily and not only in campaign bursts.
So fraud is learnable from strictly-past entity aggregates (a device or a wifi seen with several
users in the last day, a payee or shop receiving from many first-time payers, a user's first
payment to this payee after a probe) but not from one raw column.

Labels. A legacy rule engine (new device, new payee, large amount, night, province mismatch,
unusual channel, plus noise) blocks the riskiest events; its operators re-tune the threshold each
period to block a set share of traffic (0.9 %, 0.8 %, 1.1 %). Blocked events become grey (-1),
mostly fraud but some legitimate. About 5 % of the
remaining fraud is never reported (labelled 0). Test labels use the same 1/0/-1 coding and go to
the hidden labels file only. That file also holds `true_fraud` (1 for every fraud event, whatever its
label) of the test rows and of the training rows whose label hides the truth (grey, or fraud
labelled 0): a training row not in it is truly what its label says. Only the simulated expert and
the true-score reporting read it.

Drift between train and tests: more device-farm fraud, missing fields (-1) 1.6x more in test_a
and 2.8x more in test_b (where the card-mobile location and IP city lose much more), amounts
inflated 6 % and 9 %, newer app versions, fewer 3G connections, new users; rings adapt to velocity
rules by spreading campaigns over more days (up to 4, 6, 8) and larger pools (4-12, 6-16, 8-20).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from atec_automl.errors import AtecError
from atec_automl.staging import remove_stale_staging

COLUMNS = (
    "event_id", "user_id", "sample_seg", "gmt_occur", "client_ip", "network", "device_sign",
    "wireless_mac", "wifi_node_name", "phone_no", "cert_no", "ip_prov", "ip_city", "cert_prov",
    "cert_city", "card_bin_prov", "card_bin_city", "card_mobile_prov", "card_mobile_city",
    "card_cert_prov", "card_cert_city", "is_one_people", "mobile_oper_platform", "operation_channel",
    "pay_scene", "amt", "bank_card_no", "card_cert_no", "card_mobile", "opposing_cert_no",
    "opposing_user_phone", "opposing_id", "income_card_no", "income_card_cert_no",
    "income_card_mobile", "income_card_bank_code", "province", "city", "is_peer_pay", "version",
    "is_fraud", "dt",
)
LABEL_COLUMNS = ("event_id", "is_fraud", "true_fraud")
FILE_FORMATS = ("parquet", "csv")
TIME_RESOLUTIONS = ("second", "hour")
MANIFEST_NAME = "manifest.json"
FILE_STEMS = {"train": "train", "test_a": "test_a", "test_b": "test_b", "hidden_labels": "test_labels"}
MIN_ROWS = 2_000
GENERATOR_VERSION = 4
"""Version of the written files (4: the hidden labels file holds `true_fraud` and the training rows whose
label hides it); a manifest of another version is regenerated."""
SIMULATION_VERSION = 3
"""Version of the simulated events (it seeds the random streams): version 4 wrote the same events as 3."""

# Id columns (hex hash strings) and the entity namespace each draws from: equal entity, equal string.
ID_NAMESPACES = {
    "event_id": 1, "user_id": 2, "opposing_id": 2, "cert_no": 3, "card_cert_no": 3,
    "opposing_cert_no": 3, "income_card_cert_no": 3, "phone_no": 4, "card_mobile": 4,
    "opposing_user_phone": 4, "income_card_mobile": 4, "bank_card_no": 5, "income_card_no": 5,
    "device_sign": 6, "client_ip": 7, "wireless_mac": 8, "wifi_node_name": 9,
}
# Text columns: integer codes into these vocabularies; code 0 is the missing marker "-1".
VOCABULARIES = {
    "sample_seg": ("-1", "INS", "OOT"),
    "network": ("-1", "wifi", "4g", "3g"),
    "mobile_oper_platform": ("-1", "ios", "android", "other"),
    "operation_channel": ("-1", "app", "pc", "wap", "other"),
    "pay_scene": (
        "-1", "淘宝实物担保", "线下扫码", "生活缴费", "手机充值", "站内即时到账", "转账到卡", "发红包", "信用卡还款",
    ),
    "income_card_bank_code": ("-1", "ICBC", "CCB", "ABC", "BOC", "CMB", "COMM", "PSBC", "CIB", "SPDB", "CMBC"),
    "version": ("-1", "10.0.18", "10.1.0", "10.1.2", "10.1.5", "10.1.8", "10.1.10", "10.1.12"),
}
INT_COLUMNS = (
    "ip_prov", "ip_city", "cert_prov", "cert_city", "card_bin_prov", "card_bin_city", "card_mobile_prov",
    "card_mobile_city", "card_cert_prov", "card_cert_city", "is_one_people", "province", "city",
    "is_peer_pay", "is_fraud",
)

WIFI, MOBILE_4G, MOBILE_3G = 1, 2, 3
IOS, ANDROID, OTHER_PLATFORM = 1, 2, 3
APP, PC, WAP, OTHER_CHANNEL = 1, 2, 3, 4
TAOBAO, QR_CODE, UTILITIES, PHONE_TOPUP, ACCOUNT_TRANSFER, CARD_TRANSFER, RED_PACKET, CARD_REPAYMENT = range(1, 9)
NORMAL, TAKEOVER, STOLEN_PHONE, DEVICE_FARM = 0, 1, 2, 3
VERSION_RELEASE_DAYS = ("2017-06-01", "2017-09-01", "2017-10-10", "2017-11-20", "2017-12-25", "2018-01-20", "2018-02-20")

SECONDS_PER_DAY = 86_400
NATIONAL_DAY = ("2017-10-01", "2017-10-08")
SPRING_FESTIVAL = ("2018-02-15", "2018-02-21")
# Province weights (roughly population); ids 1..31, cities prov*100 + 1.. (1 is the capital).
PROVINCE_WEIGHTS = np.array([
    11.0, 10.0, 9.5, 8.3, 8.0, 7.5, 6.8, 6.2, 5.9, 5.6, 4.8, 4.7, 4.6, 4.4, 3.9, 3.8, 3.8, 3.7, 3.5, 3.0,
    2.7, 2.6, 2.5, 2.4, 2.4, 2.2, 1.6, 0.9, 0.7, 0.6, 0.3,
])
N_PROVINCES = len(PROVINCE_WEIGHTS)
HOUR_WEIGHTS = np.array([
    1.2, 0.7, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 4.5, 5.0, 5.5, 6.0, 5.5, 5.0, 5.0, 5.0, 5.5, 6.0, 6.5, 7.0, 7.0, 5.5, 3.0,
])
# Amount log-scale offset per scene (added to the user's scale); phone top-ups and red packets use fixed values.
SCENE_AMOUNT_SHIFT = np.array([0.0, 0.3, -0.5, 0.5, 0.0, 0.6, 1.6, 0.0, 2.4])
TOPUP_VALUES = np.array([10.0, 30.0, 50.0, 100.0, 200.0, 300.0])
RED_PACKET_VALUES = np.array([1.88, 5.2, 6.66, 8.88, 52.0, 66.0, 88.0, 100.0, 188.0, 200.0])
MAX_AMOUNT = 50_000.0


@dataclass(frozen=True)
class Window:
    """One file's time window, its share of the rows and its drift settings."""

    part: str
    first_day: str
    last_day: str
    row_share: float
    fraud_rate: float
    tactic_mix: tuple[float, float, float]
    missing_scale: float
    amount_inflation: float
    share_3g: float
    campaign_max_days: int
    pool_sizes: tuple[int, int]
    blocked_share: float

    def days(self) -> np.ndarray:
        """Days (since 1970-01-01) of the window, first to last inclusive."""
        return np.arange(_day(self.first_day), _day(self.last_day) + 1)


WINDOWS = (
    Window("train", "2017-09-05", "2017-11-05", 0.50, 0.0170, (0.55, 0.38, 0.07), 1.0, 1.00, 0.20, 4, (4, 12), 0.009),
    Window("test_a", "2018-01-05", "2018-02-05", 0.25, 0.0170, (0.47, 0.33, 0.20), 1.6, 1.06, 0.12, 6, (6, 16), 0.008),
    Window("test_b", "2018-02-06", "2018-03-06", 0.25, 0.0175, (0.38, 0.30, 0.32), 2.8, 1.09, 0.10, 8, (8, 20), 0.011),
)
# Share of rows set to -1 in train, per group of columns that go missing together.
MISSING_RATES = {
    ("device_sign",): 0.015, ("client_ip",): 0.008, ("network",): 0.01, ("wireless_mac",): 0.01,
    ("wifi_node_name",): 0.02, ("ip_prov", "ip_city"): 0.02, ("ip_city",): 0.03, ("cert_prov", "cert_city"): 0.005,
    ("card_bin_prov", "card_bin_city"): 0.01, ("card_mobile_prov", "card_mobile_city"): 0.03,
    ("card_cert_prov", "card_cert_city"): 0.01, ("mobile_oper_platform",): 0.01, ("operation_channel",): 0.005,
    ("version",): 0.02, ("phone_no",): 0.005, ("card_mobile",): 0.01, ("income_card_bank_code",): 0.02,
    ("is_one_people",): 0.005,
}
# Extra missing share in test_b only: a logging change.
TEST_B_EXTRA_MISSING = {("card_mobile_prov", "card_mobile_city"): 0.2, ("ip_city",): 0.1, ("version",): 0.1}

Columns = dict[str, np.ndarray]


def generate(
    rows: int, seed: int, out_dir: Path, file_format: str = "parquet", time_resolution: str = "second",
    grey_fraud_share: float | None = None,
) -> dict[str, Path]:
    """Write train, test_a, test_b, hidden test labels and a manifest into `out_dir`; return the 4 data paths."""
    _check_arguments(rows, seed, file_format, time_resolution)
    _check_grey_fraud_share(grey_fraud_share)
    out_dir = Path(out_dir)
    events = simulate(rows, seed, grey_fraud_share)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir.parent)
    temp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        names = _write_files(events, seed, temp_dir, file_format, time_resolution, grey_fraud_share)
        _publish(temp_dir, out_dir, names)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return {key: out_dir / name for key, name in names.items() if key != "manifest"}


def generate_from_config(data_cfg) -> dict[str, Path]:
    """`generate` with the keys of `conf/data/synthetic.yaml` (rows, seed, dir, file_format, time_resolution,
    grey_fraud_share)."""
    return generate(
        rows=int(data_cfg.rows),
        seed=int(data_cfg.seed),
        out_dir=Path(str(data_cfg.dir)),
        file_format=str(data_cfg.file_format),
        time_resolution=str(data_cfg.get("time_resolution", "second")),
        grey_fraud_share=_share_setting(data_cfg.get("grey_fraud_share")),
    )


def _share_setting(value) -> float | None:
    """`data.grey_fraud_share` as a float, or None (the rule engine's own share)."""
    return None if value is None else float(value)


def _check_grey_fraud_share(share: float | None) -> None:
    """The share of blocked (grey) events that are really fraud must lie in [0, 1]."""
    if share is not None and not 0.0 <= share <= 1.0:
        raise AtecError(f"data.grey_fraud_share={share}: give a share in [0, 1], or null for the rule engine's own")


def is_current(data_cfg) -> bool:
    """Whether `data_cfg.dir` holds a complete generation of this generator version with these settings."""
    try:
        manifest = read_manifest(Path(str(data_cfg.dir)))
    except (OSError, ValueError):
        return False
    wanted = {"generator_version": GENERATOR_VERSION, "rows": int(data_cfg.rows), "seed": int(data_cfg.seed),
              "file_format": str(data_cfg.file_format), "time_resolution": str(data_cfg.get("time_resolution", "second")),
              "grey_fraud_share": _share_setting(data_cfg.get("grey_fraud_share"))}
    return all(manifest.get(key) == value for key, value in wanted.items())


def read_manifest(out_dir: Path) -> dict:
    """The manifest of a generated directory (rows, seed, per-file counts and digests)."""
    return json.loads((Path(out_dir) / MANIFEST_NAME).read_text(encoding="utf-8"))


@dataclass
class SyntheticEvents:
    """All events in file order (train, test_a, test_b; time-sorted within each) as internal arrays.

    Id columns hold entity numbers (-1 missing), text columns vocabulary codes (0 missing), plus
    `ts` (seconds since 1970-01-01) and `tactic` (0 normal, 1 takeover, 2 stolen phone, 3 device farm).
    """

    columns: Columns
    part_rows: dict[str, int]

    def part_slice(self, part: str) -> slice:
        """Row range of one part."""
        start = 0
        for name, count in self.part_rows.items():
            if name == part:
                return slice(start, start + count)
            start += count
        raise KeyError(part)


def simulate(rows: int, seed: int, grey_fraud_share: float | None = None) -> SyntheticEvents:
    """Simulate `rows` events (about 50/25/25 % over train, test_a, test_b) without writing anything.

    `grey_fraud_share`: the share of blocked (grey) events that are really fraud; None lets the
    legacy rule engine block its top-scoring events, whatever they are.
    """
    _check_rows_and_seed(rows, seed)
    streams = np.random.SeedSequence([seed, SIMULATION_VERSION]).spawn(2 + len(WINDOWS))
    world_stream, label_stream, *window_streams = streams
    world = _build_world(rows, np.random.default_rng(world_stream))
    part_rows = _part_counts(rows)

    def window_events(index: int) -> Columns:
        window, rng = WINDOWS[index], np.random.default_rng(window_streams[index])
        fraud = _fraud_events(world, window, index, round(part_rows[window.part] * window.fraud_rate), rng)
        return _concat([_normal_events(world, window, part_rows[window.part] - len(fraud["ts"]), rng), fraud])

    with ThreadPoolExecutor(len(WINDOWS)) as pool:  # own random stream per window: same result in any order
        pieces = list(pool.map(window_events, range(len(WINDOWS))))
    columns = _concat(pieces, compact=True)
    del pieces
    _sort_by_time(columns)  # windows are disjoint and in file order
    rng = np.random.default_rng(label_stream)
    _assign_labels(columns, columns.pop("payee"), world, part_rows, rng, grey_fraud_share)
    _apply_missing(columns, part_rows, rng)
    columns["event_id"] = np.arange(rows, dtype=np.int64)
    part_codes = np.repeat([1, 2, 2], [part_rows[w.part] for w in WINDOWS])
    columns["sample_seg"] = part_codes.astype(np.int8)
    return SyntheticEvents(columns, part_rows)


def _check_rows_and_seed(rows: int, seed: int) -> None:
    """Reject a row count too small for every window to hold fraud, grey and white events, or a negative seed."""
    if int(rows) < MIN_ROWS:
        raise AtecError(f"data.rows={rows}: the synthetic generator needs at least {MIN_ROWS} rows")
    if int(seed) < 0:
        raise AtecError(f"data.seed={seed}: the synthetic generator needs a seed >= 0")


def _check_arguments(rows: int, seed: int, file_format: str, time_resolution: str) -> None:
    """Reject settings the generator cannot honour, naming the config key."""
    _check_rows_and_seed(rows, seed)
    if file_format not in FILE_FORMATS:
        raise AtecError(f"data.file_format={file_format!r}: choose one of {', '.join(FILE_FORMATS)}")
    if time_resolution not in TIME_RESOLUTIONS:
        raise AtecError(f"data.time_resolution={time_resolution!r}: choose one of {', '.join(TIME_RESOLUTIONS)}")


def _part_counts(rows: int) -> dict[str, int]:
    """Rows per part: shares of the total, the last part taking the rounding remainder."""
    counts = {w.part: int(round(rows * w.row_share)) for w in WINDOWS[:-1]}
    counts[WINDOWS[-1].part] = rows - sum(counts.values())
    return counts


def _day(date: str) -> int:
    """Days since 1970-01-01 of an ISO date."""
    return int(np.datetime64(date, "D").astype(np.int64))


# ----------------------------------------------------------------------------------------------
# The world: users, parties (payees), cards, devices and the rings' pools
# ----------------------------------------------------------------------------------------------


@dataclass
class World:
    """Entities and their fixed attributes; index spaces are laid out in blocks (see the `_*_fields` builders)."""

    # users [0, n_users): habits, household, their device and card index ranges, trips
    n_users: int
    home_prov: np.ndarray
    home_city: np.ndarray
    user_cert_prov: np.ndarray
    user_cert_city: np.ndarray
    user_phone_prov: np.ndarray
    user_phone_city: np.ndarray
    activity_cdf: np.ndarray
    victim_cdf: np.ndarray
    active_from: np.ndarray
    active_to: np.ndarray
    peak_hour: np.ndarray
    amount_scale: np.ndarray
    household: np.ndarray
    home_ip_phase: np.ndarray
    device_start: np.ndarray
    device_count: np.ndarray
    switch_time: np.ndarray
    card_start: np.ndarray
    card_count: np.ndarray
    usual_count: np.ndarray
    uses_pc: np.ndarray
    trip_start: np.ndarray
    trip_end: np.ndarray
    trip_prov: np.ndarray
    # parties: users, then strangers, merchants, mules (rings' payees and fake shops)
    party_prov: np.ndarray
    party_city: np.ndarray
    cert_prov: np.ndarray
    cert_city: np.ndarray
    phone_prov: np.ndarray
    phone_city: np.ndarray
    party_card: np.ndarray
    merchant_scene: np.ndarray
    stranger_start: int
    merchant_start: int
    merchant_cdf: np.ndarray
    mule_start: int
    usual_payees: np.ndarray
    # cards: users' cards, then one per non-user party
    card_cert: np.ndarray
    card_phone: np.ndarray
    card_bin_prov: np.ndarray
    card_bin_city: np.ndarray
    card_bank: np.ndarray
    # devices: users' devices (incl. a next phone), shop devices, ring devices, farm devices
    device_platform: np.ndarray
    device_lag_days: np.ndarray
    shop_device_start: int
    shops_per_province: int
    ring_device_start: int
    farm_device_start: int
    # networks
    nat_per_province: int
    nat_count: np.ndarray
    nat_start: int
    hotspots_per_province: int
    hotspot_ip_start: int
    hotspot_mac_start: int
    ring_ip_start: int
    ring_mac_start: int
    # rings
    n_rings: int
    ring_prov: np.ndarray


RING_SLOTS = 4096  # pool slots per ring (devices, proxy IPs, mules), rotated through over the campaigns
PARTY_STRANGER_SHARE = 1 / 25  # strangers per row: one-off payees are mostly first-time


def _build_world(rows: int, rng: np.random.Generator) -> World:
    """Draw every entity and its habits, scaled to the number of rows."""
    n_users = max(400, rows // 12)
    n_strangers = max(200, int(rows * PARTY_STRANGER_SHARE))
    n_merchants = max(60, rows // 300)
    n_rings = max(3, round(rows / 80_000))
    users = _user_fields(rng, n_users)
    parties = _party_fields(rng, users, n_strangers, n_merchants, n_rings)
    cards = _card_fields(rng, users, parties)
    devices = _device_fields(rng, users, n_rings)
    networks = _network_layout(users)
    return World(n_rings=n_rings, ring_prov=_provinces(rng, n_rings), **users, **parties, **cards, **devices, **networks)


def _user_fields(rng: np.random.Generator, n_users: int) -> dict:
    """Users: where they live and come from, household, habits, devices, cards, payees and trips."""
    timeline = (_day(WINDOWS[0].first_day) * SECONDS_PER_DAY, (_day(WINDOWS[-1].last_day) + 1) * SECONDS_PER_DAY)
    household = _households(rng, n_users)
    home_prov = _provinces(rng, n_users)[household]
    home_city = _cities(rng, home_prov)[household]
    migrant = rng.random(n_users) < 0.2
    cert_prov = np.where(migrant, _provinces(rng, n_users), home_prov)
    phone_prov = np.where(rng.random(n_users) < 0.7, home_prov, cert_prov)
    cert_city = np.where(migrant, _cities(rng, cert_prov), home_city)
    activity = rng.lognormal(0.0, 1.0, n_users)
    device_count = rng.choice([1, 2, 3], n_users, p=[0.7, 0.25, 0.05])
    card_count = rng.choice([1, 2, 3], n_users, p=[0.6, 0.3, 0.1])
    never = np.iinfo(np.int64).max
    trip_start, trip_end, trip_prov = _trips(rng, n_users, timeline, migrant, cert_prov)
    return {
        "n_users": n_users,
        "home_prov": home_prov,
        "home_city": home_city,
        "user_cert_prov": cert_prov,
        "user_cert_city": cert_city,
        "user_phone_prov": phone_prov,
        "user_phone_city": np.where(phone_prov == home_prov, home_city, cert_city),
        "activity_cdf": np.cumsum(activity) / activity.sum(),
        "victim_cdf": np.cumsum(np.sqrt(activity)) / np.sqrt(activity).sum(),
        "active_from": np.where(rng.random(n_users) < 0.18, rng.integers(*timeline, n_users), 0),
        "active_to": np.where(rng.random(n_users) < 0.08, rng.integers(*timeline, n_users), never),
        "peak_hour": np.where(
            rng.random(n_users) < 0.04,
            rng.integers(23, 27, n_users) % 24,
            rng.choice(24, n_users, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum()),
        ),
        "amount_scale": rng.normal(4.0, 0.9, n_users),
        "household": household,
        "home_ip_phase": rng.integers(0, 30, n_users),
        "device_start": np.concatenate([[0], np.cumsum(device_count + 1)[:-1]]),  # +1: room for a next phone
        "device_count": device_count,
        "switch_time": np.where(rng.random(n_users) < 0.08, rng.integers(*timeline, n_users), never),
        "card_start": np.concatenate([[0], np.cumsum(card_count)[:-1]]),
        "card_count": card_count,
        "usual_count": rng.integers(2, 9, n_users),
        "uses_pc": rng.random(n_users) < 0.08,
        "trip_start": trip_start,
        "trip_end": trip_end,
        "trip_prov": trip_prov,
    }


def _party_fields(rng: np.random.Generator, users: dict, n_strangers: int, n_merchants: int, n_rings: int) -> dict:
    """Parties (payer or payee): users, then strangers, merchants and the rings' mules, with their locations."""
    n_users = users["n_users"]
    n_user_cards = int(users["card_count"].sum())
    mule_start = n_users + n_strangers + n_merchants
    others = mule_start + n_rings * RING_SLOTS - n_users
    other_prov = _provinces(rng, others)
    other_city = _cities(rng, other_prov)
    popularity = 1.0 / np.arange(1, n_merchants + 1) ** 1.05
    return {
        "party_prov": np.concatenate([users["home_prov"], other_prov]),
        "party_city": np.concatenate([users["home_city"], other_city]),
        "cert_prov": np.concatenate([users["user_cert_prov"], other_prov]),
        "cert_city": np.concatenate([users["user_cert_city"], other_city]),
        "phone_prov": np.concatenate([users["user_phone_prov"], other_prov]),
        "phone_city": np.concatenate([users["user_phone_city"], other_city]),
        "party_card": np.concatenate([users["card_start"], n_user_cards + np.arange(others)]),
        "merchant_scene": rng.choice([TAOBAO, QR_CODE, UTILITIES, PHONE_TOPUP], n_merchants, p=[0.45, 0.37, 0.1, 0.08]),
        "stranger_start": n_users,
        "merchant_start": n_users + n_strangers,
        "merchant_cdf": np.cumsum(popularity) / popularity.sum(),
        "mule_start": mule_start,
        "usual_payees": _usual_payees(rng, n_users, n_users + n_strangers, n_merchants, popularity),
    }


def _card_fields(rng: np.random.Generator, users: dict, parties: dict) -> dict:
    """Cards: each user's (sometimes a relative's, issued at home or by a national bank), then one per other party."""
    n_users = users["n_users"]
    owner = np.repeat(np.arange(n_users), users["card_count"])
    n_cards = len(owner)
    other_parties = np.arange(n_users, len(parties["party_prov"]))
    relatives = rng.random(n_cards) < 0.04
    cert = np.minimum(np.where(relatives, users["household"][owner] + rng.integers(0, 2, n_cards), owner), n_users - 1)
    phone = np.where(rng.random(n_cards) < 0.06, cert, owner)
    bin_prov = np.where(rng.random(n_cards) < 0.6, users["home_prov"][owner], _provinces(rng, n_cards))
    other_prov = parties["party_prov"][other_parties]
    return {
        "card_cert": np.concatenate([cert, other_parties]),
        "card_phone": np.concatenate([phone, other_parties]),
        "card_bin_prov": np.concatenate([bin_prov, other_prov]),
        "card_bin_city": np.concatenate([_capitals(bin_prov), _capitals(other_prov)]),
        "card_bank": rng.integers(1, len(VOCABULARIES["income_card_bank_code"]), n_cards + len(other_parties)),
    }


def _device_fields(rng: np.random.Generator, users: dict, n_rings: int) -> dict:
    """Devices: users' (with room for a next phone), shop devices per province, then ring and farm blocks."""
    n_user_devices = int(users["device_count"].sum()) + users["n_users"]
    shops_per_province = 3
    n_static = n_user_devices + N_PROVINCES * shops_per_province
    return {
        "device_platform": rng.choice([IOS, ANDROID, OTHER_PLATFORM], n_static, p=[0.32, 0.64, 0.04]),
        "device_lag_days": rng.exponential(25.0, n_static),
        "shop_device_start": n_user_devices,
        "shops_per_province": shops_per_province,
        "ring_device_start": n_static,
        "farm_device_start": n_static + n_rings * RING_SLOTS,
    }


def _network_layout(users: dict) -> dict:
    """Blocks of the IP and Wi-Fi index spaces: homes, carrier NATs (by users per province), hotspots, rings."""
    n_users = users["n_users"]
    nat_count = np.maximum(2, np.bincount(users["home_prov"], minlength=N_PROVINCES + 1) // 150)
    nat_per_province = int(nat_count.max())
    hotspots_per_province = max(4, n_users // 400)
    nat_start = n_users * 4  # each household rotates through 4 home IPs
    hotspot_ip_start = nat_start + nat_per_province * (N_PROVINCES + 1)
    hotspot_mac_start = n_users
    return {
        "nat_per_province": nat_per_province,
        "nat_count": nat_count,
        "nat_start": nat_start,
        "hotspots_per_province": hotspots_per_province,
        "hotspot_ip_start": hotspot_ip_start,
        "hotspot_mac_start": hotspot_mac_start,
        "ring_ip_start": hotspot_ip_start + hotspots_per_province * (N_PROVINCES + 1),
        "ring_mac_start": hotspot_mac_start + hotspots_per_province * (N_PROVINCES + 1),
    }


def _provinces(rng: np.random.Generator, n: int) -> np.ndarray:
    """Province ids 1..31 drawn by population."""
    return (rng.choice(N_PROVINCES, n, p=PROVINCE_WEIGHTS / PROVINCE_WEIGHTS.sum()) + 1).astype(np.int32)


def _cities(rng: np.random.Generator, provinces: np.ndarray) -> np.ndarray:
    """City ids prov*100 + k: the capital (k=1) most often, up to 12 cities a province."""
    local = np.minimum(rng.exponential(1.8, len(provinces)).astype(np.int32), 4 + provinces % 9 - 1)
    return provinces * 100 + 1 + local


def _capitals(provinces: np.ndarray) -> np.ndarray:
    """The capital city id of each province."""
    return provinces * 100 + 1


def _households(rng: np.random.Generator, n_users: int) -> np.ndarray:
    """Household head of each user: 15 % of users live with the previous user's household."""
    head = (rng.random(n_users) >= 0.15) | (np.arange(n_users) == 0)
    return np.maximum.accumulate(np.where(head, np.arange(n_users), 0))


def _usual_payees(
    rng: np.random.Generator, n_users: int, n_people: int, n_merchants: int, popularity: np.ndarray,
) -> np.ndarray:
    """Up to 8 habitual payees per user: favourite merchants (by popularity) and friends."""
    shape = (n_users, 8)
    merchants = n_people + rng.choice(n_merchants, shape, p=popularity / popularity.sum())
    friends = rng.integers(0, n_users, shape)
    return np.where(rng.random(shape) < 0.6, merchants, friends)


def _trips(
    rng: np.random.Generator, n_users: int, timeline: tuple[int, int], migrant: np.ndarray, cert_prov: np.ndarray,
):
    """Two trip slots per user: a holiday or random trip, and the Spring Festival trip home of migrants."""
    national_day = rng.random(n_users) < 0.12
    holiday_start = (_day(NATIONAL_DAY[0]) - 1 + rng.integers(0, 4, n_users)) * SECONDS_PER_DAY
    random_start = rng.integers(*timeline, n_users)
    first_start = np.where(national_day, holiday_start, random_start)
    first_travels = national_day | (rng.random(n_users) < 0.15)
    first_end = np.where(first_travels, first_start + rng.integers(2, 9, n_users) * SECONDS_PER_DAY, first_start)
    goes_home = migrant & (rng.random(n_users) < 0.55)
    home_start = (_day(SPRING_FESTIVAL[0]) - 6 + rng.integers(0, 6, n_users)) * SECONDS_PER_DAY
    home_end = np.where(goes_home, home_start + rng.integers(7, 15, n_users) * SECONDS_PER_DAY, home_start)
    return (
        np.stack([first_start, home_start], axis=1),
        np.stack([first_end, home_end], axis=1),
        np.stack([_provinces(rng, n_users), cert_prov], axis=1),
    )


# ----------------------------------------------------------------------------------------------
# Normal events
# ----------------------------------------------------------------------------------------------


def _day_weights(days: np.ndarray) -> np.ndarray:
    """Relative volume per day: weekends, the National Day holiday, the Spring Festival, slow growth."""
    weights = 1.0 + 0.0008 * (days - days[0])
    weights = weights * np.where((days + 3) % 7 >= 5, 1.08, 1.0)  # 1970-01-01 was a Thursday
    weights = weights * np.where((days >= _day(NATIONAL_DAY[0])) & (days <= _day(NATIONAL_DAY[1])), 1.35, 1.0)
    weights = weights * np.where((days >= _day(SPRING_FESTIVAL[0]) - 7) & (days < _day(SPRING_FESTIVAL[0])), 1.2, 1.0)
    return weights * np.where((days >= _day(SPRING_FESTIVAL[0])) & (days <= _day(SPRING_FESTIVAL[1])), 1.7, 1.0)


def _session_sizes(rng: np.random.Generator, n_events: int) -> np.ndarray:
    """Sizes of sessions adding up to exactly `n_events`: mostly 1, sometimes a burst of up to 10."""
    guess = int(n_events / 1.2) + 16
    while True:
        sizes = np.where(rng.random(guess) < 0.82, 1, np.minimum(1 + rng.geometric(0.45, guess), 10))
        total = np.cumsum(sizes)
        if total[-1] >= n_events:
            break
        guess *= 2
    keep = int(np.searchsorted(total, n_events)) + 1
    sizes = sizes[:keep]
    sizes[-1] -= int(total[keep - 1] - n_events)
    return sizes


def _session_users(rng: np.random.Generator, world: World, session_day: np.ndarray) -> np.ndarray:
    """For each session, a user active that day, by activity rate (redrawn until active)."""
    noon = session_day * SECONDS_PER_DAY + SECONDS_PER_DAY // 2
    users = np.searchsorted(world.activity_cdf, rng.random(len(noon)), side="right")
    for _ in range(64):
        inactive = np.flatnonzero((world.active_from[users] > noon) | (world.active_to[users] <= noon))
        if len(inactive) == 0:
            break
        users[inactive] = np.searchsorted(world.activity_cdf, rng.random(len(inactive)), side="right")
    return users


def _normal_events(world: World, window: Window, n_events: int, rng: np.random.Generator) -> Columns:
    """Legitimate events of one window: sessions of users following their habits."""
    sizes = _session_sizes(rng, n_events)
    days = window.days()
    weights = _day_weights(days)
    session_day = np.sort(rng.choice(days, len(sizes), p=weights / weights.sum()))
    user = _session_users(rng, world, session_day)
    habitual = rng.random(len(sizes)) < 0.7
    hour = np.where(
        habitual,
        np.round(rng.normal(world.peak_hour[user], 2.5)).astype(np.int64) % 24,
        rng.choice(24, len(sizes), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum()),
    )
    start = session_day * SECONDS_PER_DAY + hour * 3600 + rng.integers(0, 3600, len(sizes))
    session = _session_context(world, window, user, start, hour, rng)

    event_session = np.repeat(np.arange(len(sizes)), sizes)
    columns = {name: values[event_session] for name, values in session.items()}
    columns["ts"] = _group_times(start, sizes, rng.exponential(75.0, n_events).astype(np.int64), _last_second(window))
    user = user[event_session]
    payee, scene = _normal_payees(world, user, columns["ts"], rng)
    card = world.card_start[user] + np.where(rng.random(n_events) < 0.78, 0, rng.integers(0, world.card_count[user]))
    repay = rng.random(n_events) < 0.025
    scene = np.where(repay, CARD_REPAYMENT, scene)
    own_card = world.card_start[user] + rng.integers(0, world.card_count[user])
    columns.update(_party_columns(world, user, card))
    columns.update(_payee_columns(world, scene, payee, user, own_card))
    columns["amt"] = _normal_amounts(world, user, scene, window, rng)
    columns["is_peer_pay"] = ((scene == TAOBAO) & (rng.random(n_events) < 0.05)).astype(np.int32)
    columns["tactic"] = np.full(n_events, NORMAL, dtype=np.int8)
    return columns


def _last_second(window: Window) -> int:
    """The window's last second (23:59:59 of its last day)."""
    return (_day(window.last_day) + 1) * SECONDS_PER_DAY - 1


def _group_times(start: np.ndarray, sizes: np.ndarray, gaps: np.ndarray, last_second: int) -> np.ndarray:
    """Times of events in groups (a session, a victim's payments): the group's start, then `gaps` apart
    (each group's first gap ignored); a group that would run past `last_second` starts earlier instead."""
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    gaps = gaps.copy()
    gaps[first] = 0
    elapsed = np.cumsum(gaps)
    offset = elapsed - np.repeat(elapsed[first], sizes)
    span = offset[first + sizes - 1]
    return np.repeat(np.minimum(start, last_second - span), sizes) + offset


def _session_context(
    world: World, window: Window, user: np.ndarray, start: np.ndarray, hour: np.ndarray, rng: np.random.Generator,
) -> Columns:
    """Where and on what a session happens: device, network, IP, Wi-Fi, channel, app version."""
    n = len(user)
    traveling_slot = (world.trip_start[user] <= start[:, None]) & (start[:, None] < world.trip_end[user])
    traveling = traveling_slot.any(axis=1)
    trip_prov = world.trip_prov[user, np.argmax(traveling_slot, axis=1)]
    location = np.where(traveling, trip_prov, world.party_prov[user])

    pick = rng.random(n)
    main_device = world.device_start[user] + np.where(start >= world.switch_time[user], world.device_count[user], 0)
    own_device = world.device_start[user] + rng.integers(0, world.device_count[user])
    family_device = world.device_start[world.household[user]]
    shop_slot = (location - 1) * world.shops_per_province + rng.integers(0, world.shops_per_province, n)
    shop_device = world.shop_device_start + shop_slot
    device = np.select([pick < 0.87, pick < 0.955, pick < 0.99], [main_device, own_device, family_device], shop_device)

    at_home_wifi = ~traveling & (rng.random(n) < 0.35 + 0.3 * ((hour < 8) | (hour >= 19)))
    hotspot = ~at_home_wifi & (rng.random(n) < np.where(traveling, 0.3, 0.06))
    mobile = ~at_home_wifi & ~hotspot
    network = np.where(mobile, np.where(rng.random(n) < window.share_3g, MOBILE_3G, MOBILE_4G), WIFI)

    home = world.household[user]
    day = start // SECONDS_PER_DAY
    home_ip = home * 4 + ((day + world.home_ip_phase[home]) // 30) % 4
    hotspot_slot = (location - 1) * world.hotspots_per_province + rng.integers(0, world.hotspots_per_province, n)
    nat_ip = world.nat_start + location * world.nat_per_province + rng.integers(0, world.nat_count[location])
    client_ip = np.select([at_home_wifi, hotspot], [home_ip, world.hotspot_ip_start + hotspot_slot], nat_ip)
    wireless_mac = np.select([at_home_wifi, hotspot], [home, world.hotspot_mac_start + hotspot_slot], -1)
    common_hotspot_name = rng.random(n) < 0.5
    hotspot_name = world.hotspot_mac_start + np.where(common_hotspot_name, hotspot_slot % 3, hotspot_slot)
    wifi_node_name = np.select([at_home_wifi, hotspot], [home, hotspot_name], -1)
    ip_city = np.select([at_home_wifi, traveling], [world.party_city[user], _capitals(location)], _capitals(location))

    channel = np.where(
        world.uses_pc[user] & (rng.random(n) < 0.4),
        PC,
        rng.choice([APP, WAP, OTHER_CHANNEL], n, p=[0.93, 0.05, 0.02]),
    )
    browser = (channel == PC) | (channel == WAP)  # no app version
    return {
        "device_sign": device,
        "network": network.astype(np.int8),
        "client_ip": client_ip,
        "wireless_mac": wireless_mac,
        "wifi_node_name": wifi_node_name,
        "ip_prov": location,
        "ip_city": ip_city,
        "operation_channel": channel.astype(np.int8),
        "mobile_oper_platform": np.where(channel == PC, OTHER_PLATFORM, world.device_platform[device]).astype(np.int8),
        "version": np.where(browser, 0, _app_version(start, world.device_lag_days[device])).astype(np.int8),
    }


def _app_version(ts: np.ndarray, lag_days: np.ndarray) -> np.ndarray:
    """Version code of the app on a device that installs each release `lag_days` after it ships."""
    releases = np.array([_day(d) for d in VERSION_RELEASE_DAYS]) * SECONDS_PER_DAY
    return np.maximum(np.searchsorted(releases, ts - lag_days * SECONDS_PER_DAY, side="right"), 1)


def _normal_payees(
    world: World, user: np.ndarray, ts: np.ndarray, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Payee party and scene: a usual payee, a popular merchant or a one-off stranger."""
    n = len(user)
    pick = rng.random(n)
    usual = world.usual_payees[user, rng.integers(0, world.usual_count[user])]
    popular = world.merchant_start + np.searchsorted(world.merchant_cdf, rng.random(n), side="right")
    n_merchants = world.mule_start - world.merchant_start
    stranger = np.where(
        rng.random(n) < 0.7,
        rng.integers(world.stranger_start, world.merchant_start, n),
        world.merchant_start + rng.integers(0, n_merchants, n),
    )
    payee = np.select([pick < 0.55, pick < 0.88], [usual, popular], stranger)
    is_merchant = payee >= world.merchant_start
    day = ts // SECONDS_PER_DAY
    festival = (day >= _day(SPRING_FESTIVAL[0])) & (day <= _day(SPRING_FESTIVAL[1]))
    red_packet = rng.random(n) < np.where(festival, 0.35, 0.08)
    person_scene = np.where(red_packet, RED_PACKET, np.where(rng.random(n) < 0.67, ACCOUNT_TRANSFER, CARD_TRANSFER))
    merchant_scene = world.merchant_scene[np.where(is_merchant, payee - world.merchant_start, 0)]
    return payee, np.where(is_merchant, merchant_scene, person_scene)


def _normal_amounts(
    world: World, user: np.ndarray, scene: np.ndarray, window: Window, rng: np.random.Generator,
) -> np.ndarray:
    """Log-normal amounts per user and scene; fixed values for top-ups and red packets; inflated per window."""
    n = len(user)
    amount = np.exp(rng.normal(world.amount_scale[user] + SCENE_AMOUNT_SHIFT[scene], 0.85)) * window.amount_inflation
    amount = np.where(scene == PHONE_TOPUP, rng.choice(TOPUP_VALUES, n), amount)
    amount = np.where(scene == RED_PACKET, rng.choice(RED_PACKET_VALUES, n), amount)
    return np.round(np.clip(amount, 0.01, MAX_AMOUNT), 2)


def _party_columns(world: World, user: np.ndarray, card: np.ndarray) -> Columns:
    """The payer's own fields: ids, certificate and card locations, `is_one_people`."""
    card_cert = world.card_cert[card]
    card_phone = world.card_phone[card]
    return {
        "user_id": user,
        "cert_no": user,
        "phone_no": user,
        "cert_prov": world.cert_prov[user],
        "cert_city": world.cert_city[user],
        "bank_card_no": card,
        "card_cert_no": card_cert,
        "card_mobile": card_phone,
        "card_bin_prov": world.card_bin_prov[card],
        "card_bin_city": world.card_bin_city[card],
        "card_mobile_prov": world.phone_prov[card_phone],
        "card_mobile_city": world.phone_city[card_phone],
        "card_cert_prov": world.cert_prov[card_cert],
        "card_cert_city": world.cert_city[card_cert],
        "is_one_people": (card_cert == user).astype(np.int32),
    }


def _payee_columns(
    world: World, scene: np.ndarray, payee: np.ndarray, user: np.ndarray, own_card: np.ndarray,
) -> Columns:
    """Counterparty fields by scene: account scenes fill `opposing_*`, card scenes `income_card_*`."""
    to_card = scene == CARD_TRANSFER
    repay = scene == CARD_REPAYMENT
    to_account = ~to_card & ~repay
    income_party = np.where(repay, user, payee)
    income_card = np.where(repay, own_card, world.party_card[payee])
    has_income = to_card | repay
    opposing = np.where(to_account, payee, -1)
    return {
        "pay_scene": scene.astype(np.int8),
        "payee": payee,
        "opposing_id": opposing,
        "opposing_cert_no": opposing,
        "opposing_user_phone": opposing,
        "income_card_no": np.where(has_income, income_card, -1),
        "income_card_cert_no": np.where(has_income, income_party, -1),
        "income_card_mobile": np.where(has_income, income_party, -1),
        "income_card_bank_code": np.where(has_income, world.card_bank[income_card], 0).astype(np.int8),
        "province": np.where(has_income, world.card_bin_prov[income_card], -1),
        "city": np.where(has_income, world.card_bin_city[income_card], -1),
    }


# ----------------------------------------------------------------------------------------------
# Fraud
# ----------------------------------------------------------------------------------------------


def _fraud_events(world: World, window: Window, window_index: int, n_events: int, rng: np.random.Generator) -> Columns:
    """Exactly `n_events` fraud events of one window: ring campaigns over victims, see the module docstring.

    At least one ring campaign per day of the window, and lone thieves (a third of the victims)
    spread over every day: fraud arrives daily, as in the contest, not only in campaign bursts.
    """
    count = max(n_events // 30, len(window.days()))
    while True:
        campaigns = _with_lone_thieves(_campaigns(world, window, window_index, count, rng), world, window, window_index, rng)
        victims = _victims(world, campaigns, rng)
        per_victim = victims["probe"].astype(np.int64) + victims["payments"]
        total = np.cumsum(per_victim)
        if total[-1] >= n_events:
            break
        count *= 2
    keep = int(np.searchsorted(total, n_events)) + 1
    victims = {name: values[:keep] for name, values in victims.items()}
    per_victim = per_victim[:keep]
    per_victim[-1] -= int(total[keep - 1] - n_events)

    victim = np.repeat(np.arange(keep), per_victim)
    first = np.concatenate([[0], np.cumsum(per_victim)[:-1]])
    step = np.arange(n_events) - first[victim]
    probe = victims["probe"][victim] & (step == 0)
    after_probe = victims["probe"][victim] & (step == 1)
    gaps = np.where(after_probe, rng.exponential(1200.0, n_events), rng.exponential(240.0, n_events)).astype(np.int64)
    ts = _group_times(victims["start"], per_victim, gaps, _last_second(window))
    event = {name: values[victim] for name, values in victims.items()}
    return _fraud_columns(world, window, event, ts, probe, rng)


def _campaigns(world: World, window: Window, window_index: int, count: int, rng: np.random.Generator) -> Columns:
    """`count` campaigns: ring, tactic, start, duration, victims and the ring's pool offsets."""
    days = window.days()
    first_second = days[0] * SECONDS_PER_DAY
    span = len(days) * SECONDS_PER_DAY
    ring = rng.integers(0, world.n_rings, count)
    duration = rng.integers(SECONDS_PER_DAY // 2, window.campaign_max_days * SECONDS_PER_DAY, count)
    start = first_second + (rng.random(count) * (span - duration)).astype(np.int64)
    order = np.lexsort((start, ring))
    rank = np.empty(count, dtype=np.int64)
    ring_sorted = ring[order]
    group_start = np.searchsorted(ring_sorted, ring_sorted, side="left")
    rank[order] = np.arange(count) - group_start
    pool_offset = (window_index * (RING_SLOTS // len(WINDOWS)) + rank * 6) % RING_SLOTS  # fresh pools per window
    return {
        "ring": ring,
        "tactic": rng.choice([TAKEOVER, STOLEN_PHONE, DEVICE_FARM], count, p=window.tactic_mix),
        "start": start,
        "duration": duration,
        "victims": 3 + rng.poisson(10, count),
        "pool_offset": pool_offset,
        "pool_size": rng.integers(window.pool_sizes[0], window.pool_sizes[1] + 1, count),
        "night": rng.random(count) < 0.5,
    }


def _with_lone_thieves(rings: Columns, world: World, window: Window, window_index: int, rng: np.random.Generator) -> Columns:
    """The ring campaigns plus one-victim campaigns of lone thieves (stolen phones, some takeovers),
    half as many victims as the rings have, so that they make about a third of all victims."""
    count = max(1, int(rings["victims"].sum()) // 2)
    lone = _campaigns(world, window, window_index, count, rng)
    lone["victims"] = np.ones(count, dtype=rings["victims"].dtype)
    lone["tactic"] = rng.choice(np.array([STOLEN_PHONE, TAKEOVER], dtype=rings["tactic"].dtype), count, p=[0.7, 0.3])
    return {name: np.concatenate([rings[name], lone[name]]) for name in rings}


def _victims(world: World, campaigns: Columns, rng: np.random.Generator) -> Columns:
    """One row per victim: user, campaign attributes, start time, probe flag, number of large payments."""
    campaign = np.repeat(np.arange(len(campaigns["ring"])), campaigns["victims"])
    order = np.argsort(rng.random(len(campaign)), kind="stable")  # interleave campaigns before truncation
    campaign = campaign[order]
    n = len(campaign)
    tactic = campaigns["tactic"][campaign]
    start = campaigns["start"][campaign] + (rng.random(n) * campaigns["duration"][campaign]).astype(np.int64)
    at_night = campaigns["night"][campaign] & (rng.random(n) < 0.7)
    day_start = start // SECONDS_PER_DAY * SECONDS_PER_DAY
    night_time = day_start + rng.integers(0, 6 * 3600, n)
    day_time = day_start + rng.integers(8 * 3600, 24 * 3600, n)
    start = np.where(at_night, night_time, np.where((start - day_start) < 8 * 3600, day_time, start))
    return {
        "user": np.searchsorted(world.victim_cdf, rng.random(n), side="right"),
        "tactic": tactic,
        "ring": campaigns["ring"][campaign],
        "pool_offset": campaigns["pool_offset"][campaign],
        "pool_size": campaigns["pool_size"][campaign],
        "start": start,
        "probe": rng.random(n) < np.select([tactic == TAKEOVER, tactic == STOLEN_PHONE], [0.6, 0.3], 0.5),
        "payments": 1 + rng.poisson(np.where(tactic == STOLEN_PHONE, 1.8, 1.2)),
    }


def _pool_member(victim: Columns, rng: np.random.Generator, n: int) -> np.ndarray:
    """A slot of the ring's current pool (ring * RING_SLOTS + rotating offset + draw)."""
    slot = (victim["pool_offset"] + rng.integers(0, victim["pool_size"])) % RING_SLOTS
    return victim["ring"] * RING_SLOTS + slot


def _fraud_columns(
    world: World, window: Window, victim: Columns, ts: np.ndarray, probe: np.ndarray, rng: np.random.Generator,
) -> Columns:
    """All fields of fraud events: access by tactic, the victim's own fields, mules or probe merchants, amounts."""
    n = len(ts)
    user, farm = victim["user"], victim["tactic"] == DEVICE_FARM
    columns = {"ts": ts, **_fraud_access(world, window, victim, ts, rng)}
    mule = world.mule_start + _pool_member(victim, rng, n)
    probe_merchant = world.merchant_start + np.searchsorted(world.merchant_cdf, rng.random(n), side="right")
    payee = np.where(probe & (rng.random(n) < 0.5), probe_merchant, mule)
    mule_scene = np.where(rng.random(n) < 0.55, CARD_TRANSFER, ACCOUNT_TRANSFER)
    merchant_scene = world.merchant_scene[np.where(payee < world.mule_start, payee - world.merchant_start, 0)]
    scene = np.select([farm, payee < world.mule_start], [TAOBAO, merchant_scene], mule_scene)
    card = world.card_start[user] + np.where(rng.random(n) < 0.85, 0, rng.integers(0, world.card_count[user]))
    columns.update(_party_columns(world, user, card))
    columns.update(_payee_columns(world, scene, payee, user, card))
    columns["amt"] = _fraud_amounts(victim["tactic"], probe, window, rng)
    columns["is_peer_pay"] = (farm & (rng.random(n) < 0.15)).astype(np.int32)
    columns["tactic"] = victim["tactic"].astype(np.int8)
    return columns


def _fraud_access(world: World, window: Window, victim: Columns, ts: np.ndarray, rng: np.random.Generator) -> Columns:
    """Device, network, IP, Wi-Fi, channel, platform and app version of fraud events, by tactic."""
    n = len(ts)
    user, tactic = victim["user"], victim["tactic"]
    takeover, stolen, farm = tactic == TAKEOVER, tactic == STOLEN_PHONE, tactic == DEVICE_FARM
    ring_device = world.ring_device_start + _pool_member(victim, rng, n)
    victim_device = world.device_start[user] + np.where(ts >= world.switch_time[user], world.device_count[user], 0)
    farm_device = world.farm_device_start + _day(window.first_day) * 10_000_000 + np.arange(n)  # fresh per event
    device = np.select([takeover, stolen], [ring_device, victim_device], farm_device)

    proxy_ip = world.ring_ip_start + _pool_member(victim, rng, n)
    proxy_prov = (proxy_ip * 2654435761 % N_PROVINCES) + 1  # a fixed province per proxy IP
    on_proxy = (takeover & (rng.random(n) < 0.55)) | (farm & (rng.random(n) < 0.75))
    location = np.select([on_proxy, stolen], [proxy_prov, world.party_prov[user]], world.ring_prov[victim["ring"]])
    nat_ip = world.nat_start + location * world.nat_per_province + rng.integers(0, world.nat_count[location])
    ring_wifi = takeover & on_proxy & (rng.random(n) < 0.6)
    ring_mac = world.ring_mac_start + victim["ring"] * 8 + rng.integers(0, 2, n)
    fake_mac = farm & on_proxy & (rng.random(n) < 0.5)
    fake_mac_start = world.ring_mac_start + world.n_rings * 8  # emulators report random MACs
    network = np.where(on_proxy, WIFI, np.where(rng.random(n) < window.share_3g, MOBILE_3G, MOBILE_4G))

    farm_channel = rng.choice([APP, WAP, OTHER_CHANNEL], n, p=[0.35, 0.45, 0.2])
    channel = np.select([farm, takeover], [farm_channel, rng.choice([APP, WAP], n, p=[0.75, 0.25])], APP)
    ring_platform = np.where(rng.random(n) < 0.85, ANDROID, np.where(rng.random(n) < 0.6, IOS, OTHER_PLATFORM))
    farm_platform = np.where(rng.random(n) < 0.5, OTHER_PLATFORM, ANDROID)
    platform = np.select([stolen, farm], [world.device_platform[victim_device], farm_platform], ring_platform)
    victim_version = _app_version(ts, world.device_lag_days[victim_device])
    farm_version = np.where(rng.random(n) < 0.7, 0, 1)
    version = np.select([stolen, farm], [victim_version, farm_version], _app_version(ts, rng.exponential(60.0, n)))
    return {
        "device_sign": np.where(farm & (rng.random(n) < 0.2), -1, device),
        "network": network.astype(np.int8),
        "client_ip": np.where(on_proxy, proxy_ip, nat_ip),
        "wireless_mac": np.select([ring_wifi, fake_mac], [ring_mac, fake_mac_start + device], -1),
        "wifi_node_name": np.where(ring_wifi, ring_mac, -1),
        "ip_prov": location,
        "ip_city": _capitals(location),
        "operation_channel": channel.astype(np.int8),
        "mobile_oper_platform": platform.astype(np.int8),
        "version": np.where((channel == WAP) | (channel == PC), 0, version).astype(np.int8),
    }


def _fraud_amounts(tactic: np.ndarray, probe: np.ndarray, window: Window, rng: np.random.Generator) -> np.ndarray:
    """Probe payments of cents to a few yuan; large payments log-normal by tactic, often round hundreds."""
    n = len(tactic)
    mu = np.select([tactic == TAKEOVER, tactic == STOLEN_PHONE], [7.0, 6.6], 6.5)
    sigma = np.select([tactic == TAKEOVER, tactic == STOLEN_PHONE], [0.9, 1.0], 0.6)
    large = np.exp(rng.normal(mu, sigma)) * window.amount_inflation
    large = np.where(rng.random(n) < 0.35, np.maximum(np.round(large, -2), 100.0), large)
    small = np.where(rng.random(n) < 0.4, rng.choice([0.01, 0.1, 1.0], n), rng.uniform(0.5, 20.0, n))
    return np.round(np.clip(np.where(probe, small, large), 0.01, MAX_AMOUNT), 2)


# ----------------------------------------------------------------------------------------------
# Labels, missing values
# ----------------------------------------------------------------------------------------------


def _assign_labels(
    columns: Columns, payee: np.ndarray, world: World, part_rows: dict[str, int], rng: np.random.Generator,
    grey_fraud_share: float | None = None,
) -> None:
    """`is_fraud`: 1 fraud, 0 legit, -1 blocked by the legacy rule engine; some fraud unreported (0)."""
    n = len(columns["ts"])
    fraud = columns["tactic"] != NORMAL
    score = _legacy_rule_score(columns, payee, world) + rng.normal(0.0, 0.6, n)
    blocked = np.zeros(n, dtype=bool)
    start = 0
    for window in WINDOWS:
        rows = slice(start, start + part_rows[window.part])
        if grey_fraud_share is None:
            blocked[rows] = score[rows] > np.quantile(score[rows], 1.0 - window.blocked_share)
        else:
            blocked[rows] = _blocked_with_share(score[rows], fraud[rows], window.blocked_share, grey_fraud_share, rng)
        start = rows.stop
    label = np.where(fraud & (rng.random(n) >= 0.05), 1, 0)
    columns["is_fraud"] = np.where(blocked, -1, label).astype(np.int32)


def _blocked_with_share(score: np.ndarray, fraud: np.ndarray, blocked_share: float, fraud_share: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Block `blocked_share` of the events, `fraud_share` of them fraud: the top-scoring frauds, and
    legitimate events drawn with odds growing with their rule score (Gumbel top-k), so the blocked
    legitimate traffic looks like much of the risky legitimate traffic that stays unblocked."""
    n_blocked = int(round(blocked_share * len(score)))
    n_fraud = min(int(round(fraud_share * n_blocked)), int(fraud.sum()))
    n_legit = min(n_blocked - n_fraud, int((~fraud).sum()))
    blocked = np.zeros(len(score), dtype=bool)
    frauds, legit = np.flatnonzero(fraud), np.flatnonzero(~fraud)
    blocked[frauds[np.argsort(-score[frauds], kind="stable")[:n_fraud]]] = True
    drawn = score[legit] + rng.gumbel(0.0, 1.0, len(legit))
    blocked[legit[np.argsort(-drawn, kind="stable")[:n_legit]]] = True
    return blocked


def _legacy_rule_score(columns: Columns, payee: np.ndarray, world: World) -> np.ndarray:
    """Points of a simple production rule set; it knows each user's devices and payees from before the data."""
    user, ts, device = columns["user_id"], columns["ts"], columns["device_sign"]
    known_device = (device >= world.device_start[user]) & (device < world.device_start[user] + world.device_count[user])
    usual_slots = np.arange(world.usual_payees.shape[1]) < world.usual_count[user][:, None]
    known_payee = ((world.usual_payees[user] == payee[:, None]) & usual_slots).any(axis=1)
    new_device = ~known_device & _first_pair_occurrence(user, device, ts)
    new_payee = ~known_payee & _first_pair_occurrence(user, payee, ts)
    hour = ts % SECONDS_PER_DAY // 3600
    amount = columns["amt"]
    return (
        1.5 * new_device
        + 1.0 * new_payee
        + 1.0 * (amount >= 1000)
        + 0.8 * (amount >= 5000)
        + 0.9 * (hour < 6)
        + 0.6 * (columns["ip_prov"] != world.party_prov[user])
        + 0.5 * np.isin(columns["operation_channel"], [WAP, OTHER_CHANNEL])
    )


def _first_pair_occurrence(key_a: np.ndarray, key_b: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """True where the pair (a, b) has no event at a strictly earlier time; rows must be time-sorted."""
    with np.errstate(over="ignore"):
        pair = _splitmix64(key_a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ key_b.astype(np.uint64))
    _, first_row, pair_index = np.unique(pair, return_index=True, return_inverse=True)
    return ts == ts[first_row][pair_index]


def _apply_missing(columns: Columns, part_rows: dict[str, int], rng: np.random.Generator) -> None:
    """Set fields to missing (-1 / code 0) at the train rates, scaled up in the test windows."""
    scale = np.repeat([w.missing_scale for w in WINDOWS], [part_rows[w.part] for w in WINDOWS])
    in_test_b = np.repeat([w.part == "test_b" for w in WINDOWS], [part_rows[w.part] for w in WINDOWS])
    n = len(scale)
    for group, rate in MISSING_RATES.items():
        extra = TEST_B_EXTRA_MISSING.get(group, 0.0)
        missing = rng.random(n) < rate * scale + extra * in_test_b
        for name in group:
            marker = 0 if name in VOCABULARIES else -1
            columns[name] = np.where(missing, marker, columns[name]).astype(columns[name].dtype)


def _concat(parts: list[Columns], compact: bool = False) -> Columns:
    """Concatenate column dicts with the same keys; `compact` stores int64 columns that fit as int32."""
    columns = {}
    for name in parts[0]:
        values = np.concatenate([part[name] for part in parts])
        if compact and name != "ts" and values.dtype == np.int64 and len(values) and _fits_int32(values):
            values = values.astype(np.int32)
        columns[name] = values
    return columns


def _fits_int32(values: np.ndarray) -> bool:
    """Whether every value fits in an int32."""
    limits = np.iinfo(np.int32)
    return limits.min <= values.min() and values.max() <= limits.max


def _sort_by_time(columns: Columns) -> None:
    """Put the rows in time order (stable), one column at a time to bound memory."""
    order = np.argsort(columns["ts"], kind="stable")
    for name in list(columns):
        columns[name] = np.take(columns[name], order)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

CHUNK_ROWS = 500_000
HEX_PAIRS = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode(), dtype=np.uint16)  # byte -> 2 hex chars


def _write_files(
    events: SyntheticEvents, seed: int, directory: Path, file_format: str, time_resolution: str,
    grey_fraud_share: float | None = None,
) -> dict[str, str]:
    """Write the three parts, the hidden labels and the manifest into `directory`; return file names by key."""
    names = {key: f"{stem}.{file_format}" for key, stem in FILE_STEMS.items()}
    salts = _namespace_salts(seed)
    test_columns = tuple(c for c in COLUMNS if c != "is_fraud")
    jobs = [(names[w.part], [events.part_slice(w.part)], COLUMNS if w.part == "train" else test_columns) for w in WINDOWS]
    jobs.append((names["hidden_labels"], [*(events.part_slice(w.part) for w in WINDOWS[1:]), _hidden_train_rows(events)],
                 LABEL_COLUMNS))
    with ThreadPoolExecutor(len(jobs)) as pool:  # files are independent; arrow and numpy release the GIL
        done = [
            pool.submit(_write_table, directory / name, events, rows, columns, salts, file_format, time_resolution)
            for name, rows, columns in jobs
        ]
        for job in done:
            job.result()
    manifest = _manifest(events, seed, directory, names, file_format, time_resolution, grey_fraud_share)
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return {**names, "manifest": MANIFEST_NAME}


def _hidden_train_rows(events: SyntheticEvents) -> np.ndarray:
    """Training rows whose label is not their truth: grey (-1) rows and frauds labelled 0."""
    rows = events.part_slice("train")
    label, fraud = events.columns["is_fraud"][rows], events.columns["tactic"][rows] != NORMAL
    return rows.start + np.flatnonzero((label == -1) | ((label == 0) & fraud))


def _row_chunks(rows: slice | np.ndarray) -> list[slice | np.ndarray]:
    """`rows` (a range, or positions) in pieces of at most `CHUNK_ROWS`."""
    if isinstance(rows, slice):
        return [slice(lo, min(lo + CHUNK_ROWS, rows.stop)) for lo in range(rows.start, rows.stop, CHUNK_ROWS)]
    return [rows[lo:lo + CHUNK_ROWS] for lo in range(0, len(rows), CHUNK_ROWS)]


def _write_table(
    path: Path,
    events: SyntheticEvents,
    row_ranges: list[slice | np.ndarray],
    columns: tuple[str, ...],
    salts: dict[int, np.uint64],
    file_format: str,
    time_resolution: str,
) -> None:
    """Write the given rows in chunks of `CHUNK_ROWS` as parquet or CSV."""
    schema = pa.schema([(name, _arrow_type(name)) for name in columns])
    with _table_writer(path, schema, file_format) as writer:
        for rows in row_ranges:
            for chunk in _row_chunks(rows):
                arrays = [_arrow_column(name, events.columns, chunk, salts, time_resolution) for name in columns]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


@contextmanager
def _table_writer(path: Path, schema: pa.Schema, file_format: str):
    """A parquet (zstd) or CSV writer for `path`, closed on exit."""
    if file_format == "parquet":
        statistics = [name for name in schema.names if name not in ID_NAMESPACES]  # min/max of hashes is useless
        with pq.ParquetWriter(path, schema, compression="zstd", compression_level=1, write_statistics=statistics) as writer:
            yield writer
        return
    path.write_text(",".join(schema.names) + "\n", encoding="utf-8")  # plain header: arrow would quote it
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")  # no value needs quoting
    with pa.OSFile(str(path), "ab") as sink, pa_csv.CSVWriter(sink, schema, write_options=options) as writer:
        yield writer


def _arrow_type(name: str) -> pa.DataType:
    """Arrow type of an output column."""
    if name == "amt":
        return pa.float64()
    return pa.int64() if name in INT_COLUMNS or name == "true_fraud" else pa.string()


def _arrow_column(
    name: str, columns: Columns, rows: slice | np.ndarray, salts: dict[int, np.uint64], time_resolution: str,
) -> pa.Array:
    """One output column for a row range: hex ids, vocabulary text, times, dates or numbers."""
    if name in ID_NAMESPACES:
        return _hex_ids(columns[name][rows], salts[ID_NAMESPACES[name]])
    if name in VOCABULARIES:
        return pa.array(VOCABULARIES[name]).take(pa.array(columns[name][rows].astype(np.int32)))
    if name == "gmt_occur":
        return _time_text(columns["ts"][rows], 19 if time_resolution == "second" else 13)
    if name == "dt":
        return _time_text(columns["ts"][rows], 10)
    if name == "amt":
        return pa.array(columns[name][rows], type=pa.float64())
    if name == "true_fraud":
        return pa.array((columns["tactic"][rows] != NORMAL).astype(np.int64))
    return pa.array(columns[name][rows].astype(np.int64))


def _namespace_salts(seed: int) -> dict[int, np.uint64]:
    """A per-seed offset for each id namespace, so that ids differ between seeds."""
    keys = np.array(sorted(set(ID_NAMESPACES.values())), dtype=np.uint64)
    mixed = _splitmix64(_splitmix64(np.full(len(keys), seed % 2**63, dtype=np.uint64)) ^ keys)
    return dict(zip(keys.tolist(), mixed))


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijection of uint64, so distinct inputs give distinct outputs."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _hex_ids(entities: np.ndarray, salt: np.uint64) -> pa.Array:
    """16-hex-digit hash of each entity number (`-1`, missing, stays "-1")."""
    with np.errstate(over="ignore"):
        hashed = _splitmix64(entities.astype(np.uint64) + salt)
    text = _strings_from_fixed_width(HEX_PAIRS[hashed.view(np.uint8)].view(np.uint8).reshape(-1, 16))
    missing = entities < 0
    return pc.if_else(pa.array(missing), pa.scalar("-1"), text) if missing.any() else text


def _strings_from_fixed_width(chars: np.ndarray) -> pa.Array:
    """A string array from an (n, width) byte matrix."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _time_text(ts: np.ndarray, width: int) -> pa.Array:
    """"YYYY-MM-DD HH:MM:SS" cut to `width` characters (10: the date, 13: to the hour)."""
    day = ts // SECONDS_PER_DAY
    first_day = int(day.min()) if len(day) else 0
    day_text = np.datetime_as_string(np.arange(first_day, int(day.max(initial=first_day)) + 1).astype("datetime64[D]"))
    day_chars = np.frombuffer("".join(day_text.tolist()).encode(), dtype=np.uint8).reshape(-1, 10)
    chars = np.empty((len(ts), 19), dtype=np.uint8)
    chars[:, :10] = day_chars[day - first_day]
    second_of_day = ts % SECONDS_PER_DAY
    fields = (second_of_day // 3600, second_of_day // 60 % 60, second_of_day % 60)
    chars[:, 10] = ord(" ")
    chars[:, 13] = chars[:, 16] = ord(":")
    for position, value in zip((11, 14, 17), fields):
        chars[:, position] = 48 + value // 10
        chars[:, position + 1] = 48 + value % 10
    return _strings_from_fixed_width(chars[:, :width])


def _manifest(
    events: SyntheticEvents, seed: int, directory: Path, names: dict[str, str], file_format: str, time_resolution: str,
    grey_fraud_share: float | None = None,
) -> dict:
    """Rows, seed, settings, per-part label counts and file digests (no timings: same seed, same bytes)."""
    labels = events.columns["is_fraud"]
    parts = {}
    for window in WINDOWS:
        part_labels = labels[events.part_slice(window.part)]
        parts[window.part] = {
            "file": names[window.part],
            "rows": int(len(part_labels)),
            "first_day": window.first_day,
            "last_day": window.last_day,
            "fraud": int((part_labels == 1).sum()),
            "white": int((part_labels == 0).sum()),
            "grey": int((part_labels == -1).sum()),
            "grey_really_fraud": int(((part_labels == -1) & (events.columns["tactic"][events.part_slice(window.part)] != NORMAL)).sum()),
            "sha256": _sha256(directory / names[window.part]),
        }
    return {
        "generator": "atec_automl.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "rows": int(sum(events.part_rows.values())),
        "seed": int(seed),
        "file_format": file_format,
        "time_resolution": time_resolution,
        "grey_fraud_share": grey_fraud_share,
        "parts": parts,
        "hidden_labels": {"file": names["hidden_labels"], "sha256": _sha256(directory / names["hidden_labels"])},
    }


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _publish(temp_dir: Path, out_dir: Path, names: dict[str, str]) -> None:
    """Move the finished files into `out_dir`: one directory rename if it is new, else file by file, manifest last."""
    os.chmod(temp_dir, 0o755)
    if not out_dir.exists():
        try:
            os.rename(temp_dir, out_dir)
            return
        except OSError:
            pass  # created meanwhile by someone else: fall back to moving files
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for key, name in names.items():
        if key != "manifest":
            os.replace(temp_dir / name, out_dir / name)
    os.replace(temp_dir / MANIFEST_NAME, out_dir / MANIFEST_NAME)
