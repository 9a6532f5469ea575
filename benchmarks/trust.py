"""How far the local leaderboard can be trusted: local scores against the true A/B scores.

For each family, the same trial configurations (the library defaults under every grey-label
policy, then random points of the search space, grey-label policy included) are fitted on the
default split's folds of synthetic data two ways, in the same run:

- honest: each fold early-stops on its early-stopping window; the scored rows are only scored;
- old:    each fold early-stops on its scored rows (what the harness did before), then is scored there.

Each configuration's last-fold model predicts test_a and test_b, scored against the hidden labels
on each board's last 3 days. Printed per mode: entries, Spearman(local, true B), Spearman(local,
true A) and the mean optimism (local minus true).

    python benchmarks/trust.py [--rows 300000] [--random-trials 2] [--families catboost,mlp,cnn_lstm]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from atec_automl.pipeline import Prepared, fit_fold, predict_boards
from atec_automl.search.space import SearchSpace, load_space, suggest
from atec_automl.tasks._experiment import plain, prepare, recipe
from atec_automl.tasks._sweep import apply
from atec_automl.truth import trust

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def family_config(family: str, rows: int, work: Path) -> DictConfig:
    """The default experiment's config for one family, with the smoke experiment's short training."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        base = compose(config_name="config", overrides=[f"data.rows={rows}", "experiment=smoke"])
        smoke = list(base.sweep.family_overrides.get(family) or [])
        cfg = compose(config_name="config", overrides=[
            "experiment=smoke", f"data.rows={rows}", f"model={family}", f"+search={family}",
            f"features.cache_dir={work / 'cache'}", *smoke])
    with open_dict(cfg):
        cfg.search.params = OmegaConf.merge(cfg.search.params, cfg.sweep.grey_labels)
    return cfg


def trial_values(space: SearchSpace, random_trials: int, seed: int) -> list[dict]:
    """The space's enqueued trials (defaults per policy), then `random_trials` random points."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    values = [dict(t) for t in space.enqueue]
    for _ in range(random_trials):
        values.append(suggest(study.ask(), space))
    return values


def evaluate(cfg: DictConfig, prepared: Prepared, old_way: bool, work: Path) -> tuple[float, dict]:
    """Mean local score over the folds and the true board scores of the last fold's model."""
    scores, model = [], None
    for fold in prepared.folds:
        if old_way:
            fold = replace(fold, early_stop=fold.scored)
        result, model = fit_fold(recipe(cfg), prepared, fold, work)
        scores.append(result.atec.score)
    return float(np.mean(scores)), prepared.truth.board_scores(predict_boards(model, prepared))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--random-trials", type=int, default=2)
    parser.add_argument("--families", default="catboost,mlp,cnn_lstm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    print(f"load before: {os.getloadavg()[0]:.2f} (uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()})")
    results: dict[str, list[tuple[float, float | None, float | None]]] = {"honest": [], "old": []}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        prepared = None
        for family in args.families.split(","):
            cfg = family_config(family, args.rows, work)
            prepared = prepared or prepare(cfg)
            space = load_space(plain(cfg.search), CONF_DIR)
            for values in trial_values(space, args.random_trials, args.seed):
                trial_cfg = apply(cfg, space, values)
                for mode in ("honest", "old"):
                    local, true = evaluate(trial_cfg, prepared, mode == "old", work / mode)
                    results[mode].append((local, true.get("test_a"), true.get("test_b")))
                    print(f"{family:8s} {values.get('grey_labels', '-'):12s} {mode:6s} local {local:.4f} "
                          f"true A {true.get('test_a') or float('nan'):.4f} B {true.get('test_b') or float('nan'):.4f}",
                          flush=True)
    print(f"\n{args.rows:,} synthetic rows, {len(prepared.folds)} folds, families {args.families}; "
          f"{time.perf_counter() - started:.0f} s; load after: {os.getloadavg()[0]:.2f}")
    for mode, rows in results.items():
        summary = trust([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        print(f"{mode:6s} {summary.line()}")


if __name__ == "__main__":
    main()
