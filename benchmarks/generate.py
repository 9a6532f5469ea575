"""Throughput of the synthetic generator, and a check that its fraud is learnable but not trivial.

    python benchmarks/generate.py                      # 1 M rows: rows/s and peak memory
    python benchmarks/generate.py --rows 10000000      # the GPU box
    python benchmarks/generate.py --realism-rows 300000

Speed: `generate()` into a temp dir (parquet, or --format csv), timed end to end including
writing: wall time, and CPU time of all threads (the fair figure on a shared, loaded machine);
peak memory is the process's peak resident set size during generation.
Realism (on a separate, smaller run): reads the written files back and reports
- the best out-of-time AUC of any single raw column (value fraud rates fitted on the first
  train days, scored on the last 14 train days; numeric columns also as raw values): should
  stay below 0.9;
- the AUC and ATEC-style TPR of a quick CatBoost on a handful of strictly-past entity counts,
  trained on the first train days, scored on the last 14 train days and on test_b (hidden
  labels): should be well above 0.7.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from atec_automl.data.synthetic import generate

DAY = 86_400
HOLDOUT_DAYS = 14
SKIP_COLUMNS = {"event_id", "is_fraud", "dt", "gmt_occur"}


def measure_speed(rows: int, seed: int, file_format: str) -> None:
    """Print rows/s of `generate` and the peak resident memory."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu_start = time.perf_counter(), time.process_time()
        paths = generate(rows, seed, Path(tmp) / "out", file_format=file_format)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        size = sum(p.stat().st_size for p in paths.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"generate {rows:,} rows ({file_format}): {seconds:.2f} s wall, {rows / seconds:,.0f} rows/s; "
          f"{cpu_seconds:.2f} s CPU (all threads), {rows / cpu_seconds:,.0f} rows per CPU-second; "
          f"load average {load:.1f} on {os.cpu_count()} cores; files {size / 2**20:.0f} MiB; "
          f"peak RSS {peak / 2**10:.0f} MiB (was {before / 2**10:.0f} MiB before)")


def load_timeline(directory: Path) -> pd.DataFrame:
    """All three parts with labels (hidden ones joined), time-sorted, with `ts` seconds and `part`."""
    frames = []
    for part in ("train", "test_a", "test_b"):
        frame = pd.read_parquet(directory / f"{part}.parquet")
        frame["part"] = part
        frames.append(frame)
    labels = pd.read_parquet(directory / "test_labels.parquet")
    events = pd.concat(frames, ignore_index=True)
    hidden = events["event_id"].map(labels.set_index("event_id")["is_fraud"])
    events["is_fraud"] = events["is_fraud"].fillna(hidden).astype(int)
    stamps = pd.to_datetime(events["gmt_occur"], format="%Y-%m-%d %H:%M:%S")
    events["ts"] = (stamps - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    return events.sort_values("ts", kind="stable", ignore_index=True)


def codes(*columns: pd.Series) -> np.ndarray:
    """One integer per distinct combination of the given columns."""
    return pd.MultiIndex.from_arrays(list(columns)).factorize()[0] if len(columns) > 1 else columns[0].factorize()[0]


def past_window_sum(
    key: np.ndarray, ts: np.ndarray, window: int | None, weight: np.ndarray | None = None,
) -> np.ndarray:
    """Sum of `weight` (default 1) over events of the same key with time in [t - window, t) (all history if None)."""
    weight = np.ones(len(key)) if weight is None else weight.astype(float)
    span = int(ts.max() - ts.min()) + 2 * DAY + 2
    composite = key.astype(np.int64) * span + (ts - ts.min() + DAY)
    order = np.argsort(composite, kind="stable")
    sorted_keys = composite[order]
    cumulative = np.concatenate([[0.0], np.cumsum(weight[order])])
    upper = np.searchsorted(sorted_keys, composite, side="left")
    lower_keys = key.astype(np.int64) * span + (0 if window is None else np.maximum(ts - ts.min() + DAY - window, 0))
    lower = np.searchsorted(sorted_keys, lower_keys, side="left")
    return cumulative[upper] - cumulative[lower]


def first_pair(key: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """1 where no earlier event (strictly earlier time) has the same key."""
    return (past_window_sum(key, ts, None) == 0).astype(float)


def past_features(events: pd.DataFrame) -> pd.DataFrame:
    """A handful of strictly-past entity aggregates of the kind contest winners used."""
    ts = events["ts"].to_numpy()
    user = codes(events["user_id"])
    device = codes(events["device_sign"])
    payee = codes(events["opposing_id"].where(events["opposing_id"] != "-1", events["income_card_no"]))
    ip = codes(events["client_ip"])
    user_device = codes(events["user_id"], events["device_sign"])
    user_payee = codes(events["user_id"], events["opposing_id"], events["income_card_no"])
    user_ip = codes(events["user_id"], events["client_ip"])
    new_user_on_device = first_pair(user_device, ts)
    new_payer = first_pair(user_payee, ts)
    amount = events["amt"].to_numpy()
    user_amount = past_window_sum(user, ts, None, amount)
    user_count = past_window_sum(user, ts, None)
    known = events["device_sign"].to_numpy() != "-1"
    return pd.DataFrame({
        "device_new_users_24h": np.where(known, past_window_sum(device, ts, DAY, new_user_on_device), -1),
        "device_other_events_24h": np.where(known, past_window_sum(device, ts, DAY) - past_window_sum(user_device, ts, DAY), -1),
        "user_device_seen": past_window_sum(user_device, ts, None),
        "payee_new_payers_24h": past_window_sum(payee, ts, DAY, new_payer),
        "payee_new_payers_7d": past_window_sum(payee, ts, 7 * DAY, new_payer),
        "payee_events": past_window_sum(payee, ts, None),
        "user_payee_seen": past_window_sum(user_payee, ts, None),
        "ip_other_events_24h": past_window_sum(ip, ts, DAY) - past_window_sum(user_ip, ts, DAY),
        "user_events_1h": past_window_sum(user, ts, 3600),
        "user_events": user_count,
        "amt": amount,
        "amt_to_user_mean": amount / (user_amount / np.maximum(user_count, 1) + 1.0),
        "hour": ts % DAY // 3600,
        "ip_not_cert_prov": (events["ip_prov"] != events["cert_prov"]).astype(int).to_numpy(),
    })


def single_column_aucs(events: pd.DataFrame, fit: np.ndarray, holdout: np.ndarray) -> pd.Series:
    """Out-of-time AUC of each raw column used alone (value fraud rate, and raw value for numbers)."""
    target = (events["is_fraud"] == 1).astype(float)
    results = {}
    for column in events.columns.drop(list(SKIP_COLUMNS | {"part", "ts"})):
        values = events[column].astype(str)
        rates = target[fit].groupby(values[fit]).agg(["sum", "count"])
        smoothed = (rates["sum"] + target[fit].mean() * 20) / (rates["count"] + 20)
        score = values[holdout].map(smoothed).fillna(target[fit].mean()).to_numpy()
        auc = roc_auc_score(target[holdout], score)
        if pd.api.types.is_numeric_dtype(events[column]):
            raw = roc_auc_score(target[holdout], events.loc[holdout, column])
            auc = max(auc, raw, 1 - raw)
        results[column] = auc
    hour = events["ts"] % DAY // 3600
    raw = roc_auc_score(target[holdout], hour[holdout])
    results["hour(gmt_occur)"] = max(raw, 1 - raw)
    return pd.Series(results).sort_values(ascending=False)


def tpr_at(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """TPR at the first point whose FPR reaches `fpr` (a quick stand-in for the official rule)."""
    order = np.argsort(-scores, kind="stable")
    positives = np.cumsum(labels[order]) / labels.sum()
    negatives = np.cumsum(1 - labels[order]) / (1 - labels).sum()
    return float(positives[np.searchsorted(negatives, fpr)])


def measure_realism(rows: int, seed: int) -> None:
    """Print single-column AUCs and a quick CatBoost's AUC on strictly-past features."""
    from catboost import CatBoostClassifier

    with tempfile.TemporaryDirectory() as tmp:
        generate(rows, seed, Path(tmp) / "out")
        events = load_timeline(Path(tmp) / "out")
    train_days = events.loc[events["part"] == "train", "ts"] // DAY
    last_day = train_days.max()
    day = events["ts"] // DAY
    labelled = events["is_fraud"] != -1
    fit = ((events["part"] == "train") & (day <= last_day - HOLDOUT_DAYS) & labelled).to_numpy()
    holdout = ((events["part"] == "train") & (day > last_day - HOLDOUT_DAYS) & labelled).to_numpy()
    test_b = ((events["part"] == "test_b") & labelled).to_numpy()

    aucs = single_column_aucs(events, fit, holdout)
    print(f"realism on {rows:,} rows: best single-column out-of-time AUC {aucs.iloc[0]:.3f} ({aucs.index[0]}); "
          "next: " + ", ".join(f"{name} {auc:.3f}" for name, auc in aucs.iloc[1:6].items()))
    features = past_features(events)
    target = (events["is_fraud"] == 1).astype(int).to_numpy()
    model = CatBoostClassifier(iterations=300, depth=6, learning_rate=0.08, verbose=False, thread_count=2,
                               allow_writing_files=False, random_seed=seed)
    model.fit(features[fit], target[fit])
    for name, rows_mask in (("last 14 train days", holdout), ("test_b (hidden labels)", test_b)):
        scores = model.predict_proba(features[rows_mask])[:, 1]
        labels = target[rows_mask]
        tprs = [tpr_at(labels, scores, f) for f in (0.001, 0.005, 0.01)]
        score = 0.4 * tprs[0] + 0.3 * tprs[1] + 0.3 * tprs[2]
        print(f"catboost on past-count features, {name}: AUC {roc_auc_score(labels, scores):.3f}, "
              f"TPR@FPR .001/.005/.01 = {tprs[0]:.3f}/{tprs[1]:.3f}/{tprs[2]:.3f}, weighted {score:.3f} "
              f"({labels.sum()} frauds)")
    importance = pd.Series(model.get_feature_importance(), index=features.columns).sort_values(ascending=False)
    print("top features: " + ", ".join(f"{name} {value:.0f}" for name, value in importance.iloc[:6].items()))


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--realism-rows", type=int, default=300_000, help="0 skips the realism check")
    args = parser.parse_args(argv)
    if args.rows:
        measure_speed(args.rows, args.seed, args.format)
    if args.realism_rows:
        measure_realism(args.realism_rows, args.seed)


if __name__ == "__main__":
    main(sys.argv[1:])
