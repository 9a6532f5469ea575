"""`KeyRows` gives each key value's history rows (in the groups' order) and online events, by value id, as a
plain dictionary of lists gives them: values of one column and of two, values first seen online, events taken back."""
from __future__ import annotations

import numpy as np
import pandas as pd

from atec_automl.features.key_rows import KeyRows


def history_frame(rows: int, seed: int) -> pd.DataFrame:
    """Events of a few users and cards (some missing), times out of order and tied."""
    rng = np.random.default_rng(seed)
    users = rng.choice(["u1", "u2", "u3", "u4", None], rows, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    cards = rng.choice(["c1", "c2", None], rows)
    return pd.DataFrame({"user": users, "card": cards, "visible": rng.integers(0, 20, rows)})


def plain_rows(frame: pd.DataFrame, key: tuple[str, ...]) -> dict[tuple, list[int]]:
    """Each value's rows with no missing part, ordered by (visible, row)."""
    out: dict[tuple, list[int]] = {}
    for row in sorted(range(len(frame)), key=lambda r: (frame["visible"][r], r)):
        value = tuple(frame[c][row] for c in key)
        if not any(pd.isna(part) for part in value):
            out.setdefault(value, []).append(row)
    return out


def test_each_values_rows_by_id_match_a_plain_dictionary() -> None:
    for seed in range(5):
        frame = history_frame(300, seed)
        for key in [("user",), ("user", "card")]:
            rows = KeyRows(frame, key, frame["visible"].to_numpy())
            expected = plain_rows(frame, key)
            assert rows.history_values == len(expected)
            for value, listed in expected.items():
                assert rows.history(rows.id_of(value)).tolist() == listed
            online = [("u9",) * len(key), next(iter(expected)), ("u9",) * len(key), next(iter(expected))]
            ids = rows.add_many(online, [0, 1, 2, 3])
            assert ids[0] == ids[2] == rows.history_values and ids[1] == ids[3] == rows.id_of(next(iter(expected)))
            assert rows.id_of(("u8",) * len(key)) == rows.history_values + 1
            assert rows.add(("u9",) * len(key), 4) == ids[0]
            wanted = np.array([ids[0], ids[1], rows.history_values + 1, ids[1], 0])
            flat, sizes = rows.history_of(wanted)
            assert sizes.tolist() == [len(rows.history(i)) for i in wanted.tolist()]
            assert flat.tolist() == sum((rows.history(i).tolist() for i in wanted.tolist()), [])
            events, counts = rows.online_of_many(wanted.tolist())
            assert counts.tolist() == [3, 2, 0, 2, len(rows.online_of(0))]
            assert events.tolist()[:7] == [0, 2, 4, 1, 3, 1, 3]
            rows.remove_last(ids[0])
            rows.remove_last(ids[0])
            assert rows.online_of(ids[0]) == [0]
            rows.remove_last(ids[0])
            assert ids[0] not in rows.online and rows.online_of(ids[0]) == []


def test_an_empty_history_gives_no_rows() -> None:
    frame = history_frame(0, 0)
    rows = KeyRows(frame, ("user",), frame["visible"].to_numpy())
    assert rows.history_values == 0 and rows.add(("u1",), 7) == 0
    flat, sizes = rows.history_of(np.array([0]))
    assert flat.tolist() == [] and sizes.tolist() == [0]
