"""Start-up of the tasks that fit no neural net, this checkout against an earlier commit, side by side.

    python benchmarks/startup.py [--before f2b370b] [--rounds 3] [--rows 20000]

Times whole commands, `python run.py task=...` from start to exit (wall seconds), for `task=check-data`
on `--rows` synthetic rows and `task=leaderboard` on an empty leaderboard. The earlier commit is
checked out into a temporary git worktree; each round runs every command once per side, one side
right after the other, so both see the same machine load. An untimed first run per side writes its
synthetic data. Prints every time, the medians, the ratio, which heavy libraries (torch, lightning,
sklearn, scipy.stats) each side's commands import (listed by `PYTHONPROFILEIMPORTTIME=1`), and
`uptime`: other jobs on the machine move the figures.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from smoke_rate import checkout, remove_checkout

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "sklearn", "scipy.stats")


def commands(out: Path, rows: int) -> dict[str, list[str]]:
    """The timed commands of one side, by name; each writes under `out`."""
    return {
        "check-data": ["task=check-data", f"data.rows={rows}", f"data.dir={out}/data", f"hydra.run.dir={out}/run"],
        "leaderboard": ["task=leaderboard", f"leaderboard.path={out}/board/leaderboard.sqlite",
                        f"hydra.run.dir={out}/run"],
    }


def run(code: Path, args: list[str], list_imports: bool = False) -> tuple[float, str]:
    """Wall seconds of `python run.py args` with the code at `code`, and its stderr; stops on a failure."""
    env = {**os.environ, "PYTHONPATH": str(code / "src"), "WANDB_MODE": "disabled"}
    if list_imports:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "run.py", *args], cwd=code, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{code}: run.py {' '.join(args)} exited {result.returncode}\n{result.stderr[-2000:]}")
    return seconds, result.stderr


def heavy_imports(stderr: str) -> list[str]:
    """The heavy libraries an importtime listing names."""
    names = {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="f2b370b")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        work = Path(tmp)
        sides = {args.before: checkout(args.before, work / "before"), "this checkout": REPO}
        folders = {args.before: work / "before-runs", "this checkout": work / "after-runs"}
        times: dict[tuple[str, str], list[float]] = {}
        try:
            for side, code in sides.items():
                for name, command in commands(folders[side], args.rows).items():
                    _, stderr = run(code, command, list_imports=True)
                    print(f"{side:>14s} {name:12s} imports {', '.join(heavy_imports(stderr)) or 'none of'} "
                          f"({', '.join(HEAVY)})")
            for _ in range(args.rounds):
                for side, code in sides.items():
                    for name, command in commands(folders[side], args.rows).items():
                        times.setdefault((side, name), []).append(run(code, command)[0])
            for name in dict.fromkeys(name for _, name in times):
                before, after = (statistics.median(times[(side, name)]) for side in sides)
                shown = {side: " ".join(f"{t:.2f}" for t in times[(side, name)]) for side in sides}
                print(f"{name:12s} {args.before}: {shown[args.before]} s (median {before:.2f}); this checkout: "
                      f"{shown['this checkout']} s (median {after:.2f}); {before / after:.2f}x faster")
        finally:
            remove_checkout(sides[args.before])
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
