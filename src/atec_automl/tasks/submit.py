"""task=submit: refit the best entry (or `submit.entry=<id>`, or a blend of the top `submit.blend_top`)
on all labelled days and write `submissions/<name>/{test_a.csv,test_b.csv,manifest.json}`; an identical
earlier submission (same entries, data, commit and settings) is reused instead. The refit runs on this
run's trainer (`trainer=cpu` refits an entry swept on GPU on the CPU), said in one line when it differs
from the entry's."""
from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from atec_automl.tasks._experiment import prepare, submit_configured


def run(cfg: DictConfig) -> None:
    """Prepare the data and features, then submit."""
    submit_configured(cfg, prepare(cfg), Path(HydraConfig.get().runtime.output_dir))
