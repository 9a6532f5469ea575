"""Building one key value's `Group` (the serving state's per-value events with Kahan prefix sums), per event.

    python benchmarks/groups.py [--sizes 100 1000 10000 100000] [--rounds 5] [--old-src /tmp/oldmain/src]

The first read of a key value by a one-event request builds its group from the value's past events:
a Kahan pass over their amounts in Python, bit for bit what pandas' grouped cumsum gives. This prints
the microseconds per event of that build at each size, beside pandas' grouped cumsum of the same
amounts and squares (`windows.segmented_cumsum`, the batch path, in C) as the plain reference, and,
with --old-src (the `src/` of another checkout, e.g. `git archive <commit> src | tar -x -C
/tmp/oldmain`), the same build with that code in a fresh process, the two alternating twice; each
figure is the best of --rounds builds. Then, per size, appending one event and reading the group's
code statistics, 2,000 times: what a one-event request does to each key value it touches.
Prints the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from atec_automl.features.groups import Group
from atec_automl.features.windows import segmented_cumsum
from child import last_line


def timings(sizes: list[int], rounds: int) -> dict:
    """Best seconds per event of building a group of each size (and of the reference), and of a one-event append."""
    rng = np.random.default_rng(0)
    out: dict = {"build": {}, "reference": {}, "append": {}}
    for size in sizes:
        visible = np.sort(rng.integers(0, 10 ** 7, size))
        amount = rng.lognormal(5, 2, size)
        amount[rng.random(size) < 0.1] = np.nan
        codes = {"payee": rng.integers(-1, 50, size)}
        filled = np.nan_to_num(amount, nan=0.0)
        starts = np.zeros(size, dtype=np.int64)
        build, reference = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            Group(visible, visible, amount, codes, summed=True, in_order=True)
            build.append(time.perf_counter() - start)
            start = time.perf_counter()
            segmented_cumsum(filled, starts), segmented_cumsum(filled * filled, starts)
            reference.append(time.perf_counter() - start)
        out["build"][size] = min(build) / size
        out["reference"][size] = min(reference) / size
        out["append"][size] = append_seconds(Group(visible, visible, amount, codes, summed=True, in_order=True))
    return out


def append_seconds(group: Group, appends: int = 2000) -> float:
    """Seconds per one-event append to `group` followed by a read of its code statistics (what a one-event
    request does to each key value with a distinct count or a usual flag)."""
    group.code_stats("payee")
    end = int(group.visible[group.size - 1]) + 1
    start = time.perf_counter()
    for i in range(appends):
        group.add([end + i], [end + i], [float(i)], {"payee": [i % 60]})
        group.code_stats("payee")
    return (time.perf_counter() - start) / appends


def in_child(src: Path, args: argparse.Namespace) -> dict:
    """`timings` in a fresh process importing `atec_automl` from `src`."""
    return json.loads(last_line(__file__, ["--child", "--rounds", str(args.rounds), "--sizes", *map(str, args.sizes)], src))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--old-src", type=Path, help="the src/ directory of the code to compare against")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(timings(args.sizes, args.rounds)))
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    sources = {"new": Path(__file__).resolve().parents[1] / "src"} | ({"old": args.old_src} if args.old_src else {})
    best: dict[str, dict] = {}
    for _ in range(2 if args.old_src else 1):
        for name, src in sources.items():
            figures = in_child(src, args)
            kept = best.setdefault(name, figures)
            for part in ("build", "reference", "append"):
                kept[part] = {size: min(kept[part][size], figures[part][size]) for size in figures[part]}
    for size in map(str, args.sizes):
        reference = best["new"]["reference"][size]
        cells = "; ".join(f"{name} {figures['build'][size] * 1e6:.2f} us/event ({figures['build'][size] / reference:.1f}x "
                          f"the reference)" for name, figures in best.items())
        print(f"group of {int(size):>7,} events: build {cells}; pandas grouped cumsum {reference * 1e6:.3f} us/event")
        appends = "; ".join(f"{name} {figures['append'][size] * 1e6:.1f} us" for name, figures in best.items())
        print(f"{'':>27} one-event append + code statistics read: {appends}")
    if args.old_src:
        largest = str(args.sizes[-1])
        print(f"new/old at {int(largest):,} events: build {best['old']['build'][largest] / best['new']['build'][largest]:.2f}x, "
              f"append + read {best['old']['append'][largest] / best['new']['append'][largest]:.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
