"""Submissions: refit the chosen leaderboard entry (or a rank-average blend of the top k) on every
labelled day, predict test_a and test_b, validate, and write the A/B files atomically.

`submissions/<name>/` holds `test_a.csv` and `test_b.csv` (`<id column>,score`, one row per test
row) and `manifest.json` (entries, their configs, data fingerprint, git commit, time). The folder
is built under a temporary name and renamed into place, so a crash never leaves half of it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from scipy.stats import rankdata

from atec_automl.data.dataset import Dataset
from atec_automl.errors import AtecError
from atec_automl.features.build import build_features
from atec_automl.leaderboard import Entry, Leaderboard, current_git_commit
from atec_automl.metric import atec_score, auc
from atec_automl.models.base import ModelData
from atec_automl.pipeline import Prepared, refit_all
from atec_automl.progress import progress
from atec_automl.split import last_days_rows

BOARDS = ("test_a", "test_b")


@dataclass
class Submission:
    """Scores for each board's test rows, in timeline order, and how they were made."""

    scores: dict[str, np.ndarray]
    entries: list[Entry]
    name: str


def choose_entries(board: Leaderboard, fingerprint: str, entry_id: int | None, blend_top: int) -> list[Entry]:
    """`entry_id`'s entry, else the best `blend_top` entries scored on this data."""
    if entry_id is not None:
        entry = board.get(int(entry_id))
        if entry.data_fingerprint != fingerprint:
            raise AtecError(f"submit: entry {entry_id} was scored on data {entry.data_fingerprint[:12]}, "
                            f"not on the configured data {fingerprint[:12]}")
        return [entry]
    ranked = [e for e in board.ranked(data=fingerprint) if e.family not in ("file", "blend")]
    if not ranked:
        raise AtecError(f"submit: the leaderboard {board.path} has no model entry for data {fingerprint[:12]}; "
                        "run a sweep (python run.py task=sweep) first")
    return ranked[:max(1, int(blend_top))]


def entry_config(entry: Entry, cfg: DictConfig) -> DictConfig:
    """The entry's recorded config, with this run's data section (same fingerprint, today's paths)."""
    recorded = OmegaConf.create(entry.config_yaml)
    recorded.data = cfg.data
    return recorded


def test_rows(dataset: Dataset) -> dict[str, np.ndarray]:
    """Row positions of each board's test part that has rows."""
    rows = {board: dataset.part_rows(board) for board in BOARDS}
    rows = {board: r for board, r in rows.items() if len(r)}
    if not rows:
        raise AtecError("submit: the data has no test_a or test_b rows to predict (set data.test_a / data.test_b)")
    return rows


def predict_entry(entry: Entry, cfg: DictConfig, prepared: Prepared, rows: dict[str, np.ndarray], work_dir: Path) -> dict[str, np.ndarray]:
    """Refit one entry on all labelled days and predict every board's rows."""
    entry_cfg = entry_config(entry, cfg)
    same_features = OmegaConf.to_container(entry_cfg.features, resolve=True) == OmegaConf.to_container(cfg.features, resolve=True)
    features = prepared.features if same_features else build_features(prepared.dataset, entry_cfg.features)
    refit_on = Prepared(prepared.dataset, features, prepared.folds)
    progress(f"[submit] refitting entry {entry.id} ({entry.family}, {entry.label()}, score {entry.score:.4f}) "
             f"on {len(prepared.dataset.part_rows('train')):,} labelled rows")
    model = refit_all(entry_cfg, refit_on, entry.best_iteration, work_dir / f"entry{entry.id}")
    return {board: model.predict(ModelData(features, board_rows)) for board, board_rows in rows.items()}


def rank_average(predictions: list[np.ndarray]) -> np.ndarray:
    """Mean of each prediction's normalised rank (in (0, 1]); a single prediction passes through."""
    if len(predictions) == 1:
        return predictions[0]
    return np.mean([rankdata(p) / len(p) for p in predictions], axis=0)


def make_submission(cfg: DictConfig, prepared: Prepared, board: Leaderboard, work_dir: Path) -> Submission:
    """Refit and predict the chosen entries; blend them when there are several."""
    entries = choose_entries(board, prepared.dataset.fingerprint, cfg.submit.entry, cfg.submit.blend_top)
    rows = test_rows(prepared.dataset)
    per_entry = [predict_entry(entry, cfg, prepared, rows, work_dir) for entry in entries]
    scores = {b: rank_average([p[b] for p in per_entry]) for b in rows}
    ids = "-".join(str(e.id) for e in entries)
    default_name = f"{time.strftime('%Y%m%d-%H%M%S')}-{'entry' if len(entries) == 1 else 'blend'}{ids}"
    return Submission(scores, entries, str(cfg.submit.name or default_name))


def submission_frame(dataset: Dataset, board: str, scores: np.ndarray) -> pd.DataFrame:
    """The `<id column>,score` table of one board, checked: one row per test row, no NaN, no duplicates."""
    rows = dataset.part_rows(board)
    ids = dataset.frame["event_id"].to_numpy()[rows]
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(rows):
        raise AtecError(f"submit {board}: {len(scores)} scores for {len(rows)} test rows")
    if not np.isfinite(scores).all():
        raise AtecError(f"submit {board}: {int((~np.isfinite(scores)).sum())} scores are NaN or infinite "
                        f"(first id {ids[~np.isfinite(scores)][0]})")
    frame = pd.DataFrame({dataset.id_column: ids, "score": scores})
    duplicated = frame[dataset.id_column].duplicated()
    if duplicated.any():
        raise AtecError(f"submit {board}: duplicate id {frame[dataset.id_column][duplicated].iloc[0]}")
    return frame


def manifest(submission: Submission, prepared: Prepared, cfg: DictConfig) -> dict:
    """What the files are and how they were made."""
    return {
        "name": submission.name,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": current_git_commit(),
        "data_fingerprint": prepared.dataset.fingerprint,
        "data_files": {part: str(path) for part, path in prepared.dataset.sources.items()},
        "method": "entry" if len(submission.entries) == 1 else f"rank-average blend of top {len(submission.entries)}",
        "entries": [{"id": e.id, "family": e.family, "study": e.study, "trial": e.trial, "score": e.score,
                     "tpr1": e.tpr1, "tpr2": e.tpr2, "tpr3": e.tpr3, "auc": e.auc, "params": e.params,
                     "refit_steps": None if e.best_iteration is None else e.best_iteration + 1,
                     "config_yaml": e.config_yaml} for e in submission.entries],
        "files": {board: {"file": f"{board}.csv", "rows": int(len(scores))} for board, scores in submission.scores.items()},
    }


def write_submission(submission: Submission, prepared: Prepared, cfg: DictConfig) -> Path:
    """Write the board files and the manifest into `submissions/<name>/`, all or nothing."""
    root = Path(cfg.submit.dir)
    target = root / submission.name
    if target.exists():
        raise AtecError(f"submit: {target} already exists; choose another submit.name")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{submission.name}.", dir=root))
    try:
        for board, scores in submission.scores.items():
            submission_frame(prepared.dataset, board, scores).to_csv(staging / f"{board}.csv", index=False, float_format="%.8g")
        (staging / "manifest.json").write_text(json.dumps(manifest(submission, prepared, cfg), indent=2, default=str))
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def true_scores(hidden_labels: Path, dataset: Dataset, scores: dict[str, np.ndarray], scored_days: int) -> dict[str, dict]:
    """ATEC score and AUC of each board on its last `scored_days` days, from hidden labels (synthetic
    data); a board whose scored rows lack a class gets `undefined` (the reason) instead."""
    labels = pd.read_parquet(hidden_labels) if hidden_labels.suffix == ".parquet" else pd.read_csv(hidden_labels, dtype={"event_id": str})
    label_index = pd.Index(labels["event_id"].astype(str))
    hidden = labels["is_fraud"].to_numpy(dtype=np.float64)
    days = dataset.day()
    results = {}
    for board, board_scores in scores.items():
        rows = dataset.part_rows(board)
        ids = dataset.frame["event_id"].to_numpy()[rows]
        position = label_index.get_indexer(ids.astype(str))
        y = np.where(position >= 0, hidden[position], np.nan)
        scored = np.isin(rows, last_days_rows(days, rows, scored_days)) & np.isin(y, (0.0, 1.0))
        try:
            atec = atec_score(y[scored], board_scores[scored])
        except AtecError as undefined:
            results[board] = {"rows": int(scored.sum()), "undefined": str(undefined)}
            continue
        results[board] = {**atec._asdict(), "auc": auc(y[scored], board_scores[scored]), "rows": int(scored.sum())}
    return results
