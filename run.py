"""Entry point: `python run.py task=<name> [overrides]`; see README.md."""
import hydra
from omegaconf import DictConfig

from atec_automl.tasks import dispatch


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Run the task named by `cfg.task`."""
    dispatch(cfg)


if __name__ == "__main__":
    main()
