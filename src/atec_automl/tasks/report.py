"""`task=report`: write the leaderboard's self-contained HTML report.

Keys: `leaderboard.path`; `report.path` (null: `report.html` beside the store), `report.top` (entries
whose ROC curves are drawn), `report.storage` (Optuna storage for importances; else `study.storage`
when the config has a study group; else correlations over the leaderboard entries).
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from atec_automl.leaderboard import Leaderboard
from atec_automl.report import write_report


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


def run(cfg: DictConfig) -> None:
    """Write the report and say where."""
    board = Leaderboard(cfg.leaderboard.url or cfg.leaderboard.path)
    path = write_report(board, report_path(cfg), top=int(cfg.report.top), storage=optuna_storage(cfg))
    count = len(board.ranked())
    print(f"Wrote {path} ({count} entries{'; the leaderboard is empty' if count == 0 else ''})")
