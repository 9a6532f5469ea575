"""Outside prediction files (`task=score file=...`): read and validate one, and take its scores of a fold.

The file (CSV, optionally gzip) has the data's id column (`event_id` or `id`; `id` is always
accepted) and a `score` column; ids are unique and non-empty, scores finite. Every scored event of
the fold needs a score; rows for other events are ignored. Rows in errors are counted from 1 at
the first data line.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from atec_automl.data.dataset import Dataset
from atec_automl.errors import DataError
from atec_automl.evaluation import FoldResult
from atec_automl.split import Fold

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
