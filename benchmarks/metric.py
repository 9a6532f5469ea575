"""Time of the ATEC metric on 1 M rows next to sklearn's roc_curve on the same data.

    python benchmarks/metric.py [--rows 1000000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from sklearn.metrics import roc_curve

from atec_automl.metric import atec_score


def best_seconds(function: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` timed calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Print seconds and rows/s of both, and their ratio, on tie-free and tied scores."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y = (rng.random(args.rows) < 0.012).astype(np.int8)
    scores = {"continuous": y * 1.5 + rng.normal(size=args.rows), "tied (3 decimals)": np.round(rng.random(args.rows) + y * 0.3, 3)}
    print(f"rows={args.rows:,} positives={int(y.sum()):,} best of {args.repeats}")
    for name, p in scores.items():
        ours = best_seconds(lambda: atec_score(y, p), args.repeats)
        sklearn = best_seconds(lambda: roc_curve(y, p), args.repeats)
        print(f"{name:>18}: atec_score {ours:.3f} s ({args.rows / ours / 1e6:.1f} M rows/s) | "
              f"sklearn roc_curve {sklearn:.3f} s | ratio roc_curve/atec_score {sklearn / ours:.2f}x "
              f"| score {atec_score(y, p).score:.4f}")


if __name__ == "__main__":
    main()
