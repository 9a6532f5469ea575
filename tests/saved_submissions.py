"""Real, small refit submissions for the artifact, predict and serve tests: tiny synthetic data,
one leaderboard entry fitted on the last fold, then `make_submission` + `write_submission`."""
from __future__ import annotations

from functools import partial
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from atec_automl.evaluation import build_entry
from atec_automl.leaderboard import Leaderboard
from atec_automl.pipeline import Prepared, fit_fold, predict_boards
from atec_automl.submit import Submission, SubmitSettings, make_submission, write_submission
from atec_automl.tasks._experiment import entry_recipe, plain, prepare, recipe
from conftest import compose_config

ROWS = 40_000
FAMILY_OVERRIDES = {
    "catboost": ["model=catboost", "model.iterations=40", "model.early_stopping_rounds=10", "model.thread_count=1"],
    "mlp": ["model=mlp", "model.epochs=2", "model.hidden_units=32", "trainer.cpu_threads=1"],
    "cnn_lstm": ["model=cnn_lstm", "model.epochs=1", "model.lstm_hidden=16", "model.conv_channels=8",
                 "trainer.cpu_threads=1"],
}


def small_config(root: Path, family: str, resolution: str = "second", extra: tuple[str, ...] = (),
                 data_root: Path | None = None) -> DictConfig:
    """The composed config of a tiny synthetic run writing everything under `root` (the data under
    `data_root` when given, so that test modules can share one generated data set)."""
    data_dir = (data_root or root) / f"synthetic-{ROWS}-{resolution}"
    overrides = [f"data.rows={ROWS}", f"data.dir={data_dir}", f"data.time_resolution={resolution}",
                 "features.cache_dir=null", "logger=none", f"leaderboard.path={root / 'leaderboard.sqlite'}",
                 f"submit.dir={root / 'submissions'}", "leaderboard.bootstrap=0", "split.n_folds=1",
                 *FAMILY_OVERRIDES[family], *extra]
    return compose_config(overrides)


def refit_submission(cfg: DictConfig, prepared: Prepared, name: str, refit: bool = True) -> tuple[Submission, Path]:
    """Fit `cfg.model` on the last fold, record it, and write the refit (or stored-prediction) submission `name`."""
    root = Path(cfg.submit.dir).parent
    fitted = recipe(cfg)
    result, model = fit_fold(fitted, prepared, prepared.folds[-1], root / "work" / name)
    boards = predict_boards(model, prepared)
    entry = build_entry([result], 0, family=fitted.family, study=name, trial=0, params={},
                        config_yaml=OmegaConf.to_yaml(cfg, resolve=True), data_fingerprint=prepared.dataset.fingerprint,
                        split="last", policy="as_black", test_scores=boards)
    entry_id = Leaderboard(cfg.leaderboard.path).add(entry)
    settings = SubmitSettings(Path(cfg.submit.dir), entry=entry_id, name=name, refit=refit)
    submission = make_submission(settings, prepared, Leaderboard(cfg.leaderboard.path), root / "work" / name,
                                 entry_recipe=partial(entry_recipe, cfg))
    return submission, write_submission(submission, prepared, settings, plain(cfg.data.format))


def prepared_data(cfg: DictConfig) -> Prepared:
    """Generate (once per folder) and prepare the tiny synthetic data."""
    return prepare(cfg)
