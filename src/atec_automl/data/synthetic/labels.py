"""Labels from a legacy rule engine, and missing fields.

The rule engine (new device, new payee, large amount, night, province mismatch, unusual channel,
plus noise) blocks the riskiest events; its operators re-tune the threshold each period to block
a set share of traffic (0.9 %, 0.8 %, 1.1 %). Blocked events become grey (-1), mostly fraud but
some legitimate. About 5 % of the remaining fraud is never reported (labelled 0). Test labels use
the same 1/0/-1 coding and go to the hidden labels file only. That file also holds `true_fraud`
(1 for every fraud event, whatever its label) of the test rows and of the training rows whose
label hides the truth (grey, or fraud labelled 0): a training row not in it is truly what its
label says. Only the simulated expert and the true-score reporting read it.
"""
from __future__ import annotations

import numpy as np

from atec_automl.data.dataset import SECONDS_PER_DAY
from atec_automl.data.synthetic.schema import Columns, NORMAL, OTHER_CHANNEL, VOCABULARIES, WAP, splitmix64
from atec_automl.data.synthetic.windows import WINDOWS
from atec_automl.data.synthetic.world import World

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


def assign_labels(
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
        pair = splitmix64(key_a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ key_b.astype(np.uint64))
    _, first_row, pair_index = np.unique(pair, return_index=True, return_inverse=True)
    return ts == ts[first_row][pair_index]


def apply_missing(columns: Columns, part_rows: dict[str, int], rng: np.random.Generator) -> None:
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
