"""`task=score file=preds.csv`: score an outside prediction file on the local validation days.

The file (CSV, optionally gzip) has the data's id column (`event_id` or `id`; `id` is always
accepted) and a `score` column. It is scored on the scored days of the last fold of the configured
split (`cfg.split`) of the configured data (`cfg.data`); rows for other events are ignored. Every
scored event needs exactly one finite score. `score.add=true` records it on the leaderboard as
family "file" (study `score.study`). Rows in errors are counted from 1 at the first data line.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from atec_automl.data.dataset import Dataset
from atec_automl.errors import AtecError, DataError
from atec_automl.evaluation import FoldResult, build_entry
from atec_automl.leaderboard import DuplicateEntryError, Entry, Leaderboard
from atec_automl.split import Fold
from atec_automl.tasks._experiment import load_data

NAN_TEXTS = {"", "nan", "na", "n/a", "null", "none"}


class PredictionFile(NamedTuple):
    """A validated prediction file: unique ids, finite scores, and the name of its id column."""

    ids: np.ndarray
    scores: np.ndarray
    id_column: str


def read_prediction_file(path: Path, id_column: str) -> PredictionFile:
    """Read and validate the file; its id column is `id_column` (the data's) or `id`."""
    file = str(path)
    if not path.is_file():
        raise DataError(file, "file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(file, f"not a readable CSV ({str(error).splitlines()[0]})") from None
    found = id_column if id_column in table.columns else "id" if "id" in table.columns else None
    if found is None:
        raise DataError(file, f"no id column: expected {id_column!r} or 'id' and 'score', found {list(table.columns)}")
    if "score" not in table.columns:
        raise DataError(file, f"no 'score' column, found {list(table.columns)}")
    ids = table[found].str.strip()
    _check_ids(ids, file, found)
    return PredictionFile(ids.to_numpy(dtype=str), _parse_scores(table["score"], file), found)


def _check_ids(ids: pd.Series, file: str, column: str) -> None:
    """Fail on the first empty or repeated id."""
    empty = np.flatnonzero((ids == "").to_numpy())
    if len(empty):
        raise DataError(file, "missing id", column=column, row=int(empty[0]) + 1)
    repeated = np.flatnonzero(ids.duplicated().to_numpy())
    if len(repeated):
        row = int(repeated[0])
        first = int(np.flatnonzero((ids == ids.iloc[row]).to_numpy())[0])
        raise DataError(file, f"duplicate id {ids.iloc[row]!r} (first at row {first + 1})", column=column, row=row + 1)


def _parse_scores(text: pd.Series, file: str) -> np.ndarray:
    """Scores as float64; fail on the first missing/NaN, non-numeric or infinite one."""
    stripped = text.str.strip()
    values = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        row = int(bad[0])
        cell = stripped.iloc[row]
        if cell.lower() in NAN_TEXTS:
            problem = "missing or NaN score"
        elif np.isinf(values[row]):
            problem = f"infinite score {cell!r}"
        else:
            problem = f"non-numeric score {cell!r}"
        raise DataError(file, problem, column="score", row=row + 1)
    return values


def fold_predictions(predictions: PredictionFile, dataset: Dataset, fold: Fold, file: str) -> FoldResult:
    """The file's scores of the fold's scored events; fails if any scored event has none."""
    frame = dataset.frame
    scored_ids = frame["event_id"].to_numpy(dtype=str)[fold.scored]
    by_id = pd.Series(predictions.scores, index=predictions.ids)
    scores = by_id.reindex(scored_ids).to_numpy()
    missing = np.flatnonzero(np.isnan(scores))
    if len(missing):
        raise DataError(file, f"{len(missing)} of the {len(scored_ids)} scored events ({fold.describe()}) have no "
                              f"score, e.g. id {str(scored_ids[missing[0]])!r}", column=predictions.id_column)
    return FoldResult.of_scores(fold.name, (fold.first_scored_day, fold.last_scored_day), scored_ids,
                                frame["label"].to_numpy()[fold.scored], scores)


def file_entry(cfg: DictConfig, path: Path, dataset: Dataset, split_description: str,
               scored: FoldResult) -> Entry:
    """A leaderboard entry (family "file") for the scored file."""
    return build_entry([scored], family="file", study=str(cfg.score.study), trial=None,
                       params={"file": str(path.resolve())}, config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
                       data_fingerprint=dataset.fingerprint, split=split_description)


def run(cfg: DictConfig) -> None:
    """Score `cfg.file`, print the result and optionally add it to the leaderboard."""
    if not cfg.get("file"):
        raise AtecError("task=score needs file=<prediction CSV with columns id (or the data's id column) and score>")
    path = Path(str(cfg.file))
    predictions = read_prediction_file(path, instantiate(cfg.data.format).id_column)
    dataset = load_data(cfg.data)
    split = instantiate(cfg.split)
    fold = split.folds(dataset)[-1]
    scored = fold_predictions(predictions, dataset, fold, str(path))
    entry = file_entry(cfg, path, dataset, f"{split!r}; {fold.describe()}", scored)
    print(f"{path}: scored {len(scored.label)} events of {fold.describe()} "
          f"({len(predictions.ids) - len(scored.label)} other rows ignored)")
    print(f"score {entry.score:.4f}  TPR1 {entry.tpr1:.4f}  TPR2 {entry.tpr2:.4f}  TPR3 {entry.tpr3:.4f}  "
          f"AUC {entry.auc:.4f}")
    if cfg.score.add:
        board = Leaderboard(cfg.leaderboard.url or cfg.leaderboard.path)
        try:
            print(f"added to {board.location} as entry {board.add(entry)}")
        except DuplicateEntryError as duplicate:
            print(f"not added: the same predictions are already entry {duplicate.existing_id} of {board.location}")
