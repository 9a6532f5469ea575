"""What the generated files hold: the columns, the id namespaces, the vocabularies and the codes
the simulation uses for them.

Internally every id column holds entity numbers (-1 missing) and every text column a vocabulary
code (0 missing); `writing` turns them into the contest's strings.
"""
from __future__ import annotations

import numpy as np

from atec_automl.data.formats import RAW_COLUMNS

COLUMNS = RAW_COLUMNS  # the contest files' columns, in file order
LABEL_COLUMNS = ("event_id", "is_fraud", "true_fraud")
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
Columns = dict[str, np.ndarray]


def splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijection of uint64, so distinct inputs give distinct outputs."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z
