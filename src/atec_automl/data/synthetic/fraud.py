"""Fraud that unfolds over time.

Rings run campaigns of a few days over many victims (real users with their own normal history),
drawing on sliding pools of devices, proxy IPs and mule payees (pools overlap from one campaign to
the next, then rotate). Each victim: often a small probe payment first, then 1-4 large payments
minutes apart, night hours common. Tactics:
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
"""
from __future__ import annotations

import numpy as np

from atec_automl.data.dataset import SECONDS_PER_DAY
from atec_automl.data.synthetic.normal import MAX_AMOUNT, app_version, group_times, party_columns, payee_columns
from atec_automl.data.synthetic.schema import (
    ACCOUNT_TRANSFER, ANDROID, APP, CARD_TRANSFER, Columns, DEVICE_FARM, IOS, MOBILE_3G, MOBILE_4G, OTHER_CHANNEL,
    OTHER_PLATFORM, PC, STOLEN_PHONE, TAKEOVER, TAOBAO, WAP, WIFI,
)
from atec_automl.data.synthetic.windows import WINDOWS, Window, day_number, window_last_second
from atec_automl.data.synthetic.world import N_PROVINCES, RING_SLOTS, World, capitals


def fraud_events(world: World, window: Window, window_index: int, n_events: int, rng: np.random.Generator) -> Columns:
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
    ts = group_times(victims["start"], per_victim, gaps, window_last_second(window))
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
    columns.update(party_columns(world, user, card))
    columns.update(payee_columns(world, scene, payee, user, card))
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
    farm_device = world.farm_device_start + day_number(window.first_day) * 10_000_000 + np.arange(n)  # fresh per event
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
    victim_version = app_version(ts, world.device_lag_days[victim_device])
    farm_version = np.where(rng.random(n) < 0.7, 0, 1)
    version = np.select([stolen, farm], [victim_version, farm_version], app_version(ts, rng.exponential(60.0, n)))
    return {
        "device_sign": np.where(farm & (rng.random(n) < 0.2), -1, device),
        "network": network.astype(np.int8),
        "client_ip": np.where(on_proxy, proxy_ip, nat_ip),
        "wireless_mac": np.select([ring_wifi, fake_mac], [ring_mac, fake_mac_start + device], -1),
        "wifi_node_name": np.where(ring_wifi, ring_mac, -1),
        "ip_prov": location,
        "ip_city": capitals(location),
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
