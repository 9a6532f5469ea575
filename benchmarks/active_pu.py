"""What an expert's answers are worth: true A/B scores of the grey-label policies side by side.

On synthetic data (whose hidden labels the oracle answers from and the boards are scored against),
the same model (CatBoost, modest iterations) and the same features are fitted on the default split's
last fold (training days, early stopping on its early-stopping window) under each policy:
as_black, drop, two_step_pu, and active_pu with the oracle at several query budgets (budget =
rounds x queries_per_round). Printed per policy: the true A and B scores of its model, the fold's
local score, the fit time and, for active_pu, the share of queried rows that were truly fraud
against that share among all grey training rows. active_pu at budget 0 asks nothing and is
two_step_pu exactly (same seed, same spies, same fits), so its row repeats that fit.

    python benchmarks/active_pu.py [--rows 200000] [--iterations 300] [--budgets 0,100,500] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from atec_automl.pipeline import Prepared, expert_of, fit_fold, label_policy, predict_boards
from atec_automl.tasks._experiment import expert_source, prepare, recipe

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def policy_config(rows: int, iterations: int, work: Path, labels: str, *overrides: str) -> DictConfig:
    """The default config with CatBoost at `iterations`, the features cache in `work`, the given policy."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=[
            f"data.rows={rows}", f"features.cache_dir={work / 'cache'}", "model=catboost",
            f"model.iterations={iterations}", "model.early_stopping_rounds=50", f"labels={labels}",
            f"leaderboard.path={work / 'leaderboard.sqlite'}", *overrides])


def variants(budgets: list[int], rounds: int) -> list[tuple[str, str, list[str]]]:
    """(label, policy, overrides) of every policy compared; budget 0 is listed, not refitted (see main)."""
    out = [("as_black", "as_black", []), ("drop", "drop", []), ("two_step_pu", "two_step_pu", [])]
    for budget in budgets:
        out.append((f"active_pu@{budget}", "active_pu",
                    [f"labels.rounds={rounds if budget else 0}", f"labels.queries_per_round={budget // rounds}"]))
    return out


def run_one(cfg: DictConfig, prepared: Prepared, work: Path) -> dict:
    """Fit the last fold under `cfg`'s policy; its true board scores, local score, seconds and queries."""
    fold = prepared.folds[-1]
    policy = label_policy(recipe(cfg), prepared)
    started = time.perf_counter()
    result, model = fit_fold(recipe(cfg), prepared, fold, work, policy=policy)
    seconds = time.perf_counter() - started
    true = prepared.truth.board_scores(predict_boards(model, prepared))
    answers = [q.answer for q in getattr(policy, "queries", [])]
    return {"a": true.get("test_a"), "b": true.get("test_b"), "local": result.atec.score, "seconds": seconds,
            "asked": len(answers), "asked_fraud": float(np.mean(answers)) if answers else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--budgets", default="0,100,500")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime before: {uptime}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        base = policy_config(args.rows, args.iterations, work, "active_pu")
        prepared = prepare(base)
        fold = prepared.folds[-1]
        grey = fold.train[prepared.labels[fold.train] == -1]
        grey_fraud = float(np.mean(expert_of(expert_source(base), prepared).ask(grey)))
        print(f"{args.rows:,} synthetic rows; last fold {fold.describe()}; {len(grey):,} grey training rows, "
              f"{grey_fraud:.1%} truly fraud; CatBoost {args.iterations} iterations (early stopping 50)", flush=True)
        frauds = {board: int(labels.sum()) for board, labels in prepared.truth.labels.items()}
        print(f"boards scored on their last 3 days: frauds {frauds} (each TPR moves in steps of 1/frauds)", flush=True)
        print(f"{'policy':16s} {'true A':>7s} {'true B':>7s} {'local':>7s} {'asked':>6s} {'asked fraud':>12s} "
              f"{'grey fraud':>11s} {'fit s':>7s}", flush=True)
        results: dict[str, dict] = {}
        for name, labels, overrides in variants([int(b) for b in args.budgets.split(",")], args.rounds):
            if name == "active_pu@0":  # asks nothing: exactly two_step_pu's fit (same seed, same spies)
                row = results[name] = results["two_step_pu"]
            else:
                cfg = policy_config(args.rows, args.iterations, work, labels, *overrides)
                row = results[name] = run_one(cfg, prepared, work / name)
            asked = "-" if row["asked_fraud"] is None else f"{row['asked_fraud']:.1%}"
            grey_share = f"{grey_fraud:.1%}" if labels == "active_pu" else "-"
            print(f"{name:16s} {row['a']:7.4f} {row['b']:7.4f} {row['local']:7.4f} {row['asked']:6d} {asked:>12s} "
                  f"{grey_share:>11s} {row['seconds']:7.1f}", flush=True)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{time.perf_counter() - started:.0f} s in all; uptime after: {uptime}; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
