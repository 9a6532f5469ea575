"""The two ATEC file formats: which columns they have, of which kind, and how each kind is parsed.

A format is built from the `format` section of `conf/data/*.yaml` by `format_of` (its `_target_`
names the class). The loader reads a file into an Arrow table and hands each column to
`convert_column`, which turns it into the column's kind or raises a `DataError` naming the file,
the column, the first offending (1-based data) row and the value. Column kinds:

- `id`        the event's id, kept as a string
- `time`      "YYYY-MM-DD HH", "YYYY-MM-DD HH:MM" or "YYYY-MM-DD HH:MM:SS" (mixed is fine) -> `EventTimes`:
              int64 seconds of the start of what was written and its resolution (3600, 60 or 1 s)
- `date`      an integer day YYYYMMDD -> `EventTimes`: seconds at midnight, resolution one day
- `label`     1 black, 0 white, -1 grey -> float32
- `category`  anything -> dictionary of strings (`pandas` category after loading)
- `float64` / `float32`  finite numbers within the float32 range (features are float32); NaN is an error

Impossible dates and times (2017-02-30, second 60) are errors, not rolled into the next day.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from atec_automl.errors import AtecError, DataError

CATEGORY_TYPE = pa.dictionary(pa.int32(), pa.string())
LABEL_VALUES = (1.0, 0.0, -1.0)
KEY_KINDS = ("id", "time", "date", "label")
ARROW_TYPE = {
    "id": pa.string(),
    "time": pa.string(),
    "date": pa.string(),
    "label": pa.string(),
    "category": CATEGORY_TYPE,
    "float64": pa.float64(),
    "float32": pa.float32(),
}

RAW_COLUMNS = (
    "event_id", "user_id", "sample_seg", "gmt_occur", "client_ip", "network", "device_sign",
    "wireless_mac", "wifi_node_name", "phone_no", "cert_no", "ip_prov", "ip_city", "cert_prov",
    "cert_city", "card_bin_prov", "card_bin_city", "card_mobile_prov", "card_mobile_city",
    "card_cert_prov", "card_cert_city", "is_one_people", "mobile_oper_platform",
    "operation_channel", "pay_scene", "amt", "bank_card_no", "card_cert_no", "card_mobile",
    "opposing_cert_no", "opposing_user_phone", "opposing_id", "income_card_no",
    "income_card_cert_no", "income_card_mobile", "income_card_bank_code", "province", "city",
    "is_peer_pay", "version", "is_fraud", "dt",
)
RAW_NUMERIC = ("amt", "is_one_people", "is_peer_pay")
FEATURE_COLUMN = re.compile(r"^f(\d+)$")
FLOAT32_MAX = float(np.finfo(np.float32).max)
WRITTEN_DAY_AND_SECOND = r"-(?P<day>\d+)\s+\d+:\d+:(?P<second>\d+)\s*$"
SECONDS_PER_DAY = 86_400


class EventTimes(NamedTuple):
    """Each event's time as written: the start of the written interval and its length in seconds.

    `2017-09-05 13` is (13:00:00, 3600): the event happened at some second of that hour.
    """

    start: np.ndarray
    resolution: np.ndarray


class TableFormat:
    """A file format: its id, time and label columns, the kinds of its other columns.

    `required` names the columns a file must have (the label column only for train);
    any other known column a file lacks becomes all-missing. `missing_values` are the cell
    texts that mean "missing" (besides an empty cell) in every column but the label.
    """

    id_column: str
    time_column: str
    label_column: str
    time_kind: str

    def __init__(self, required: Sequence[str], missing_values: Sequence[str] = ()):
        self.required = list(required)
        self.missing_values = [str(v) for v in missing_values]

    def kinds(self, headers: Sequence[Sequence[str]]) -> dict[str, str]:
        """Column -> kind for every column this format reads, given the headers of all files."""
        raise NotImplementedError

    def required_for(self, part: str) -> list[str]:
        """Columns a file of this part must have: always the id and time, the label only in train."""
        always = [self.id_column, self.time_column]
        label = [self.label_column] if part == "train" and self.label_column in self.required else []
        others = [c for c in self.required if c not in (*always, self.label_column)]
        return always + label + others

    def config(self) -> dict:
        """Everything that changes how files are read, for the data fingerprint."""
        return {"format": type(self).__name__, "required": self.required, "missing_values": self.missing_values}

    def key_kind(self, column: str) -> str | None:
        """Kind of the id, time or label column, else None."""
        return {self.id_column: "id", self.time_column: self.time_kind, self.label_column: "label"}.get(column)


class RawEventFormat(TableFormat):
    """Semi-final raw fields (event_id, user_id, gmt_occur, ..., is_fraud, dt); `-1` means missing.

    `dt` (the day) repeats `gmt_occur` and is not kept. `amt`, `is_one_people` and `is_peer_pay`
    are numbers, every other field a category.
    """

    id_column = "event_id"
    time_column = "gmt_occur"
    label_column = "is_fraud"
    time_kind = "time"

    def __init__(
        self,
        required: Sequence[str] = ("event_id", "user_id", "gmt_occur", "is_fraud"),
        missing_values: Sequence[str] = ("-1",),
    ):
        super().__init__(required, missing_values)

    def kinds(self, headers: Sequence[Sequence[str]]) -> dict[str, str]:
        """The fixed semi-final schema, whatever the headers hold."""
        kinds = {}
        for column in RAW_COLUMNS:
            if column == "dt":
                continue
            kinds[column] = self.key_kind(column) or ("float64" if column in RAW_NUMERIC else "category")
        return kinds


class PrelimFormat(TableFormat):
    """Preliminary round: id, label, date (YYYYMMDD), f1..fN (any N) as float32; empty = missing."""

    id_column = "id"
    time_column = "date"
    label_column = "label"
    time_kind = "date"

    def __init__(self, required: Sequence[str] = ("id", "label", "date"), missing_values: Sequence[str] = ()):
        super().__init__(required, missing_values)

    def kinds(self, headers: Sequence[Sequence[str]]) -> dict[str, str]:
        """id, label, date, then every f<number> column of any file, in number order."""
        numbers = {int(m.group(1)) for header in headers for c in header if (m := FEATURE_COLUMN.match(c))}
        kinds = {c: self.key_kind(c) for c in (self.id_column, self.label_column, self.time_column)}
        kinds.update({f"f{n}": "float32" for n in sorted(numbers)})
        return kinds


FORMATS: dict[str, type[TableFormat]] = {f"{cls.__module__}.{cls.__name__}": cls for cls in (RawEventFormat, PrelimFormat)}
"""The formats by the `_target_` that `conf/data/*.yaml` and a submission's manifest name them with."""


def format_of(settings: Mapping[str, Any]) -> TableFormat:
    """The format a `format` mapping describes: its `_target_` class with the other keys as arguments."""
    target = settings.get("_target_")
    if target not in FORMATS:
        raise AtecError(f"data.format._target_: {target!r} is not a file format; choose one of {sorted(FORMATS)}")
    return FORMATS[target](**{key: value for key, value in settings.items() if key != "_target_"})


def convert_column(values: pa.ChunkedArray, kind: str, missing_values: Sequence[str], file: str, column: str):
    """Turn one read column into its kind: `EventTimes` for time/date, else an Arrow array."""
    converters = {
        "id": _to_id,
        "time": _to_seconds_from_datetime,
        "date": _to_seconds_from_yyyymmdd,
        "label": _to_label,
        "category": _to_category,
        "float64": _to_float,
        "float32": _to_float,
    }
    return converters[kind](values, kind=kind, missing_values=missing_values, file=file, column=column)


def _first_row(mask: pa.ChunkedArray | pa.Array) -> int:
    """1-based row of the first true (non-null) entry of a boolean mask."""
    return int(np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))[0]) + 1


def _fail_on_missing(values: pa.ChunkedArray, what: str, file: str, column: str) -> None:
    """Raise if any cell of a column that may not be missing is null."""
    if values.null_count:
        raise DataError(file, f"missing {what}", column=column, row=_first_row(pc.is_null(values)))


def _as_text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Cells as strings; whole floats without their '.0' (a parquet float column of ids)."""
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_floating(values.type):
        whole = pc.equal(pc.floor(values), values)
        if pc.all(pc.fill_null(whole, True)).as_py():
            values = values.cast(pa.int64())
    if pa.types.is_large_string(values.type):
        return values.cast(pa.string())
    return values if pa.types.is_string(values.type) else values.cast(pa.string())


def _to_id(values: pa.ChunkedArray, file: str, column: str, missing_values: Sequence[str], **_) -> pa.ChunkedArray:
    """Ids as strings; an empty or missing-marked id is an error."""
    text = _as_text(values)
    missing = pc.or_(pc.is_null(text), pc.is_in(text, value_set=pa.array([""] + list(missing_values))))
    if pc.any(missing).as_py():
        row = _first_row(missing)
        raise DataError(file, f"missing id {text[row - 1].as_py()!r}", column=column, row=row)
    return text


def _to_seconds_from_datetime(values: pa.ChunkedArray, file: str, column: str, **_) -> EventTimes:
    """'YYYY-MM-DD HH', 'YYYY-MM-DD HH:MM' or 'YYYY-MM-DD HH:MM:SS' (or a timestamp) -> start and resolution."""
    _fail_on_missing(values, "time", file, column)
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        seconds = values.cast(pa.timestamp("s"), safe=False).cast(pa.int64()).to_numpy()
        return EventTimes(seconds, np.ones(len(seconds), dtype=np.int32))
    text = _as_text(values)
    length = pc.utf8_length(text)
    padded = pc.case_when(
        pc.make_struct(pc.equal(length, 13), pc.equal(length, 16)),
        pc.binary_join_element_wise(text, ":00:00", ""),
        pc.binary_join_element_wise(text, ":00", ""),
        text,
    )
    stamps = pc.strptime(padded, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    expected = "expected 'YYYY-MM-DD HH' or 'YYYY-MM-DD HH:MM:SS'"
    seconds = _seconds_or_fail(text, stamps, _rolled_over_times(padded, stamps), ("time", expected), file, column)
    written = length.to_numpy()
    return EventTimes(seconds, np.select([written == 13, written == 16], [3600, 60], 1).astype(np.int32))


def _rolled_over_times(padded: pa.ChunkedArray, stamps: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Rows whose parsed day or second differs from the written one, None when there is none.

    Arrow's strptime turns 2017-02-30 into 2017-03-02 and second 60 into the next minute. The
    strict ISO-8601 cast fails on both, so when it succeeds (the usual case) nothing rolled over;
    otherwise the written day and second are compared with the parsed ones.
    """
    try:
        padded.cast(pa.timestamp("s"))
        return None
    except pa.ArrowInvalid:
        pass
    written = pc.extract_regex(padded, WRITTEN_DAY_AND_SECOND)
    day = pc.struct_field(written, "day").cast(pa.int64())
    second = pc.struct_field(written, "second").cast(pa.int64())
    return pc.or_(pc.not_equal(day, pc.day(stamps)), pc.not_equal(second, pc.second(stamps)))


def _to_seconds_from_yyyymmdd(values: pa.ChunkedArray, file: str, column: str, **_) -> EventTimes:
    """An integer day 20170905 -> seconds at that day's midnight, resolution one day."""
    _fail_on_missing(values, "date", file, column)
    text = _as_text(values)
    stamps = pc.strptime(text, format="%Y%m%d", unit="s", error_is_null=True)
    bad_length = pc.not_equal(pc.utf8_length(text), 8)
    stamps = pc.if_else(bad_length, pa.scalar(None, stamps.type), stamps)
    parsed_day = pc.utf8_lpad(pc.day(stamps).cast(pa.string()), 2, "0")
    rolled = pc.not_equal(pc.utf8_slice_codeunits(text, 6, 8), parsed_day)
    seconds = _seconds_or_fail(text, stamps, rolled, ("date", "expected an integer YYYYMMDD"), file, column)
    return EventTimes(seconds, np.full(len(seconds), SECONDS_PER_DAY, dtype=np.int32))


def _seconds_or_fail(
    text: pa.ChunkedArray, stamps: pa.ChunkedArray, rolled: pa.ChunkedArray | None, what: tuple[str, str], file: str, column: str
) -> np.ndarray:
    """Seconds of parsed stamps; the first unparsed or impossible (rolled-over) cell is an error naming its value.

    `what` is the kind of cell ("time") and the layout expected of it.
    """
    unparsed = pc.is_null(stamps)
    bad = unparsed if rolled is None else pc.or_(unparsed, pc.fill_null(rolled, False))
    if pc.any(bad).as_py():
        row = _first_row(bad)
        noun, expected = what
        problem = f"unparseable {noun}, {expected}" if unparsed[row - 1].as_py() else f"impossible {noun} (no such day or second)"
        raise DataError(file, f"{problem}: {text[row - 1].as_py()!r}", column=column, row=row)
    return stamps.cast(pa.int64()).to_numpy()


def _to_label(values: pa.ChunkedArray, file: str, column: str, **_) -> pa.ChunkedArray:
    """1, 0 or -1 as float32; anything else (or missing) is an error."""
    numbers = _to_number(values, pa.float64(), file, column, problem="label outside {1, 0, -1}")
    _fail_on_missing(numbers, "label (expected 1, 0 or -1)", file, column)
    outside = pc.invert(pc.is_in(numbers, value_set=pa.array(LABEL_VALUES)))
    if pc.any(outside).as_py():
        row = _first_row(outside)
        raise DataError(file, f"label {str(values[row - 1].as_py())!r} outside {{1, 0, -1}}", column=column, row=row)
    return numbers.cast(pa.float32())


def _to_category(values: pa.ChunkedArray, missing_values: Sequence[str], **_) -> pa.ChunkedArray:
    """Dictionary-encoded strings; the missing markers and empty strings become null."""
    if values.type != CATEGORY_TYPE:
        values = _as_text(values).dictionary_encode()
    markers = pa.array([""] + list(missing_values))
    chunks = [_null_markers(chunk, markers) for chunk in values.chunks]
    return pa.chunked_array(chunks, type=CATEGORY_TYPE)


def _null_markers(chunk: pa.DictionaryArray, markers: pa.Array) -> pa.DictionaryArray:
    """Set to null the entries of one dictionary chunk whose value is a missing marker."""
    marked = pc.is_in(chunk.dictionary, value_set=markers)
    if not pc.any(marked).as_py():
        return chunk
    is_marker = pc.fill_null(pc.take(marked, chunk.indices), False)
    indices = pc.if_else(is_marker, pa.scalar(None, pa.int32()), chunk.indices)
    return pa.DictionaryArray.from_arrays(indices, chunk.dictionary)


def _to_float(values: pa.ChunkedArray, kind: str, missing_values: Sequence[str], file: str, column: str, **_) -> pa.ChunkedArray:
    """Finite numbers within the float32 range as float64/float32; a missing marker (e.g. -1) becomes null."""
    numbers = _to_number(values, ARROW_TYPE[kind], file, column, problem="non-numeric value")
    _fail_on_non_finite(values, numbers, file, column)
    markers = [float(v) for v in missing_values if _is_number(v)]
    if markers:
        marked = pc.is_in(numbers, value_set=pa.array(markers, type=numbers.type))
        numbers = pc.if_else(marked, pa.scalar(None, numbers.type), numbers)
    return numbers


def _fail_on_non_finite(values: pa.ChunkedArray, numbers: pa.ChunkedArray, file: str, column: str) -> None:
    """Raise for the first NaN, infinite value or value beyond the float32 range (features are float32)."""
    bad = pc.or_(pc.is_nan(numbers), pc.greater(pc.abs(numbers), FLOAT32_MAX))
    if pc.any(bad).as_py():
        row = _first_row(bad)
        problem = "not a number" if np.isnan(numbers[row - 1].as_py()) else "infinite or beyond the float32 range (±3.4e38)"
        raise DataError(file, f"{problem}: {values[row - 1].as_py()!r}", column=column, row=row)


def _to_number(values: pa.ChunkedArray, target: pa.DataType, file: str, column: str, problem: str) -> pa.ChunkedArray:
    """Cast to a number type; the first cell that is not a number is an error naming its value."""
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return values.cast(target)
    text = pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)
    try:
        return text.cast(target)
    except pa.ArrowInvalid:
        row = _first_non_number(text)
        raise DataError(file, f"{problem}: {text[row - 1].as_py()!r}", column=column, row=row) from None


def _first_non_number(text: pa.ChunkedArray) -> int:
    """1-based row of the first non-empty cell that does not parse as a number."""
    offset = 0
    for chunk in text.chunks:
        for start in range(0, len(chunk), 65_536):
            block = chunk.slice(start, 65_536)
            try:
                block.cast(pa.float64())
            except pa.ArrowInvalid:
                for i, cell in enumerate(block.to_pylist()):
                    if cell is not None and not _is_number(cell):
                        return offset + start + i + 1
        offset += len(chunk)
    raise AssertionError("a cast failed but every cell parses as a number")


def _is_number(text: str) -> bool:
    """Whether Arrow (and Python) would read this text as a float."""
    try:
        pa.scalar(text).cast(pa.float64())
    except pa.ArrowInvalid:
        return False
    return True
