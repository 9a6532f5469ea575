"""Writing: the simulated events as the contest's files.

Entity numbers become 16-hex-digit ids (a per-seed SplitMix64 hash within each id namespace: equal
entity, equal string), vocabulary codes become texts, seconds become "YYYY-MM-DD HH:MM:SS" (or to
the hour) and the day `dt`; rows go out in chunks, parquet (zstd) or CSV, one file per thread.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from atec_automl.data.dataset import SECONDS_PER_DAY
from atec_automl.data.synthetic.schema import (
    COLUMNS, Columns, ID_NAMESPACES, INT_COLUMNS, LABEL_COLUMNS, NORMAL, VOCABULARIES, splitmix64,
)
from atec_automl.data.synthetic.simulation import SyntheticEvents
from atec_automl.data.synthetic.windows import WINDOWS

FILE_STEMS = {"train": "train", "test_a": "test_a", "test_b": "test_b", "hidden_labels": "test_labels"}
CHUNK_ROWS = 500_000
HEX_PAIRS = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode(), dtype=np.uint16)  # byte -> 2 hex chars


def write_parts(
    events: SyntheticEvents, seed: int, directory: Path, file_format: str, time_resolution: str,
) -> dict[str, str]:
    """Write the three parts and the hidden labels into `directory`; return file names by key."""
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
    return names


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
    mixed = splitmix64(splitmix64(np.full(len(keys), seed % 2**63, dtype=np.uint64)) ^ keys)
    return dict(zip(keys.tolist(), mixed))


def _hex_ids(entities: np.ndarray, salt: np.uint64) -> pa.Array:
    """16-hex-digit hash of each entity number (`-1`, missing, stays "-1")."""
    with np.errstate(over="ignore"):
        hashed = splitmix64(entities.astype(np.uint64) + salt)
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
