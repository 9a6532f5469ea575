"""`task=score file=preds.csv`: score an outside prediction file on the local validation days.

The file (CSV, optionally gzip) has the data's id column (`event_id` or `id`; `id` is always
accepted) and a `score` column. It is scored on the scored days of the last fold of the configured
split (`cfg.split`) of the configured data (`cfg.data`); rows for other events are ignored. Every
scored event needs exactly one finite score. `score.add=true` records it on the leaderboard as
family "file" (study `score.study`). Rows in errors are counted from 1 at the first data line
(the reading and checks are `atec_automl.prediction_file`'s).
"""
from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from atec_automl.data.dataset import Dataset
from atec_automl.errors import AtecError
from atec_automl.evaluation import FoldResult, build_entry
from atec_automl.leaderboard import DuplicateEntryError, Entry, Leaderboard
from atec_automl.prediction_file import fold_predictions, read_prediction_file
from atec_automl.tasks._experiment import load_data


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
