"""Trials within the budget and full-size entries per hour of the default experiment on large synthetic data.

    python benchmarks/search_rate.py [--rows 1000000] [--family catboost] [--limit-s 7200] [--work-dir DIR] [OVERRIDE ...]
    python benchmarks/search_rate.py --study-db DIR/optuna.sqlite      # the figures of a run made before

Runs `python run.py data.rows=<rows> sweep.models=[<family>] sweep.submit=false` (the default
experiment otherwise: `study.timeout_s`, the fidelity rungs, the label-policy search; any Hydra
OVERRIDE given, e.g. `trainer.precision=bf16-mixed`, is passed on) on a fresh study and leaderboard
under `--work-dir`, stopped after `--limit-s` seconds if still running, then
reads the study and prints, with `uptime`:
- the trials finished within `study.timeout_s` of the first trial's start, and at which rung each
  stopped (the low-fidelity rungs are steps 1, 3, 9; a complete trial is a full-size fit);
- every full-size fit's wall time, and full-size entries per hour of the whole run;
- the trial that got the full-size fit and the rung scores that chose it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]


def run_sweep(rows: int, family: str, work: Path, limit_s: float, overrides: list[str]) -> float:
    """Run the default experiment's sweep of one family; returns its wall seconds (the limit if stopped)."""
    work.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "run.py", f"data.rows={rows}", f"sweep.models=[{family}]", "sweep.submit=false",
               f"study.storage=sqlite:///{work}/optuna.sqlite", f"leaderboard.path={work}/leaderboard.sqlite",
               f"hydra.run.dir={work}/run", *overrides]
    started = time.perf_counter()
    with open(work / "sweep.log", "w") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "WANDB_MODE": "disabled"})
        try:
            process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait()
    return time.perf_counter() - started


def stopped_at(trial: optuna.trial.FrozenTrial) -> str:
    """Where a finished trial stopped: the rung step of its last score, or the full-size fit."""
    if trial.state == optuna.trial.TrialState.COMPLETE:
        return "full size"
    if "skipped" in trial.user_attrs:
        return "skipped"
    steps = sorted(trial.intermediate_values)
    return f"rung step {steps[-1]}" + (" (deferred)" if "deferred" in trial.user_attrs else "") if steps else trial.state.name


def report(storage: str, budget_s: float, wall_s: float | None) -> None:
    """Print the figures of every study in `storage`."""
    for summary in optuna.get_all_study_summaries(storage):
        trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
        started = [t for t in trials if t.datetime_start is not None]
        if not started:
            continue
        first = min(t.datetime_start for t in started)
        finished = [t for t in started if t.datetime_complete is not None]
        within = [t for t in finished if (t.datetime_complete - first).total_seconds() <= budget_s]
        print(f"{summary.study_name}: {len(within)} trials finished within the {budget_s:.0f} s budget "
              f"({len(finished)} finished in all)")
        for t in finished:
            print(f"  trial {t.number:>2}: {stopped_at(t):<24} {(t.datetime_complete - t.datetime_start).total_seconds():7.0f} s"
                  f"  {'promoted from ' + str(t.user_attrs['promoted_from']) if 'promoted_from' in t.user_attrs else ''}")
        full = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
        running = [t for t in started if t.datetime_complete is None]
        for t in running:
            print(f"  trial {t.number:>2}: unfinished when stopped, started {(t.datetime_start - first).total_seconds():.0f} s "
                  f"after the first")
        if not full:
            print("  no full-size fit finished")
            continue
        span = wall_s or max((t.datetime_complete - first).total_seconds() for t in finished)
        print(f"  full-size entries: {len(full)} in {span / 3600:.2f} h = {len(full) / (span / 3600):.2f} per hour")


def main() -> None:
    """Run (or read) the sweep and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--family", default="catboost")
    parser.add_argument("--limit-s", type=float, default=7200.0)
    parser.add_argument("--budget-s", type=float, default=360.0, help="the run's study.timeout_s (default config: 360)")
    parser.add_argument("--work-dir", type=Path, default=REPO / "data" / "cache" / "search_rate")
    parser.add_argument("--study-db", type=Path, help="read the figures of an earlier run's optuna.sqlite instead")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides passed on to run.py")
    args = parser.parse_args()
    wall = None
    if args.study_db is None:
        work = args.work_dir / f"run-{os.getpid()}"
        wall = run_sweep(args.rows, args.family, work, args.limit_s, args.overrides)
        database = work / "optuna.sqlite"
    else:
        database = args.study_db
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    report(f"sqlite:///{database}", args.budget_s, wall)
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
