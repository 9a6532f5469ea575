"""Reading one event file (CSV, gzip CSV or parquet) into an Arrow table of the format's kinds.

Every problem raises `DataError(file, problem, column=, row=)`, rows counted from 1 at the first
line after the header: the file exists, is not empty, is UTF-8 and comma-separated, names no
column twice, has the required columns, is not cut short (a truncated `.csv.gz`); each column
converts to its kind (see `formats.convert_column`). `load` joins the files into a `Dataset`.
"""
from __future__ import annotations

import csv
import gzip
import logging
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from atec_automl.data.formats import ARROW_TYPE, KEY_KINDS, TableFormat, convert_column
from atec_automl.errors import DataError

log = logging.getLogger(__name__)
SUFFIXES = (".csv", ".csv.gz", ".parquet")
BLOCK_BYTES = 16 << 20  # CSV bytes per parallel block: large blocks keep chunks and per-block dictionaries few
OTHER_DELIMITERS = {";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}
KEY_OUTPUT = {"id": "event_id", "time": "ts", "date": "ts", "label": "label"}


def file_kind(path: Path) -> str:
    """'csv' or 'parquet', from the file name."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    raise DataError(str(path), f"unknown file type; expected one of {', '.join(SUFFIXES)}")


def read_header(path: Path) -> list[str]:
    """Column names of a file, after checking that it exists, is not empty and is comma-separated UTF-8."""
    if not path.is_file():
        raise DataError(str(path), "file not found")
    if path.stat().st_size == 0:
        raise DataError(str(path), "empty file (0 bytes)")
    if file_kind(path) == "parquet":
        try:
            header = pq.read_schema(path).names
        except (pa.ArrowInvalid, OSError) as error:
            raise DataError(str(path), f"not a readable parquet file ({_first_line(error)})") from None
    else:
        header = _csv_header(path)
    _check_no_duplicate_names(path, header)
    return header


def _check_no_duplicate_names(path: Path, header: list[str]) -> None:
    """Raise for the first column name the header holds twice (a reader would silently keep only one)."""
    seen: dict[str, int] = {}
    for field, name in enumerate(header, start=1):
        if name in seen:
            raise DataError(str(path), f"the header names this column twice (fields {seen[name]} and {field})", column=name)
        seen[name] = field


def _csv_header(path: Path) -> list[str]:
    """The first line of a CSV file, split on commas; a one-column header with `;`/tab/`|` is an error."""
    try:
        with _open_bytes(path) as stream:
            line = stream.readline(1 << 20)
    except (OSError, EOFError) as error:
        raise DataError(str(path), f"cannot read ({_first_line(error)})") from None
    if not line.strip():
        raise DataError(str(path), "empty file (no header line)")
    try:
        text = line.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise DataError(str(path), f"the header line is not UTF-8{_encoding_hint(line)}") from None
    header = next(csv.reader([text]))
    if len(header) == 1:
        counts = Counter(ch for ch in text if ch in OTHER_DELIMITERS)
        if counts:
            delimiter = counts.most_common(1)[0][0]
            raise DataError(
                str(path),
                f"the header is a single column; the file seems {OTHER_DELIMITERS[delimiter]}-separated, "
                "expected comma-separated CSV",
            )
    return header


def _open_bytes(path: Path) -> IO[bytes]:
    """The file's (decompressed) bytes."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def check_required(path: Path, header: list[str], required: list[str]) -> None:
    """Raise for the first required column the header lacks."""
    for column in required:
        if column not in header:
            shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
            raise DataError(str(path), f"missing required column (the header has: {shown})", column=column)


def read_part(path: Path, part: str, header: list[str], kinds: dict[str, str], file_format: TableFormat) -> pa.Table:
    """One file as a table: event_id, ts, label (null for tests), ts_resolution, then the format's columns, in file row order."""
    started = time.perf_counter()
    wanted = {c: k for c, k in kinds.items() if c in header and (k != "label" or part == "train")}
    if file_kind(path) == "csv":
        try:
            table = _read_csv(path, wanted, file_format)
        except (OSError, EOFError, zlib.error) as error:
            _raise_cut_short(path, error)
    else:
        table = _read_parquet(path, wanted)
    if table.num_rows == 0:
        raise DataError(str(path), "no data rows (only a header)")
    converted = convert_table(table, path, kinds, file_format)
    log.info("%s: %s, %s rows in %.1f s", part, path, f"{table.num_rows:,}", time.perf_counter() - started)
    return converted


def _read_csv(path: Path, wanted: dict[str, str], file_format: TableFormat) -> pa.Table:
    """Read the wanted columns with their target types; on failure find and name the offending cell."""
    types = {c: ARROW_TYPE[k] for c, k in wanted.items()}
    try:
        table = pa_csv.read_csv(path, read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES), convert_options=_convert_options(types))
    except pa.ArrowInvalid as error:
        _explain_csv_failure(path, error, wanted, file_format)
        raise DataError(str(path), f"unreadable CSV ({_first_line(error)})") from None
    _check_dictionaries_utf8(path, table)
    return table


def _raise_cut_short(path: Path, error: BaseException) -> None:
    """Raise for a compressed CSV whose stream breaks off, naming the first row it does not hold whole."""
    lines = 0
    try:
        with _open_bytes(path) as stream:
            for block in iter(lambda: stream.read1(1 << 20), b""):
                lines += block.count(b"\n")
    except (OSError, EOFError, zlib.error):
        raise DataError(
            str(path), f"the compressed file is cut short or corrupt ({_first_line(error)}); rows from here on are lost", row=max(lines, 1)
        ) from None
    raise DataError(str(path), f"cannot read ({_first_line(error)})") from None


def _convert_options(types: dict[str, pa.DataType]) -> pa_csv.ConvertOptions:
    """Read only these columns, with these types; an empty cell is null."""
    return pa_csv.ConvertOptions(
        column_types=types,
        include_columns=list(types),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def _explain_csv_failure(path: Path, error: pa.ArrowInvalid, wanted: dict[str, str], file_format: TableFormat) -> None:
    """Raise a DataError locating what made Arrow's fast typed read fail (if it can be located)."""
    message = str(error)
    if "invalid UTF8" in message:
        _raise_non_utf8(path)
    if "CSV parse error" in message:
        _raise_bad_row(path)
    if "conversion error" in message:
        as_text = {c: pa.string() for c in wanted}
        try:
            table = pa_csv.read_csv(path, convert_options=_convert_options(as_text))
        except pa.ArrowInvalid:
            _raise_non_utf8(path)
            return
        for column, kind in wanted.items():
            convert_column(table[column], kind, file_format.missing_values, str(path), column)


def _raise_bad_row(path: Path) -> None:
    """Raise for the first row whose field count differs from the header's."""
    bad = []

    def remember(row: pa_csv.InvalidRow) -> str:
        """Keep the bad row and read on."""
        bad.append(row)
        return "skip"

    pa_csv.read_csv(
        path,
        read_options=pa_csv.ReadOptions(use_threads=False),
        parse_options=pa_csv.ParseOptions(invalid_row_handler=remember),
    )
    if bad:
        row = bad[0]
        raise DataError(
            str(path),
            f"{row.actual_columns} fields where the header has {row.expected_columns}: {row.text[:80]!r}",
            row=row.number - 1 if row.number is not None else None,
        )


def _check_dictionaries_utf8(path: Path, table: pa.Table) -> None:
    """Arrow does not check UTF-8 in dictionary-typed CSV columns: check their values."""
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            for chunk in column.chunks:
                try:
                    chunk.dictionary.validate(full=True)
                except pa.ArrowInvalid:
                    _raise_non_utf8(path)


def _raise_non_utf8(path: Path) -> None:
    """Raise naming the first line that is not UTF-8."""
    with _open_bytes(path) as stream:
        for number, line in enumerate(stream):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(str(path), f"not UTF-8{_encoding_hint(line)}", row=number or None) from None


def _encoding_hint(line: bytes) -> str:
    """A hint at the encoding of a non-UTF-8 line."""
    try:
        line.decode("gb18030")
    except UnicodeDecodeError:
        return "; convert the file to UTF-8"
    return " (it looks GBK/GB18030-encoded); convert the file to UTF-8"


def _read_parquet(path: Path, wanted: dict[str, str]) -> pa.Table:
    """Read the wanted columns of a parquet file, categories straight into dictionaries."""
    categories = [c for c, k in wanted.items() if k == "category"]
    try:
        return pq.read_table(path, columns=list(wanted), read_dictionary=categories)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(str(path), f"not a readable parquet file ({_first_line(error)})") from None


def convert_table(table: pa.Table, path: Path, kinds: dict[str, str], file_format: TableFormat) -> pa.Table:
    """Typed output columns: event_id, ts, label, ts_resolution, then the format's own columns (absent ones all null)."""
    rows = table.num_rows
    keys, others = {}, {}
    for column, kind in kinds.items():
        if column in table.column_names:
            values = convert_column(table[column], kind, file_format.missing_values, str(path), column)
        else:
            values = pa.nulls(rows, pa.float32() if kind == "label" else ARROW_TYPE[kind])
        if kind in KEY_KINDS:
            keys[KEY_OUTPUT[kind]] = values
        else:
            others[column] = values
    times = keys["ts"]
    return pa.table({
        "event_id": keys["event_id"],
        "ts": pa.array(times.start, type=pa.int64()),
        "label": keys["label"],
        "ts_resolution": pa.array(times.resolution, type=pa.int32()),
        **others,
    })


def _first_line(error: BaseException) -> str:
    """First line of an exception's message."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
