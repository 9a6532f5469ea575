"""Entry point: `python run.py task=<name> [overrides]`; see README.md.

The overrides are composed once before Hydra starts: a config that does not compose (an unknown
option such as `model=xgboost`, bad override syntax, a key that is not there) stops with one
`error:` line and status 2 instead of Hydra's message over several lines. Command lines with
Hydra's own flags (`--help`, `-m`, `--cfg job`, ...) go to Hydra unchecked.
"""
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from atec_automl.tasks import dispatch, fail, register_resolvers
from atec_automl.tasks._config import composition_error

CONF_DIR = Path(__file__).resolve().parent / "conf"


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Run the task named by `cfg.task`."""
    dispatch(cfg)


if __name__ == "__main__":
    register_resolvers()
    error = composition_error(CONF_DIR, sys.argv[1:])
    if error is not None:
        fail(error)
    main()
