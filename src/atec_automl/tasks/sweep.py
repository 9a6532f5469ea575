"""task=sweep (the default): an Optuna study per family of `sweep.models`, the ranked leaderboard,
then (with `sweep.submit=true`) the A/B files of the best entry."""
from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from atec_automl.pipeline import prepare
from atec_automl.progress import progress
from atec_automl.search.sweep import run_sweep
from atec_automl.split import few_frauds_warning
from atec_automl.tasks import leaderboard
from atec_automl.tasks.submit import submit


def run(cfg: DictConfig) -> None:
    """Sweep, submit, and end with the leaderboard of this data."""
    prepared = prepare(cfg)
    for fold in prepared.folds:
        progress(f"[sweep] {fold.describe()}")
    warning = few_frauds_warning(prepared.folds, prepared.labels, int(cfg.split.get("min_frauds", 30)))
    if warning:
        progress(f"[sweep] {warning}")
    results = run_sweep(cfg, prepared, Path(HydraConfig.get().runtime.output_dir))
    for result in results:
        best = "-" if result.best_score is None else f"{result.best_score:.4f}"
        progress(f"[sweep] {result.family}: {result.counted} trials complete or pruned in {result.study_name}, best {best}")
    if cfg.sweep.submit:
        submit(cfg, prepared)
    leaderboard.run(OmegaConf.merge(cfg, {"leaderboard": {"data": prepared.dataset.fingerprint}}))
