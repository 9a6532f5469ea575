"""Tasks run by `run.py`: `task=check-data` runs `atec_automl.tasks.check_data.run(cfg)`.

Every task module defines `run(cfg: DictConfig) -> None`. A user-facing error (`AtecError`)
is printed as one line on stderr with exit status 2; `debug=true` shows the traceback instead.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

from omegaconf import DictConfig

from atec_automl.errors import AtecError


def available_tasks() -> list[str]:
    """Names of the tasks, as given on the command line."""
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def dispatch(cfg: DictConfig) -> None:
    """Import the task module named by `cfg.task` and run it, turning user errors into one line."""
    name = str(cfg.task)
    if name not in available_tasks():
        _fail(f"unknown task {name!r}; choose one of: {', '.join(available_tasks())}")
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    try:
        module.run(cfg)
    except AtecError as error:
        if cfg.get("debug", False):
            raise
        _fail(str(error))


def _fail(message: str) -> None:
    """Print `error: message` on stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
