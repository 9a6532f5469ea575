"""Read train / test_a / test_b (CSV, gzip CSV or parquet), validate them, join them into a `Dataset`.

Every problem in a file raises `DataError(file, problem, column=, row=)`, rows counted from 1 at
the first line after the header. Checks: the file exists, is not empty, is UTF-8 and
comma-separated, names no column twice, has the required columns, is not cut short (a truncated
`.csv.gz`); ids are present and unique across all files; times parse and exist (no 2017-02-30);
labels are 1, 0 or -1; numeric columns hold finite numbers within the float32 range; each test
window starts no earlier than the previous file ends. Reading and checking one file is in `read`.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from atec_automl.data.dataset import PARTS, Dataset
from atec_automl.data.formats import TableFormat, convert_column
from atec_automl.data.read import check_required, convert_table, read_header, read_part
from atec_automl.digest import file_sha256
from atec_automl.errors import AtecError, DataError

log = logging.getLogger(__name__)

LOADER_VERSION = 2
TEXT_TYPES = {str, type(None)}
"""Value types a record's field holds as its CSV cell's text already."""


def load_dataset(file_format: TableFormat, paths: Mapping[str, Path]) -> Dataset:
    """Load, validate and join the files of each part (`train`, optionally `test_a`, `test_b`) in `file_format`."""
    paths = {part: Path(paths[part]) for part in PARTS if part in paths}
    if "train" not in paths:
        raise AtecError("data.train is null: a train file is required")
    headers = {part: read_header(path) for part, path in paths.items()}
    kinds = file_format.kinds(list(headers.values()))
    for part, path in paths.items():
        check_required(path, headers[part], file_format.required_for(part))
    with ThreadPoolExecutor(max_workers=1) as pool:
        digests = {part: pool.submit(file_sha256, path) for part, path in paths.items()}
        tables = {part: read_part(path, part, headers[part], kinds, file_format) for part, path in paths.items()}
        fingerprint = data_fingerprint(file_format, {part: d.result() for part, d in digests.items()})
    _check_unique_ids(tables, paths, file_format.id_column)
    _check_windows(tables, paths, file_format.time_column)
    frame = _join(tables)
    return Dataset(
        frame=frame,
        fingerprint=fingerprint,
        id_column=file_format.id_column,
        categorical=[c for c, k in kinds.items() if k == "category"],
        numeric=[c for c, k in kinds.items() if k.startswith("float")],
        sources=paths,
    )


def load_event_files(file_format: TableFormat, history: list[Path], events: Path | None = None) -> Dataset:
    """History files (oldest first) and a file of new events as one timeline, validated as `load_dataset` does.

    The history rows become part `train` (labels read where a file has them, never required), the
    new events part `test_a`; each file must start no earlier than the one before it ends.
    """
    paths = {f"history file {i + 1}": Path(p) for i, p in enumerate(history)}
    if events is not None:
        paths["events"] = Path(events)
    if not paths:
        raise AtecError("no event files given (history files or events)")
    headers = {name: read_header(path) for name, path in paths.items()}
    kinds = file_format.kinds(list(headers.values()))
    for name, path in paths.items():
        check_required(path, headers[name], file_format.required_for("test_a"))
    tables = {name: read_part(path, "test_a" if name == "events" else "train", headers[name], kinds, file_format)
              for name, path in paths.items()}
    _check_unique_ids(tables, paths, file_format.id_column)
    _check_file_order(list(tables.items()), paths, file_format.time_column)
    history_tables = [t for name, t in tables.items() if name != "events"]
    parts = {"train": pa.concat_tables(history_tables)} if history_tables else {}
    frame = _join({**parts, **({"test_a": tables["events"]} if events is not None else {})})
    digests = {name: file_sha256(path) for name, path in paths.items()}
    return Dataset(
        frame=frame,
        fingerprint=data_fingerprint(file_format, digests),
        id_column=file_format.id_column,
        categorical=[c for c, k in kinds.items() if k == "category"],
        numeric=[c for c, k in kinds.items() if k.startswith("float")],
        sources=paths,
    )


def event_table_from_records(records: list[dict], file_format: TableFormat, source: str) -> pa.Table:
    """Events given as records (field -> value, as in a file's row) converted and validated as a file's rows are.

    Every record must give the required fields (the label excepted); values are read as the text a
    CSV cell would hold (None or absent: missing). Rows in the records' order, with the columns
    event_id, ts, label, ts_resolution and the format's own, categorical fields as text.
    """
    if not records:
        raise DataError(source, "no events")
    required = file_format.required_for("test_a")
    for row, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(source, f"an event must be an object of fields, got {json_kind(record)}", row=row)
        for column in required:
            if record.get(column) in (None, ""):
                raise DataError(source, "missing required field", column=column, row=row)
    kinds = file_format.kinds([list(records[0])])
    wanted = [c for c, k in kinds.items() if k != "label"]
    text = {c: _column_text(values, source, c) for c, values in zip(wanted, _record_columns(records, wanted))}
    table = _convert_request(pa.table(text), Path(source), kinds, file_format)
    _check_unique_ids({"request": table}, {"request": Path(source)}, file_format.id_column)
    as_text = {name: column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
               for name, column in zip(table.column_names, table.columns)}
    return pa.table(as_text)


def json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words (a request's events are JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    kinds = ((str, "a string"), ((int, float), "a number"), (list, "a list"))
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def events_from_records(records: list[dict], file_format: TableFormat, source: str) -> pd.DataFrame:
    """`event_table_from_records` as a frame, rows stably sorted by time."""
    return event_frame(event_table_from_records(records, file_format, source))


def event_frame(table: pa.Table) -> pd.DataFrame:
    """A table of `event_table_from_records` as a frame, rows stably sorted by time."""
    frame = table.to_pandas()
    return frame.iloc[np.argsort(frame["ts"].to_numpy(), kind="stable")].reset_index(drop=True)


def _convert_request(table: pa.Table, path: Path, kinds: dict[str, str], file_format: TableFormat) -> pa.Table:
    """`convert_table` of a request's events with the category columns converted as one long column, the same
    values as text: a conversion's fixed cost, paid per column, was most of a one-event request's time."""
    categories = [c for c, k in kinds.items() if k == "category" and c in table.column_names]
    converted = convert_table(table.drop_columns(categories), path, kinds, file_format)
    if not categories or not table.num_rows:
        return converted
    joined = pa.chunked_array([pa.concat_arrays([table[c].combine_chunks() for c in categories])])
    text = convert_column(joined, "category", file_format.missing_values, str(path), "categories").cast(pa.string())
    rows = table.num_rows
    place = {column: number * rows for number, column in enumerate(categories)}
    return pa.table({name: text.slice(place[name], rows) if name in place else column
                     for name, column in zip(converted.column_names, converted.columns)})


def _record_columns(records: list[dict], fields: list[str]) -> list[Sequence[object]]:
    """Each field's values over the records, None where a record lacks the field: one pass in C (`itemgetter`)
    when every record has every field, else field by field."""
    if len(fields) > 1:
        try:
            return list(zip(*map(itemgetter(*fields), records)))
        except KeyError:
            pass
    return [[r.get(c) for r in records] for c in fields]


def _column_text(values: Sequence[object], source: str, column: str) -> pa.Array:
    """One field of every record as the text of its CSV cells: strings and missing values as they are (one type
    check per distinct type, not per value: a batch of a thousand events has tens of thousands of values),
    anything else value by value (`_cell_text`)."""
    if set(map(type, values)) <= TEXT_TYPES:
        return pa.array(values, type=pa.string())
    return pa.array([_cell_text(v, source, column, row) for row, v in enumerate(values, start=1)], type=pa.string())


def _cell_text(value: object, source: str, column: str, row: int) -> str | None:
    """A record's value as the text of a CSV cell; numbers and strings only."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(source, f"expected a string or a number, got {value!r}", column=column, row=row)
    return value if isinstance(value, str) else repr(value)


def _row_in_part(position: int, tables: dict[str, pa.Table]) -> tuple[str, int]:
    """(part, 1-based row) of a position in the files joined in part order."""
    for part, table in tables.items():
        if position < table.num_rows:
            return part, position + 1
        position -= table.num_rows
    raise IndexError(position)


def _check_unique_ids(tables: dict[str, pa.Table], paths: dict[str, Path], id_column: str) -> None:
    """Raise for the first id seen twice, within a file or across files."""
    ids = pa.chunked_array([chunk for t in tables.values() for chunk in t["event_id"].chunks], type=pa.string())
    if pc.count_distinct(ids).as_py() == len(ids):
        return
    values = pd.Series(ids.to_numpy(zero_copy_only=False))
    position = int(np.flatnonzero(values.duplicated().to_numpy())[0])
    first = int(np.flatnonzero((values == values.iloc[position]).to_numpy())[0])
    part, row = _row_in_part(position, tables)
    first_part, first_row = _row_in_part(first, tables)
    raise DataError(
        str(paths[part]),
        f"duplicate id {values.iloc[position]!r} (first seen in {first_part} {paths[first_part]} row {first_row})",
        column=id_column,
        row=row,
    )


def _check_windows(tables: dict[str, pa.Table], paths: dict[str, Path], time_column: str) -> None:
    """Raise when a test file holds an event earlier than the last event of the file before it."""
    _check_file_order([(p, tables[p]) for p in PARTS if p in tables], paths, time_column)


def _check_file_order(named: list[tuple[str, pa.Table]], paths: dict[str, Path], time_column: str) -> None:
    """Raise when a file holds an event earlier than the last event of the file before it."""
    for (previous, previous_table), (part, table) in zip(named, named[1:]):
        previous_last = int(pc.max(previous_table["ts"]).as_py())
        ts = table["ts"].to_numpy()
        early = np.flatnonzero(ts < previous_last)
        if early.size:
            row = int(early[0]) + 1
            raise DataError(
                str(paths[part]),
                f"{part} starts before {previous} ends: {_format_ts(ts[row - 1])} is earlier than "
                f"{previous}'s last time {_format_ts(previous_last)}",
                column=time_column,
                row=row,
            )


def _format_ts(seconds: int) -> str:
    """Seconds since 1970 as 'YYYY-MM-DD HH:MM:SS'."""
    return str(pd.Timestamp(int(seconds), unit="s"))


def _join(tables: dict[str, pa.Table]) -> pd.DataFrame:
    """The files joined in part order, stably sorted by time, with the part column and string categories."""
    rows = [t.num_rows for t in tables.values()]
    part_codes = np.repeat([PARTS.index(p) for p in tables], rows).astype(np.int8)
    joined = pa.concat_tables(list(tables.values())).unify_dictionaries()
    order = np.argsort(joined["ts"].to_numpy(), kind="stable")
    if np.any(order != np.arange(len(order))):
        joined = joined.take(order)
        part_codes = part_codes[order]
    frame = joined.to_pandas(split_blocks=True, self_destruct=True)
    frame.insert(3, "part", pd.Categorical.from_codes(part_codes, categories=list(PARTS)))
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype) and frame[column].cat.categories.dtype == object:
            frame[column] = frame[column].cat.set_categories(pd.Index([], dtype="str"))
    return frame


def data_fingerprint(file_format: TableFormat, digests: dict[str, str]) -> str:
    """Short hash of the files' contents and of how they are read."""
    key = {"loader": LOADER_VERSION, "format": file_format.config(), "files": digests}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
