"""`task=report`: write the leaderboard's self-contained HTML report, for one data set.

Keys: `leaderboard.path`; `leaderboard.data` (the data fingerprint to show; null: the configured
data's, when its files are there, else the best entry's); `report.path` (null: `report.html` beside
the store), `report.top` (entries whose ROC curves are drawn), `report.storage` (Optuna storage for
importances; else `study.storage` when the config has a study group; else correlations over the
leaderboard entries); `submit.dir` (the submissions listed).
"""
from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from atec_automl.data.dataset import PARTS
from atec_automl.data.load import data_fingerprint, file_sha256
from atec_automl.leaderboard import Leaderboard
from atec_automl.report import shown_data, write_report


def report_path(cfg: DictConfig) -> Path:
    """Where the report goes: `report.path`, or `report.html` beside the leaderboard store."""
    if cfg.report.path:
        return Path(cfg.report.path)
    return Path(cfg.leaderboard.path).parent / "report.html"


def optuna_storage(cfg: DictConfig) -> str | None:
    """`report.storage`, else `study.storage` if the config has one, else None."""
    if cfg.report.get("storage"):
        return str(cfg.report.storage)
    study = cfg.get("study")
    if study is None or OmegaConf.is_missing(study, "storage") or not study.get("storage"):
        return None
    return str(study.storage)


def configured_fingerprint(data_cfg: DictConfig) -> str | None:
    """The fingerprint `load_dataset` gives the configured files, None when any is unset or absent
    (nothing is generated or loaded for a report)."""
    if any(OmegaConf.is_missing(data_cfg, part) for part in PARTS):
        return None
    paths = {part: Path(str(data_cfg[part])) for part in PARTS if data_cfg.get(part) is not None}
    if "train" not in paths or not all(path.is_file() for path in paths.values()):
        return None
    return data_fingerprint(instantiate(data_cfg.format), {part: file_sha256(path) for part, path in paths.items()})


def report_data(cfg: DictConfig) -> str | None:
    """`leaderboard.data`, else the configured data's fingerprint, else None (the report takes the best entry's)."""
    if cfg.leaderboard.get("data"):
        return str(cfg.leaderboard.data)
    return configured_fingerprint(cfg.data) if cfg.get("data") is not None else None


def run(cfg: DictConfig) -> None:
    """Write the report and say where."""
    board = Leaderboard(cfg.leaderboard.url or cfg.leaderboard.path)
    data = report_data(cfg)
    path = write_report(board, report_path(cfg), top=int(cfg.report.top), storage=optuna_storage(cfg), data=data,
                        submissions=Path(cfg.submit.dir))
    shown, _ = shown_data(board, data)
    count = len(board.ranked(data=shown)) if shown else 0
    print(f"Wrote {path} ({count} entries{'; the leaderboard is empty' if count == 0 else ''})")
