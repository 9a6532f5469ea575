"""User-facing errors: one line, naming the file, column and problem."""
from __future__ import annotations


class AtecError(Exception):
    """An error the user can fix; `run.py` prints its message in one line and exits non-zero."""


class DataError(AtecError):
    """Malformed input data: names the file, the column and the first offending row."""

    def __init__(self, file: str, problem: str, column: str | None = None, row: int | None = None):
        self.file, self.column, self.row, self.problem = file, column, row, problem
        where = [f"file {file}"]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {problem}")
