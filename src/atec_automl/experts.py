"""Experts that active PU learning asks about grey training rows.

An `Expert` answers for timeline row positions: 1.0 (fraud), 0.0 (not fraud) or NaN (no answer
yet). `on_record(rows)` gives the answers already given before this run, `ask(rows)` the answers to
a new query.

- `OracleExpert` (synthetic data only): answers every query from the generator's hidden labels
  (`true_fraud`); nothing is on record. It simulates a perfect analyst for benchmarks.
- `ReviewExpert` (labels.expert=file): the people who fill review files. Its answers are the reviewed
  labels of the store (see `atec_automl.reviews`); a new query has no answer until someone reviews it
  (`task=review` writes the batch to fill in).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from atec_automl.data.dataset import Dataset
from atec_automl.errors import AtecError

EXPERTS = ("oracle", "file")


class Expert(Protocol):
    """Answers about timeline rows: 1.0 fraud, 0.0 not fraud, NaN unknown."""

    name: str

    def on_record(self, rows: np.ndarray) -> np.ndarray:
        """Answers given before this run (NaN where none)."""

    def ask(self, rows: np.ndarray) -> np.ndarray:
        """Answers to a query about `rows` (NaN where the expert cannot answer now)."""


@dataclass(frozen=True)
class OracleExpert:
    """The hidden truth of every timeline row (synthetic data): a perfect analyst."""

    truth: np.ndarray
    name: str = "oracle"

    @classmethod
    def load(cls, path: Path | str | None, dataset: Dataset, data_name: str = "the data") -> OracleExpert:
        """Read the hidden labels file (event_id, is_fraud, true_fraud) and align it with `dataset`.

        A training row the file does not list is truly what its label says (the file lists every
        grey and every mislabelled training row).
        """
        if not path:
            raise AtecError(f"labels.expert=oracle answers from synthetic data's hidden labels, and {data_name} has "
                            "none (real data): use labels.expert=file with labels.reviews=PATH")
        path = Path(path)
        if not path.exists():
            raise AtecError(f"labels.expert=oracle: the hidden labels file {path} does not exist")
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"event_id": str})
        if "true_fraud" not in table.columns:
            raise AtecError(f"labels.expert=oracle: {path} has no true_fraud column (written by an older generator): "
                            "delete its directory to regenerate it")
        listed = pd.Series(table["true_fraud"].to_numpy(dtype=np.float64), index=table["event_id"].astype(str))
        ids = dataset.frame["event_id"].to_numpy().astype(str)
        labels = dataset.frame["label"].to_numpy(dtype=np.float64)
        truth = listed.reindex(ids).to_numpy().copy()
        told = np.isnan(truth) & np.isin(labels, (0.0, 1.0))
        truth[told] = labels[told]
        return cls(truth)

    def on_record(self, rows: np.ndarray) -> np.ndarray:
        """Nothing: the oracle only answers when asked."""
        return np.full(len(rows), np.nan)

    def ask(self, rows: np.ndarray) -> np.ndarray:
        """The true fraud status of each row."""
        return self.truth[np.asarray(rows)]


@dataclass(frozen=True)
class ReviewExpert:
    """The reviewed labels of the store, aligned to the timeline (NaN: never reviewed)."""

    reviewed: np.ndarray
    name: str = "file"

    @classmethod
    def of(cls, reviews: Mapping[str, int], dataset: Dataset) -> ReviewExpert:
        """The store's labels of the timeline's rows."""
        ids = dataset.frame["event_id"].to_numpy().astype(str)
        return cls(pd.Series(reviews, dtype=np.float64).reindex(ids).to_numpy())

    def on_record(self, rows: np.ndarray) -> np.ndarray:
        """The rows' reviewed labels."""
        return self.reviewed[np.asarray(rows)]

    def ask(self, rows: np.ndarray) -> np.ndarray:
        """The same: a row reviewed since the store was read waits for the next run."""
        return self.reviewed[np.asarray(rows)]


def check_expert_name(name: str) -> str:
    """`name` if it is a known expert, else a one-line error naming the key."""
    if name not in EXPERTS:
        raise AtecError(f"labels.expert={name!r}: choose one of {', '.join(EXPERTS)}")
    return name
