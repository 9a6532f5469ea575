"""The world: users, parties (payees), cards, devices, networks and the rings' pools.

Users live in a home province/city (integer ids, population weighted); a fifth were born
elsewhere (`cert_prov` differs from where they pay from: migrants). A user has an activity rate
(log-normal: a few heavy users), an active period (some join or leave during the timeline), a
habitual hour of day (a few night owls), an amount scale, 1-3 devices (platform, app-version
update lag), 1-3 cards (sometimes a relative's: `is_one_people` 0), a household (home Wi-Fi,
home IP rotating monthly, shared by family members who sometimes use each other's phone) and
2-8 usual payees (friends and favourite merchants). Shared entities: mobile traffic leaves through
a few carrier-NAT IPs per province (hundreds of users per IP), public hotspots are shared by
strangers, merchants have Zipf popularity (many payers), shop "agent" devices serve many users.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atec_automl.data.calendar import NATIONAL_DAY
from atec_automl.data.calendar import SPRING_FESTIVAL
from atec_automl.data.dataset import SECONDS_PER_DAY
from atec_automl.data.synthetic.schema import (
    ANDROID, IOS, OTHER_PLATFORM, PHONE_TOPUP, QR_CODE, TAOBAO, UTILITIES, VOCABULARIES,
)
from atec_automl.data.synthetic.windows import WINDOWS, day_number

# Province weights (roughly population); ids 1..31, cities prov*100 + 1.. (1 is the capital).
PROVINCE_WEIGHTS = np.array([
    11.0, 10.0, 9.5, 8.3, 8.0, 7.5, 6.8, 6.2, 5.9, 5.6, 4.8, 4.7, 4.6, 4.4, 3.9, 3.8, 3.8, 3.7, 3.5, 3.0,
    2.7, 2.6, 2.5, 2.4, 2.4, 2.2, 1.6, 0.9, 0.7, 0.6, 0.3,
])
N_PROVINCES = len(PROVINCE_WEIGHTS)
HOUR_WEIGHTS = np.array([
    1.2, 0.7, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 4.5, 5.0, 5.5, 6.0, 5.5, 5.0, 5.0, 5.0, 5.5, 6.0, 6.5, 7.0, 7.0, 5.5, 3.0,
])


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


def build_world(rows: int, rng: np.random.Generator) -> World:
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
    timeline = (day_number(WINDOWS[0].first_day) * SECONDS_PER_DAY, (day_number(WINDOWS[-1].last_day) + 1) * SECONDS_PER_DAY)
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
        "card_bin_city": np.concatenate([capitals(bin_prov), capitals(other_prov)]),
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


def capitals(provinces: np.ndarray) -> np.ndarray:
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
    holiday_start = (day_number(NATIONAL_DAY[0]) - 1 + rng.integers(0, 4, n_users)) * SECONDS_PER_DAY
    random_start = rng.integers(*timeline, n_users)
    first_start = np.where(national_day, holiday_start, random_start)
    first_travels = national_day | (rng.random(n_users) < 0.15)
    first_end = np.where(first_travels, first_start + rng.integers(2, 9, n_users) * SECONDS_PER_DAY, first_start)
    goes_home = migrant & (rng.random(n_users) < 0.55)
    home_start = (day_number(SPRING_FESTIVAL[0]) - 6 + rng.integers(0, 6, n_users)) * SECONDS_PER_DAY
    home_end = np.where(goes_home, home_start + rng.integers(7, 15, n_users) * SECONDS_PER_DAY, home_start)
    return (
        np.stack([first_start, home_start], axis=1),
        np.stack([first_end, home_end], axis=1),
        np.stack([_provinces(rng, n_users), cert_prov], axis=1),
    )
