"""One event's fields converted in plain Python when every value is plainly valid; else the general path decides.

`event_table_from_records` validates events as a file's rows with Arrow, a fixed cost of milliseconds
per request whatever its size: most of a one-event request's time. `PlainEvents.row` reads one record
without it, but only when each value has a form whose conversion is certain (a time written
`YYYY-MM-DD HH[:MM[:SS]]` of a real day and second, a plain decimal number within the float32
range, any text for a category or an id): the result is then the row the general path gives. Any
other value (an unparseable time, a non-number, a missing id, a value of another type) returns None
and the caller runs the general path, which accepts or refuses it with its own one-line reason; so
the decisions and messages are the general path's by construction. `tests/test_serve_fast.py`
compares both paths on the same events.
"""
from __future__ import annotations

import calendar
import datetime
import math
import re

from atec_automl.data.formats import FLOAT32_MAX, TableFormat, _is_number

WRITTEN_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2})(?::(\d{2}))?(?::(\d{2}))?")
PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
RESOLUTION = {13: 3600, 16: 60, 19: 1}
PLAIN_KINDS = {"id", "time", "label", "category", "float64"}


class PlainEvents:
    """What `row` needs of a format, worked out once: the columns by kind and the missing markers."""

    def __init__(self, file_format: TableFormat, kinds: dict[str, str]):
        self.usable = set(kinds.values()) <= PLAIN_KINDS and all(
            PLAIN_NUMBER.fullmatch(v) or not _is_number(v) for v in file_format.missing_values)
        self.kinds = {c: k for c, k in kinds.items() if k != "label"}
        self.label = next((c for c, k in kinds.items() if k == "label"), None)
        self.required = file_format.required_for("test_a")
        self.markers = {""} | set(file_format.missing_values)
        self.number_markers = {float(v) for v in file_format.missing_values if PLAIN_NUMBER.fullmatch(v)}

    def row(self, record: object) -> dict | None:
        """The converted row of one record (event_id, ts, label, ts_resolution, the fields), or None when the
        general path must decide."""
        if not self.usable or not isinstance(record, dict):
            return None
        if any(record.get(c) in (None, "") for c in self.required):
            return None
        row: dict = {}
        for column, kind in self.kinds.items():
            text = _text(record.get(column))
            if text is False:
                return None
            if kind == "time":
                times = None if text is None else _time(text)
                if times is None:
                    return None
                row["ts"], row["ts_resolution"] = times
            elif kind == "id":
                if text is None or text in self.markers:
                    return None
                row["event_id"] = text
            elif kind == "category":
                row[column] = None if text is None or text in self.markers else text
            else:
                number = self._number(text)
                if number is False:
                    return None
                row[column] = number
        return {"event_id": row.pop("event_id"), "ts": row.pop("ts"), "label": None,
                "ts_resolution": row.pop("ts_resolution"), **row}

    def _number(self, text: str | None) -> float | None | bool:
        """A plain decimal's value (None when empty or a missing marker); False when the general path must read it."""
        if text is None or text == "":
            return None
        if not PLAIN_NUMBER.fullmatch(text):
            return False
        value = float(text)
        if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
            return False
        return None if value in self.number_markers else value


def _text(value: object) -> str | None | bool:
    """A record's value as a CSV cell's text (`load._cell_text`); False for a type the general path refuses."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return repr(value)


def _time(text: str) -> tuple[int, int] | None:
    """(seconds since 1970, resolution) of a written time of a real day and second; None otherwise."""
    match = WRITTEN_TIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) if g is not None else 0 for g in match.groups())
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    return calendar.timegm(moment.timetuple()), RESOLUTION[len(text)]
