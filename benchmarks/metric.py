"""Time of the ATEC metric at 1 M and 10 M rows, side by side with the full-sort version and sklearn.

`atec_score` sorts only the head of the ranking (the rows at or above the FPR-0.01 cut); the
full-sort version below is the previous implementation, one stable argsort of every row, kept here
as the reference it must equal; sklearn's roc_curve (also a full sort) is timed on the same data.

    python benchmarks/metric.py [--rows 1000000 10000000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
from sklearn.metrics import roc_curve

from atec_automl.metric import TARGET_FPRS, WEIGHTS, AtecScore, _checked, atec_score


def _atec_score_full_sort(y_true: np.ndarray, y_score: np.ndarray) -> AtecScore:
    """The official rule with one stable argsort of all rows (the reference)."""
    positive, p = _checked(y_true, y_score)
    order = np.argsort(-p, kind="stable")
    hits = positive[order]
    tp = np.cumsum(hits)
    fp = np.arange(1, len(hits) + 1) - tp
    tpr = tp / tp[-1]
    fpr = fp / fp[-1]
    tprs = [float(tpr[np.argmin(np.abs(fpr - target))]) for target in TARGET_FPRS]
    return AtecScore(float(np.dot(WEIGHTS, tprs)), *tprs)


def best_seconds(function: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` timed calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def compare(rows: int, repeats: int) -> None:
    """Print seconds of the three on tie-free and tied scores of `rows` rows, and the speed-ups."""
    rng = np.random.default_rng(0)
    y = (rng.random(rows) < 0.012).astype(np.int8)
    scores = {"continuous": y * 1.5 + rng.normal(size=rows), "tied (3 decimals)": np.round(rng.random(rows) + y * 0.3, 3)}
    print(f"rows={rows:,} positives={int(y.sum()):,} best of {repeats}")
    for name, p in scores.items():
        if atec_score(y, p) != _atec_score_full_sort(y, p):
            raise SystemExit(f"{name}: atec_score {atec_score(y, p)} differs from the full sort {_atec_score_full_sort(y, p)}")
        ours = best_seconds(lambda: atec_score(y, p), repeats)
        full = best_seconds(lambda: _atec_score_full_sort(y, p), repeats)
        sklearn = best_seconds(lambda: roc_curve(y, p), repeats)
        print(f"  {name:>18}: atec_score {ours * 1e3:7.1f} ms | full sort {full * 1e3:7.1f} ms | "
              f"sklearn roc_curve {sklearn * 1e3:7.1f} ms | full sort / atec_score {full / ours:5.1f}x | "
              f"roc_curve / atec_score {sklearn / ours:5.1f}x | score {atec_score(y, p).score:.4f} (equal)")


def main() -> None:
    """Both sizes in one run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for rows in args.rows:
        compare(rows, args.repeats)


if __name__ == "__main__":
    main()
