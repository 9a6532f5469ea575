"""Normal behaviour, some of which looks risky.

Sessions of 1-10 events (shopping bursts a minute apart) on the user's main device, sometimes
another of theirs, a family or a shop device; some users switch to a new phone mid-way. Payees:
usual ones, popular merchants, or one-off strangers (12 % of events). Scenes set the payee fields:
merchant scenes and account transfers fill the `opposing_*` fields, transfers to a card fill the
`income_card_*` fields and `province`/`city`, credit-card repayment pays the user's own card.
Trips move a user's IP to another province (more around the National Day holiday; migrants go
home for the Spring Festival, which also brings red packets and more volume; see
`atec_automl.data.calendar`). Amounts are log-normal per user and scene.
"""
from __future__ import annotations

import numpy as np

from atec_automl.data.calendar import NATIONAL_DAY
from atec_automl.data.calendar import SPRING_FESTIVAL
from atec_automl.data.dataset import SECONDS_PER_DAY
from atec_automl.data.synthetic.schema import (
    ACCOUNT_TRANSFER, APP, CARD_REPAYMENT, CARD_TRANSFER, Columns, MOBILE_3G, MOBILE_4G, NORMAL, OTHER_CHANNEL,
    OTHER_PLATFORM, PC, PHONE_TOPUP, RED_PACKET, TAOBAO, WAP, WIFI,
)
from atec_automl.data.synthetic.windows import Window, day_number, window_last_second
from atec_automl.data.synthetic.world import HOUR_WEIGHTS, World, capitals

VERSION_RELEASE_DAYS = ("2017-06-01", "2017-09-01", "2017-10-10", "2017-11-20", "2017-12-25", "2018-01-20", "2018-02-20")
# Amount log-scale offset per scene (added to the user's scale); phone top-ups and red packets use fixed values.
SCENE_AMOUNT_SHIFT = np.array([0.0, 0.3, -0.5, 0.5, 0.0, 0.6, 1.6, 0.0, 2.4])
TOPUP_VALUES = np.array([10.0, 30.0, 50.0, 100.0, 200.0, 300.0])
RED_PACKET_VALUES = np.array([1.88, 5.2, 6.66, 8.88, 52.0, 66.0, 88.0, 100.0, 188.0, 200.0])
MAX_AMOUNT = 50_000.0


def _day_weights(days: np.ndarray) -> np.ndarray:
    """Relative volume per day: weekends, the National Day holiday, the Spring Festival, slow growth."""
    weights = 1.0 + 0.0008 * (days - days[0])
    weights = weights * np.where((days + 3) % 7 >= 5, 1.08, 1.0)  # 1970-01-01 was a Thursday
    weights = weights * np.where((days >= day_number(NATIONAL_DAY[0])) & (days <= day_number(NATIONAL_DAY[1])), 1.35, 1.0)
    weights = weights * np.where((days >= day_number(SPRING_FESTIVAL[0]) - 7) & (days < day_number(SPRING_FESTIVAL[0])), 1.2, 1.0)
    return weights * np.where((days >= day_number(SPRING_FESTIVAL[0])) & (days <= day_number(SPRING_FESTIVAL[1])), 1.7, 1.0)


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


def normal_events(world: World, window: Window, n_events: int, rng: np.random.Generator) -> Columns:
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
    columns["ts"] = group_times(start, sizes, rng.exponential(75.0, n_events).astype(np.int64), window_last_second(window))
    user = user[event_session]
    payee, scene = _normal_payees(world, user, columns["ts"], rng)
    card = world.card_start[user] + np.where(rng.random(n_events) < 0.78, 0, rng.integers(0, world.card_count[user]))
    repay = rng.random(n_events) < 0.025
    scene = np.where(repay, CARD_REPAYMENT, scene)
    own_card = world.card_start[user] + rng.integers(0, world.card_count[user])
    columns.update(party_columns(world, user, card))
    columns.update(payee_columns(world, scene, payee, user, own_card))
    columns["amt"] = _normal_amounts(world, user, scene, window, rng)
    columns["is_peer_pay"] = ((scene == TAOBAO) & (rng.random(n_events) < 0.05)).astype(np.int32)
    columns["tactic"] = np.full(n_events, NORMAL, dtype=np.int8)
    return columns


def group_times(start: np.ndarray, sizes: np.ndarray, gaps: np.ndarray, last_second: int) -> np.ndarray:
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
    ip_city = np.select([at_home_wifi, traveling], [world.party_city[user], capitals(location)], capitals(location))

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
        "version": np.where(browser, 0, app_version(start, world.device_lag_days[device])).astype(np.int8),
    }


def app_version(ts: np.ndarray, lag_days: np.ndarray) -> np.ndarray:
    """Version code of the app on a device that installs each release `lag_days` after it ships."""
    releases = np.array([day_number(d) for d in VERSION_RELEASE_DAYS]) * SECONDS_PER_DAY
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
    festival = (day >= day_number(SPRING_FESTIVAL[0])) & (day <= day_number(SPRING_FESTIVAL[1]))
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


def party_columns(world: World, user: np.ndarray, card: np.ndarray) -> Columns:
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


def payee_columns(
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
