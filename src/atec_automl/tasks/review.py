"""task=review: the next batch of grey training rows for a person to review, as a CSV to fill in.

It fits two-step PU (the configured model, its configured step count) on every training row with the
reviewed labels so far, scores the grey rows nobody reviewed yet, and picks `review.size` of the most
uncertain, diverse ones as `labels=active_pu` would (its settings if `labels=active_pu`, else its
defaults; `review.size` defaults to `labels.queries_per_round`). The CSV (`review.out`, default
`<run dir>/review.csv`) has `event_id`, an empty `label` column to fill with 1 (fraud) or 0 (not
fraud), the model's `score`, the `reason` it was chosen, the event's time and current label, and the
event's fields. Read it back with `labels.reviews=PATH` on
any later run: its labels go into the reviewed-labels store that every run and policy uses. A
`review.out` that holds filled-in labels the store does not have (or is not a review CSV) is not
written over: the run stops first, in one line.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from atec_automl.data.dataset import TIMELINE_COLUMNS, Dataset
from atec_automl.errors import AtecError
from atec_automl.experts import ReviewExpert
from atec_automl.labels import GREY, ActivePU, Batch, check_labels
from atec_automl.models.base import Model, ModelData
from atec_automl.pipeline import Prepared
from atec_automl.reviews import review_rows
from atec_automl.tasks._experiment import build_policy, prepare, recipe, review_store
from atec_automl.staging import write_atomically

def review_policy(cfg: DictConfig) -> ActivePU:
    """`cfg.labels`'s policy if it is active PU, else active PU with its defaults (and `cfg.seed`)."""
    policy = build_policy(cfg)
    return policy if isinstance(policy, ActivePU) else ActivePU(seed=int(cfg.seed))


def batch_size(cfg: DictConfig, policy: ActivePU) -> int:
    """`review.size`, else the policy's queries per round."""
    size = cfg.review.get("size")
    size = policy.queries_per_round if size is None else int(size)
    if size < 1:
        raise AtecError(f"review.size={size}: give at least 1 row")
    return size


def next_batch(cfg: DictConfig, prepared: Prepared, root_dir: Path) -> tuple[Batch, np.ndarray]:
    """The rows to review next and the training rows' current labels (before the review)."""
    policy = review_policy(cfg)
    policy.expert = ReviewExpert.of(prepared.reviews or {}, prepared.dataset)
    rows = prepared.dataset.part_rows("train")
    data = ModelData(prepared.features, rows)
    current = check_labels(data, prepared.training_labels[rows])
    labels, weight, asked = policy.with_record(data, current)
    if not ((labels == GREY) & ~asked).any():
        raise AtecError("task=review: every grey training row has been reviewed; nothing left to ask")

    fit_recipe = recipe(cfg)

    def make_model() -> Model:
        return fit_recipe.build_model(root_dir)

    batch = policy.next_batch(ModelData(prepared.features, rows, None, weight), labels, make_model, None,
                              batch_size(cfg, policy), asked)
    return batch, current[batch.positions]


def review_frame(dataset: Dataset, batch: Batch, current: np.ndarray) -> pd.DataFrame:
    """The CSV to fill in: id, empty label, score, reason, time, current label, then the event's fields."""
    rows = np.array([query.row for query in batch.queries], dtype=np.int64)
    events = dataset.frame.iloc[rows]
    fields = [c for c in dataset.frame.columns if c not in TIMELINE_COLUMNS]
    head = pd.DataFrame({
        "event_id": events["event_id"].astype(str).to_numpy(),
        "label": "",
        "score": [round(query.score, 6) for query in batch.queries],
        "reason": [query.reason(batch.pool, batch.clusters) for query in batch.queries],
        "time": pd.to_datetime(events["ts"].to_numpy(), unit="s").strftime("%Y-%m-%d %H:%M:%S"),
        "current_label": current.astype(int),
    })
    return pd.concat([head, events[fields].reset_index(drop=True)], axis=1)


def check_overwrite(out: Path, cfg: DictConfig) -> None:
    """Refuse to write the next batch over a file holding filled-in labels the store does not have yet (unless this
    run reads that file in with `labels.reviews`), or over a file that is not a review CSV: either would be lost."""
    if not out.exists() or (cfg.labels.get("reviews") and Path(str(cfg.labels.reviews)).resolve() == out.resolve()):
        return
    try:
        filled = {event_id: label for _, event_id, label in review_rows(out, f"review.out={out}") if label}
    except (AtecError, OSError, UnicodeDecodeError, csv.Error):
        raise AtecError(f"review.out={out}: the file exists and is not a review CSV; choose another path") from None
    stored = review_store(cfg).read()
    unread = [i for i, label in filled.items() if stored.get(i) != (int(label) if label in ("0", "1") else None)]
    if unread:
        raise AtecError(f"review.out={out}: it holds {len(unread)} filled-in labels not in the reviewed-labels store "
                        f"(event_id {unread[0]!r} first); read them in with labels.reviews={out}, or choose another "
                        "review.out")


def run(cfg: DictConfig) -> None:
    """Read `labels.reviews` if given, pick the next batch, write it as a CSV atomically, say how to read it back."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    out = Path(str(cfg.review.out)) if cfg.review.get("out") else run_dir / "review.csv"
    check_overwrite(out, cfg)
    prepared = prepare(cfg)
    batch, current = next_batch(cfg, prepared, run_dir / "work")
    frame = review_frame(prepared.dataset, batch, current)
    write_atomically(out, lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8"))
    store = review_store(cfg)
    print(f"[review] {len(frame)} grey training rows to review ({len(prepared.reviews or {})} reviewed so far in "
          f"{store.path}) written to {out}\n[review] fill its label column with 1 (fraud) or 0 (not fraud), leave "
          f"unsure rows empty, then run with labels.reviews={out}")
