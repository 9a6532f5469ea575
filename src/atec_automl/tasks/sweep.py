"""task=sweep (the default): an Optuna study per family of `sweep.models`, the ranked leaderboard,
then (with `sweep.submit=true`) the A/B files of the best entry."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from atec_automl.leaderboard import Leaderboard
from atec_automl.leaderboard_table import print_leaderboard
from atec_automl.pipeline import Prepared
from atec_automl.progress import progress
from atec_automl.search.sweep import FamilyResult, run_sweep
from atec_automl.split import few_frauds_warning
from atec_automl.tasks._experiment import prepare, submit_configured
from atec_automl.tasks._sweep import Compose, compose_config, config_dir, family_plan, sweep_settings


def sweep(cfg: DictConfig, prepared: Prepared, run_dir: Path, overrides: Sequence[str], conf_dir: Path,
          compose_with: Compose) -> list[FamilyResult]:
    """Sweep every family of `sweep.models`, each recomposed from the command line's `overrides`."""
    plans = [family_plan(cfg, str(family), prepared, overrides, conf_dir, compose_with) for family in cfg.sweep.models]
    board = Leaderboard(cfg.leaderboard.url or cfg.leaderboard.path)
    return run_sweep(plans, sweep_settings(cfg), prepared, board, run_dir)


def run(cfg: DictConfig) -> None:
    """Sweep, submit, and end with the leaderboard of this data."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    prepared = prepare(cfg)
    for fold in prepared.folds:
        progress(f"[sweep] {fold.describe()}")
    warning = few_frauds_warning(prepared.folds, prepared.labels, int(cfg.split.get("min_frauds", 30)))
    if warning:
        progress(f"[sweep] {warning}")
    results = sweep(cfg, prepared, run_dir, HydraConfig.get().overrides.task, config_dir(), compose_config)
    for result in results:
        best = "-" if result.best_score is None else f"{result.best_score:.4f}"
        progress(f"[sweep] {result.family}: {result.counted} trials complete or pruned in {result.study_name}, best {best}")
    if cfg.sweep.submit:
        submit_configured(cfg, prepared, run_dir)
    board = Leaderboard(cfg.leaderboard.url or cfg.leaderboard.path)
    print_leaderboard(board, cfg.leaderboard.top, cfg.leaderboard.family, cfg.leaderboard.study,
                      prepared.dataset.fingerprint)
