"""Tasks run by `run.py`: `task=check-data` runs `atec_automl.tasks.check_data.run(cfg)`.

Every task module defines `run(cfg: DictConfig) -> None`. The config is checked in one pass first
(`tasks._config`). A user-facing error (`AtecError`, also when a constructor that Hydra instantiates
raises it) is printed as one line on stderr with exit status 2; `debug=true` shows the traceback
instead. Each run prints its run dir (`[run] dir: ...`), whose log file also keeps the progress lines.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from atec_automl.errors import AtecError
from atec_automl.progress import log_progress_to_files, progress
from atec_automl.tasks._config import check_config, user_error


def available_tasks() -> list[str]:
    """Names of the tasks, as given on the command line."""
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def dispatch(cfg: DictConfig) -> None:
    """Import the task module named by `cfg.task` and run it, turning user errors into one line."""
    name = str(cfg.task)
    if name not in available_tasks():
        fail(f"task={name}: no such task; choose one of: {', '.join(available_tasks())}")
    try:
        check_config(cfg)
        module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
        log_progress_to_files()
        progress(f"[run] dir: {HydraConfig.get().runtime.output_dir}")
        module.run(cfg)
    except (AtecError, InstantiationException) as error:
        found = user_error(error)
        if found is None or debug(cfg):
            raise
        fail(str(found))


def debug(cfg: DictConfig) -> bool:
    """Whether `debug=true` asks for tracebacks (False when the setting itself is broken)."""
    try:
        return cfg.get("debug", False) is True
    except OmegaConfBaseException:
        return False


def register_resolvers() -> None:
    """`${pid:}`, the process id: in `hydra.run.dir`, so that runs started in the same second get their own dirs."""
    OmegaConf.register_new_resolver("pid", os.getpid, replace=True)


def fail(message: str) -> None:
    """Print `error: message` on stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
