"""Progress: lines (`[sweep] ...`, `[submit] ...`) printed for the user and kept in the run's log file,
and, on a terminal, one updating status line for the running trial."""
from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from tqdm import tqdm

LOGGER = logging.getLogger("atec_automl.progress")
REFRESH_SECONDS = 0.5


def progress(message: str) -> None:
    """Print `message` at once and write it to the run's log file."""
    print(message, flush=True)
    LOGGER.info(message)


def log_progress_to_files() -> None:
    """Send progress records to the root logger's file handlers only (Hydra's `<run dir>/run.log`):
    its console handler would repeat what `progress` printed already."""
    LOGGER.propagate = False
    LOGGER.setLevel(logging.INFO)
    LOGGER.handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


class TrialStatus:
    """The running trial's status line on a terminal: fold, epoch or iteration, validation value, time
    spent and left, best score so far. Off when `stream` is not a terminal (CI logs keep the one
    `[sweep]` line per finished trial), and then it costs nothing."""

    def __init__(self, title: str, unit: str, deadline: float | None, best: float | None,
                 stream: TextIO | None = None):
        self.title, self.unit, self.deadline, self.best = title, unit, deadline, best
        self.started = time.monotonic()
        self.fold = ""
        self._shown = 0.0
        self._bar = tqdm(file=stream or sys.stderr, bar_format="{desc}", disable=None, leave=False)

    @property
    def enabled(self) -> bool:
        """Whether the line is shown (the stream is a terminal)."""
        return not self._bar.disable

    def update(self, step: int, value: float) -> None:
        """Show the latest step and validation value (at most every REFRESH_SECONDS)."""
        now = time.monotonic()
        if not self.enabled or now - self._shown < REFRESH_SECONDS:
            return
        self._shown = now
        self._bar.set_description_str(self.line(step, value, now))

    def line(self, step: int, value: float, now: float) -> str:
        """The status line's text."""
        left = "" if self.deadline is None else f", {max(0.0, self.deadline - now):.0f} s of the budget left"
        best = "-" if self.best is None else f"{self.best:.4f}"
        return (f"[trial] {self.title} {self.fold} | {self.unit} {step} | validation {value:.4f} | "
                f"{now - self.started:.0f} s{left} | best {best}")

    def close(self) -> None:
        """Clear the line."""
        self._bar.close()
