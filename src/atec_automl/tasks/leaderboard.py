"""`task=leaderboard`: print the ranked entries of the leaderboard.

Keys: `leaderboard.url` (else the SQLite file `leaderboard.path`), `leaderboard.top` (null: all), and
the filters `leaderboard.family`, `leaderboard.study`, `leaderboard.data` (a data fingerprint or its prefix).
"""
from __future__ import annotations

from omegaconf import DictConfig

from atec_automl.leaderboard import Leaderboard
from atec_automl.leaderboard_table import print_leaderboard


def run(cfg: DictConfig) -> None:
    """Print the ranked table, or say that nothing matches."""
    board = Leaderboard(cfg.leaderboard.url or cfg.leaderboard.path)
    print_leaderboard(board, cfg.leaderboard.top, cfg.leaderboard.family, cfg.leaderboard.study, cfg.leaderboard.data)
