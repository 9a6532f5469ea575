"""Trials per hour of the smoke sweep, this checkout against an earlier commit, measured side by side.

    python benchmarks/smoke_rate.py [--before 99ce983] [--rounds 2] [--trials 2]

Checks the earlier commit out into a temporary git worktree and runs, alternately for each side
(`--rounds` times, so both see the same machine load), a warm smoke sweep: `python run.py
experiment=smoke labels=as_black split.n_folds=1 sweep.submit=false` on its own data and feature
cache (built by an untimed first run), with a fresh study and leaderboard each time. The work per
trial is the same on both sides (one fold, one label policy; the earlier commit had no other
choice). Trials per hour count the complete and pruned trials in the study storage over the whole
run's wall time, start-up included; a failed trial stops the benchmark. The default `--before` is the last commit before the speed work of issue
9 (thread counts, metric, feature cache, fused optimizers, linear features). Prints `uptime`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
FIXED = ["experiment=smoke", "labels=as_black", "split.n_folds=1", "sweep.submit=false"]


def checkout(revision: str, into: Path) -> Path:
    """A detached worktree of `revision` at `into` (removed by `remove_checkout`)."""
    subprocess.run(["git", "worktree", "add", "--detach", str(into), revision], cwd=REPO, check=True,
                   capture_output=True)
    return into


def remove_checkout(path: Path) -> None:
    """Remove a worktree made by `checkout`."""
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, check=False, capture_output=True)


def sweep(code: Path, work: Path, name: str, trials: int) -> tuple[float, int]:
    """Run one smoke sweep of the code at `code`; returns (wall seconds, finished trials)."""
    out = work / name
    storage = f"sqlite:///{out}/optuna.sqlite"
    command = [sys.executable, "run.py", *FIXED, f"study.n_trials={trials}", f"data.dir={work}/data-{code.name}",
               f"features.cache_dir={work}/features-{code.name}", f"leaderboard.path={out}/leaderboard.sqlite",
               f"study.storage={storage}", f"hydra.run.dir={out}/run"]
    env = {**os.environ, "PYTHONPATH": str(code / "src"), "WANDB_MODE": "disabled"}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{code.name}: exit {result.returncode}\n{result.stderr[-2000:]}")
    states = [t.state for s in optuna.get_all_study_summaries(storage) for t in summary_trials(storage, s.study_name)]
    failed = states.count(optuna.trial.TrialState.FAIL)
    if failed:
        raise SystemExit(f"{code.name}: {failed} trials failed; see {out}/run")
    return seconds, sum(state in COUNTED for state in states)


def summary_trials(storage: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    """The trials of one study in `storage`."""
    return optuna.load_study(study_name=study_name, storage=storage).trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="99ce983")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=2, help="trials per family")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sides = {"before": checkout(args.before, work / "before"), "after": REPO}
        try:
            for name, code in sides.items():
                sweep(code, work, f"warm-{name}", 1)
            rates: dict[str, list[float]] = {name: [] for name in sides}
            for round_ in range(args.rounds):
                for name, code in sides.items():
                    seconds, finished = sweep(code, work, f"{name}-{round_}", args.trials)
                    rates[name].append(finished / seconds * 3600)
                    print(f"{name:>6} round {round_}: {finished} trials in {seconds:.0f} s = {rates[name][-1]:.0f} trials/h")
        finally:
            remove_checkout(sides["before"])
    mean = {name: sum(r) / len(r) for name, r in rates.items()}
    print(f"trials/hour: before ({args.before}) {mean['before']:.0f}, after {mean['after']:.0f}, "
          f"ratio {mean['after'] / mean['before']:.2f}x")
    print("load after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
