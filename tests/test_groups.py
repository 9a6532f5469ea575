"""The per-key groups of the serving state (`features/groups.py`) against the batch code's grouped cumsum.

A group's prefix sums must be bit-for-bit what `windows.segmented_cumsum` (pandas' compensated
grouped cumsum) gives over the same events in the same order, through events added at the end and
merged into the middle; adding events must give the group a stable sort of all its events by time
gives; a group of a key that reads no amount statistic keeps no sums but the same events in the
same order; the running code statistics must count what the window's codes hold.
"""
from __future__ import annotations

import numpy as np
import pytest

from atec_automl.features.groups import Group
from atec_automl.features.windows import segmented_cumsum


def awkward_amounts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Amounts whose sums lose digits without compensation: mixed magnitudes, negatives and missing values."""
    values = rng.choice([1e9, 1e-3, 0.1, 3.0, 7e5], size=n) * rng.choice([1.0, -1.0], size=n) * rng.random(n)
    values[rng.random(n) < 0.2] = np.nan
    return values


def batch_prefix(group: Group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batch code's inclusive sums of the group's amounts and squares (missing as 0), and its known counts."""
    amount = group.amount[:group.size]
    filled = np.nan_to_num(amount, nan=0.0)
    one_group = np.zeros(group.size, dtype=np.int64)
    return (segmented_cumsum(filled, one_group), segmented_cumsum(filled * filled, one_group),
            np.cumsum(np.isfinite(amount)))


def test_prefix_sums_are_the_batch_ones_through_appends_and_merges() -> None:
    rng = np.random.default_rng(7)
    n = 300
    visible = np.sort(rng.integers(0, 10_000, size=n))
    group = Group(visible, visible - 1, awkward_amounts(rng, n), {"payee": rng.integers(-1, 5, size=n)})
    for _ in range(40):  # one or two events at the end, in order
        at = int(group.visible[group.size - 1]) + int(rng.integers(0, 3))
        count = int(rng.integers(1, 3))
        group.add([at] * count, [at - 1] * count, awkward_amounts(rng, count).tolist(), {"payee": [1] * count})
    for _ in range(10):  # events that go before the last ones
        at = rng.integers(0, 10_000, size=3).tolist()
        group.add(at, [v - 1 for v in at], awkward_amounts(rng, 3).tolist(), {"payee": [2, 2, -1]})
    assert group.size > n + 40 + 30 - 1
    sums, squares, known = batch_prefix(group)
    assert np.array_equal(group.sums[:group.size], sums)
    assert np.array_equal(group.squares[:group.size], squares)
    assert np.array_equal(group.known[:group.size], known)
    assert np.all(np.diff(group.visible[:group.size]) >= 0)
    assert group.visible_list == group.visible[:group.size].tolist()


def test_a_group_without_sums_keeps_the_same_events_in_the_same_order() -> None:
    rng = np.random.default_rng(3)
    n = 50
    visible = rng.integers(0, 100, size=n)
    amount, codes = awkward_amounts(rng, n), {"device": rng.integers(-1, 4, size=n)}
    summed, plain = Group(visible, visible, amount, codes), Group(visible, visible, amount, codes, summed=False)
    for group in (summed, plain):
        group.add([50, 20], [50, 20], [1.5, 2.5], {"device": [3, 1]})
    assert plain.visible_list == summed.visible_list
    for row in ("visible", "ts", "amount"):
        assert np.array_equal(getattr(plain, row)[:plain.size], getattr(summed, row)[:summed.size], equal_nan=True)
    assert np.array_equal(plain.codes["device"][:plain.size], summed.codes["device"][:summed.size])
    assert not plain.sums.any() and not plain.known.any()
    assert summed.known[summed.size - 1] == np.isfinite(summed.amount[:summed.size]).sum()


def test_adding_events_gives_the_order_of_a_stable_sort_of_all_of_them() -> None:
    rng = np.random.default_rng(11)
    visible = np.sort(rng.integers(0, 1_000, size=30))
    history = (visible, visible + 7, awkward_amounts(rng, 30), {"ip": rng.integers(-1, 9, size=30)})
    batches = [[1_000, 1_000, 1_200], [1_500], [1_400, 1_600], [1_550, 1_545], [1_700, 1_700], [visible[3]] * 2]
    grown = Group(*history)
    everything = [np.asarray(part) for part in history[:3]] + [history[3]["ip"]]
    for batch in batches:
        amounts, codes = awkward_amounts(rng, len(batch)).tolist(), rng.integers(-1, 9, size=len(batch)).tolist()
        grown.add(batch, [v + 7 for v in batch], amounts, {"ip": codes})
        everything = [np.concatenate([old, new]) for old, new in zip(everything, [batch, [v + 7 for v in batch], amounts, codes])]
    built = Group(*everything[:3], {"ip": everything[3]})
    assert grown.size == built.size == 30 + 12
    assert grown.visible_list == built.visible_list
    for row in ("visible", "ts", "known", "amount", "sums", "squares"):
        assert np.array_equal(getattr(grown, row)[:grown.size], getattr(built, row)[:built.size], equal_nan=True), row
    assert np.array_equal(grown.codes["ip"][:grown.size], built.codes["ip"][:built.size])


@pytest.mark.parametrize("size", [5, 40, 200])  # stepped through from the start, then scans or vectorised passes
def test_code_statistics_give_each_windows_distinct_count_and_the_mode_so_far(size: int) -> None:
    rng = np.random.default_rng(5)
    visible = np.sort(rng.integers(0, 500, size=size))
    group = Group(visible, visible, np.ones(size), {"device": rng.integers(-1, 6, size=size)})
    for step in range(30):  # appends read one by one (a scan each), merges into the middle (recomputed)
        at = int(group.visible[group.size - 1]) + 1 if step % 3 else int(rng.integers(0, 600))
        group.add([at, at][: 1 + step % 2], [at, at][: 1 + step % 2], [1.0, 1.0][: 1 + step % 2],
                  {"device": rng.integers(-1, 6, size=1 + step % 2).tolist()})
        codes = group.codes["device"][:group.size]
        previous, mode = (row[:group.size] for row in group.code_stats("device"))
        for lo, hi in [(0, group.size), (group.size // 2, group.size), (3, 9), (0, 1)]:
            window = codes[lo:hi]
            assert np.count_nonzero(previous[lo:hi] < lo) == len(set(window[window >= 0].tolist()))
        for end in range(1, group.size + 1):
            known = codes[:end][codes[:end] >= 0]
            assert mode[end - 1] == (np.unique(known, return_counts=True)[1].max() if len(known) else 0)
