"""Progress lines (`[sweep] ...`, `[submit] ...`): printed for the user and kept in the run's log file."""
from __future__ import annotations

import logging

LOGGER = logging.getLogger("atec_automl.progress")


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
