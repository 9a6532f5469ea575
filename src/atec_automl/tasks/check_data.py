"""`task=check-data`: load and validate the configured files, then print what they hold.

Prints rows and time range per file, train label counts, the missing share of the emptiest
columns (`check_data.top`, or every column with `check_data.all_columns=true`) overall and per
file, the data fingerprint and the load time. A malformed file stops with one `error: ...` line.
"""
from __future__ import annotations

import time

import pandas as pd
from omegaconf import DictConfig

from atec_automl.data.dataset import PARTS, TIMELINE_COLUMNS, Dataset
from atec_automl.tasks._experiment import load_data


def run(cfg: DictConfig) -> None:
    """Load the data of `cfg.data` and print its summary."""
    started = time.perf_counter()
    dataset = load_data(cfg.data)
    seconds = time.perf_counter() - started
    options = cfg.get("check_data") or {}
    top = None if options.get("all_columns", False) else int(options.get("top", 10))
    print(summary(dataset, seconds, top))


def summary(dataset: Dataset, load_seconds: float, top: int | None) -> str:
    """The printed summary; `top=None` lists the missing share of every column."""
    return "\n".join(
        [
            _files_table(dataset),
            "",
            _label_counts(dataset),
            "",
            _missing_table(dataset, top),
            "",
            f"fingerprint: {dataset.fingerprint}",
            f"load seconds: {load_seconds:.2f}",
        ]
    )


def _present_parts(dataset: Dataset) -> list[str]:
    """Parts that have rows, in part order."""
    counts = dataset.frame["part"].value_counts()
    return [p for p in PARTS if counts.get(p, 0) > 0]


def _files_table(dataset: Dataset) -> str:
    """Rows and first/last event time of each file."""
    lines = [f"{'part':<8} {'rows':>12}  {'first time':<19}  {'last time':<19}  file"]
    for part in _present_parts(dataset):
        ts = dataset.frame["ts"].to_numpy()[dataset.part_rows(part)]
        first, last = (str(pd.Timestamp(int(s), unit="s")) for s in (ts.min(), ts.max()))
        lines.append(f"{part:<8} {len(ts):>12,}  {first:<19}  {last:<19}  {dataset.sources.get(part, '')}")
    return "\n".join(lines)


def _label_counts(dataset: Dataset) -> str:
    """Counts and shares of the train labels 1 (black), 0 (white), -1 (grey)."""
    labels = dataset.frame["label"].to_numpy()[dataset.part_rows("train")]
    parts = []
    for value, name in ((1, "black"), (0, "white"), (-1, "grey")):
        count = int((labels == value).sum())
        parts.append(f"{value} ({name}) {count:,} ({100 * count / max(len(labels), 1):.2f}%)")
    return "train labels: " + ", ".join(parts)


def _missing_table(dataset: Dataset, top: int | None) -> str:
    """Missing share per column, overall and per file, emptiest first."""
    frame = dataset.frame
    columns = [c for c in frame.columns if c not in TIMELINE_COLUMNS]
    missing = frame[columns].isna()
    parts = _present_parts(dataset)
    table = pd.DataFrame({"all": missing.mean()})
    for part in parts:
        table[part] = missing.iloc[dataset.part_rows(part)].mean()
    absent = table.index[table["all"] == 1.0]
    table = table.drop(index=absent).sort_values("all", ascending=False, kind="stable")
    shown = table if top is None else table.head(top)
    limit = "" if top is None else f" (top {len(shown)} of {len(table)}; check_data.all_columns=true for all)"
    lines = [f"missing share per column{limit}", f"{'column':<24}" + "".join(f"{name:>10}" for name in table.columns)]
    for column, row in shown.iterrows():
        lines.append(f"{column:<24}" + "".join(f"{100 * share:>9.1f}%" for share in row))
    if len(absent):
        lines.append(f"missing in every row ({len(absent)}): {', '.join(absent)}")
    return "\n".join(lines)
