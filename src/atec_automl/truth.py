"""The test boards' hidden labels (synthetic data only), for reporting true scores and nothing else.

Nothing that chooses a model, a step or an entry reads them: they give each entry its true A and B
scores beside the local one, so that the harness can measure how far its leaderboard is trusted.
A board is scored like the contest: its last `scored_days` days, 0/1 rows only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from atec_automl.data.dataset import Dataset
from atec_automl.errors import AtecError
from atec_automl.metric import atec_score, auc
from atec_automl.ranks import spearman
from atec_automl.split import last_days_rows

BOARDS = ("test_a", "test_b")


@dataclass(frozen=True)
class HiddenTruth:
    """Per board: the timeline rows (in board order) that the contest would score, and their labels."""

    scored: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    scored_days: int = 0

    @classmethod
    def load(cls, path: Path, dataset: Dataset, scored_days: int) -> HiddenTruth:
        """Read `path` (event_id, is_fraud; parquet or CSV) and align it with each board of `dataset`."""
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"event_id": str})
        index = pd.Index(table["event_id"].astype(str))
        hidden = table["is_fraud"].to_numpy(dtype=np.float64)
        days = dataset.day()
        ids = dataset.frame["event_id"].to_numpy().astype(str)
        scored, labels = {}, {}
        for board in BOARDS:
            rows = dataset.part_rows(board)
            if not len(rows):
                continue
            position = index.get_indexer(ids[rows])
            y = np.where(position >= 0, hidden[position], np.nan)
            keep = np.isin(rows, last_days_rows(days, rows, scored_days)) & np.isin(y, (0.0, 1.0))
            scored[board], labels[board] = np.flatnonzero(keep), y[keep]
        return cls(scored, labels, scored_days)

    def board_figures(self, scores: dict[str, np.ndarray]) -> dict[str, dict]:
        """ATEC score, TPRs, AUC and rows of each board's scores (aligned to the board's rows);
        a board whose scored rows lack a class gets `undefined` (the reason) instead."""
        results = {}
        for board, board_scores in scores.items():
            if board not in self.scored:
                continue
            y, s = self.labels[board], np.asarray(board_scores)[self.scored[board]]
            try:
                results[board] = {**atec_score(y, s)._asdict(), "auc": auc(y, s), "rows": len(y)}
            except AtecError as undefined:
                results[board] = {"rows": len(y), "undefined": str(undefined)}
        return results

    def board_scores(self, scores: dict[str, np.ndarray]) -> dict[str, float | None]:
        """The true ATEC score of each board (None where undefined)."""
        return {board: figures.get("score") for board, figures in self.board_figures(scores).items()}


@dataclass(frozen=True)
class Trust:
    """How well local scores predicted the true ones over a set of entries."""

    entries: int
    spearman_a: float | None
    spearman_b: float | None
    optimism_a: float | None
    optimism_b: float | None

    def line(self) -> str:
        """One line for the end of a sweep."""
        def fmt(value: float | None, sign: bool = False) -> str:
            return "-" if value is None else (f"{value:+.4f}" if sign else f"{value:.3f}")
        return (f"trust over {self.entries} entries: Spearman(local, true A) {fmt(self.spearman_a)}, "
                f"Spearman(local, true B) {fmt(self.spearman_b)}, mean optimism (local - true) "
                f"A {fmt(self.optimism_a, True)}, B {fmt(self.optimism_b, True)}")


def trust(local: list[float], true_a: list[float | None], true_b: list[float | None]) -> Trust:
    """Rank correlation and mean optimism of local scores against the true A and B scores."""
    def pair(true: list[float | None]) -> tuple[float | None, float | None]:
        known = [(loc, t) for loc, t in zip(local, true) if t is not None]
        if not known:
            return None, None
        optimism = float(np.mean([loc - t for loc, t in known]))
        if len(known) < 3 or len({loc for loc, _ in known}) < 2 or len({t for _, t in known}) < 2:
            return None, optimism
        return spearman([loc for loc, _ in known], [t for _, t in known]), optimism
    (sa, oa), (sb, ob) = pair(true_a), pair(true_b)
    return Trust(len(local), sa, sb, oa, ob)
