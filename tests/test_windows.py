"""The range kernels of `features/windows.py` (maxima, distinct counts, first occurrences) against plain loops, on
ranges that cover few positions of a long array (answered over the covered positions alone) and ranges that cover
most of it."""
from __future__ import annotations

import numpy as np
import pytest

from atec_automl.features.windows import (SHORT_RANGE, covered_ranges, distinct_codes_in_ranges, distinct_in_ranges,
                                          first_occurrences, previous_same, range_max, segmented_cumsum)


def random_ranges(rng: np.random.Generator, n: int, count: int, span: int,
                  near_end: bool) -> tuple[np.ndarray, np.ndarray]:
    """`count` ranges of up to `span` positions (some empty), ending anywhere or within the last tenth of `[0, n)`."""
    hi = rng.integers(n - n // 10 if near_end else 0, n + 1, count)
    lo = np.maximum(hi - rng.integers(0, span + 1, count), 0)
    return lo, hi


@pytest.mark.parametrize("near_end", [True, False])
def test_range_maxima_distinct_counts_and_first_occurrences_match_a_plain_loop(near_end: bool) -> None:
    rng = np.random.default_rng(7)
    n = 5_000
    values = rng.normal(size=n)
    values[rng.random(n) < 0.2] = np.nan
    codes = rng.integers(0, 40, n)
    missing = rng.random(n) < 0.1
    codes[missing] = -1
    prev = previous_same(codes)
    prev[missing] = np.flatnonzero(missing)  # a missing code points at itself: never counted
    bounds = [random_ranges(rng, n, 300, 4 * SHORT_RANGE, near_end), random_ranges(rng, n, 300, 400, near_end)]
    assert (covered_ranges(n, bounds) is not None) == near_end
    by_codes = distinct_codes_in_ranges(codes, bounds)
    by_prev = distinct_in_ranges(prev, bounds)
    for (lo, hi), maxima, counts, counted in zip(bounds, range_max(values, bounds), by_prev, by_codes):
        for i in range(len(lo)):
            window = values[lo[i]:hi[i]]
            known = window[~np.isnan(window)]
            expected = known.max() if len(known) else np.nan
            assert maxima[i] == expected or (np.isnan(maxima[i]) and np.isnan(expected))
            kept = ~missing[lo[i]:hi[i]]
            assert counts[i] == counted[i] == len(np.unique(codes[lo[i]:hi[i]][kept]))
    first = first_occurrences(codes)
    assert [bool(first[j]) for j in range(n)] == [codes[j] >= 0 and codes[j] not in codes[:j] for j in range(n)]


def test_summing_columns_together_gives_each_columns_own_compensated_sum() -> None:
    """`segmented_cumsum` of (n, 2) values (the online batch and the offline build sum amounts and their squares in
    one pass) equals each column summed alone, bit for bit, on amounts whose sums need the compensation."""
    rng = np.random.default_rng(3)
    n = 20_000
    amounts = np.where(rng.random(n) < 0.1, 1e15, rng.lognormal(3, 2, n)) * rng.choice([1, -1], n)
    groups = np.sort(rng.integers(0, 300, n))
    both = segmented_cumsum(np.column_stack([amounts, amounts * amounts]), groups)
    alone = [segmented_cumsum(amounts, groups), segmented_cumsum(amounts * amounts, groups)]
    assert both.shape == (n, 2)
    assert all(np.array_equal(both[:, j], alone[j]) for j in range(2))
    assert not np.array_equal(alone[0], np.concatenate([np.cumsum(amounts[groups == g]) for g in np.unique(groups)]))
