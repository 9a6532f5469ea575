"""Experiment loggers: each trial is a run with its parameters, per-step metrics and final scores.

`logger=csv` (default) appends rows to `<run dir>/metrics.csv`; `logger=wandb` makes every trial a
wandb run (offline without a key; `WANDB_MODE` is respected) and finishes it after the trial;
`logger=none` logs nothing.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any


class TrialLogger:
    """Logs nothing; the interface the other loggers implement."""

    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        """Begin a run for one trial."""

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record metrics at a step (an epoch or iteration) or, without a step, as final values."""

    def finish(self, failed: bool = False) -> None:
        """End the current run."""


class CsvLogger(TrialLogger):
    """Appends `run, step, metric, value` rows to one CSV file."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.run = ""

    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        """Remember the run name for the rows that follow."""
        self.run = f"{group}/{name}"

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Append one row per metric, with a header when the file is new."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["run", "step", "metric", "value"])
            writer.writerows([self.run, "" if step is None else step, key, value] for key, value in metrics.items())


class WandbLogger(TrialLogger):
    """One wandb run per trial, grouped by study; offline unless WANDB_MODE or a key says otherwise."""

    def __init__(self, project: str, directory: str, mode: str | None = None, entity: str | None = None) -> None:
        import wandb

        self.wandb = wandb
        self.project, self.entity, self.directory = project, entity, directory
        self.mode = os.environ.get("WANDB_MODE") or mode or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.run = None

    def start(self, name: str, group: str, config: dict[str, Any]) -> None:
        """Start a wandb run named after the trial."""
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        self.run = self.wandb.init(project=self.project, entity=self.entity, name=name, group=group,
                                   config=config, dir=self.directory, mode=self.mode, reinit="finish_previous")

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Per-step metrics go to the history, final ones to the summary."""
        if self.run is None:
            return
        if step is None:
            self.run.summary.update(metrics)
        else:
            self.run.log({**metrics, "step": step})

    def finish(self, failed: bool = False) -> None:
        """Finish the run (marked failed when the trial failed)."""
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None
