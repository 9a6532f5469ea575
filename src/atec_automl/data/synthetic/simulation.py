"""The simulation: the world, then each window's normal and fraud events (one random stream per
window, so the windows run in parallel and give the same result in any order), time-sorted, then
labels and missing fields. Nothing is written here."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from atec_automl.data.synthetic.fraud import fraud_events
from atec_automl.data.synthetic.labels import apply_missing, assign_labels
from atec_automl.data.synthetic.normal import normal_events
from atec_automl.data.synthetic.schema import Columns
from atec_automl.data.synthetic.windows import WINDOWS
from atec_automl.data.synthetic.world import build_world
from atec_automl.errors import AtecError

MIN_ROWS = 2_000
SIMULATION_VERSION = 3
"""Version of the simulated events (it seeds the random streams): version 4 wrote the same events as 3."""


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
    check_rows_and_seed(rows, seed)
    streams = np.random.SeedSequence([seed, SIMULATION_VERSION]).spawn(2 + len(WINDOWS))
    world_stream, label_stream, *window_streams = streams
    world = build_world(rows, np.random.default_rng(world_stream))
    part_rows = _part_counts(rows)

    def window_events(index: int) -> Columns:
        window, rng = WINDOWS[index], np.random.default_rng(window_streams[index])
        fraud = fraud_events(world, window, index, round(part_rows[window.part] * window.fraud_rate), rng)
        return _concat([normal_events(world, window, part_rows[window.part] - len(fraud["ts"]), rng), fraud])

    with ThreadPoolExecutor(len(WINDOWS)) as pool:  # own random stream per window: same result in any order
        pieces = list(pool.map(window_events, range(len(WINDOWS))))
    columns = _concat(pieces, compact=True)
    del pieces
    _sort_by_time(columns)  # windows are disjoint and in file order
    rng = np.random.default_rng(label_stream)
    assign_labels(columns, columns.pop("payee"), world, part_rows, rng, grey_fraud_share)
    apply_missing(columns, part_rows, rng)
    columns["event_id"] = np.arange(rows, dtype=np.int64)
    part_codes = np.repeat([1, 2, 2], [part_rows[w.part] for w in WINDOWS])
    columns["sample_seg"] = part_codes.astype(np.int8)
    return SyntheticEvents(columns, part_rows)


def check_rows_and_seed(rows: int, seed: int) -> None:
    """Reject a row count too small for every window to hold fraud, grey and white events, or a negative seed."""
    if int(rows) < MIN_ROWS:
        raise AtecError(f"data.rows={rows}: the synthetic generator needs at least {MIN_ROWS} rows")
    if int(seed) < 0:
        raise AtecError(f"data.seed={seed}: the synthetic generator needs a seed >= 0")


def _part_counts(rows: int) -> dict[str, int]:
    """Rows per part: shares of the total, the last part taking the rounding remainder."""
    counts = {w.part: int(round(rows * w.row_share)) for w in WINDOWS[:-1]}
    counts[WINDOWS[-1].part] = rows - sum(counts.values())
    return counts


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
