"""Feature cache write and read time against `np.save`/`np.load` of the same arrays, and the old parquet cache.

    python benchmarks/cache.py [--rows 1000000] [--seed 0] [--repeat 5] [--work-dir data/cache/benchmark]

Builds the default feature set on synthetic data (generated on first use under `data/synthetic/`),
then, in rounds, times side by side (best of `--repeat` rounds, wall and CPU seconds, the order
rotated between rounds, dirty pages flushed before each timing):
- the feature cache (`save_cached` / `load_cached`: `.npy` files + manifest, memory-mapped,
  every checksum verified on read),
- `np.save` / `np.load` of the same arrays (a (k, N) array per run of same-dtype table columns,
  the sequence index and the steps): a raw array dump, the floor,
- the cache as it was before (`table.parquet` + `.npy` sequences),
and prints the ratios against the raw dump, the checksum cost alone and the bytes on disk.
The files stay in the page cache between write and read (a warm run), as on a machine that
reuses its cache.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xxhash
from hydra import compose, initialize_config_dir

from atec_automl.features.build import as_spec, compute_features
from atec_automl.tasks._experiment import load_data, plain
from atec_automl.features.cache import load_cached, save_cached
from atec_automl.features.featureset import FeatureSet

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_config(rows: int, seed: int):
    """The default experiment config on `rows` synthetic rows, without a feature cache."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["data=synthetic", f"data.rows={rows}", f"seed={seed}", "features=default", "features.cache_dir=null"])


def raw_arrays(features: FeatureSet) -> dict[str, np.ndarray]:
    """The arrays the cache holds, as plain arrays: a (k, N) block per run of same-dtype columns."""
    table, arrays, run = features.table, {}, []
    for name in table.columns:
        if run and table[name].dtype != table[run[-1]].dtype:
            arrays[f"table.{len(arrays)}"] = np.stack([table[c].to_numpy() for c in run])
            run = []
        run.append(name)
    if run:
        arrays[f"table.{len(arrays)}"] = np.stack([table[c].to_numpy() for c in run])
    if features.seq_index is not None:
        arrays["seq_index"], arrays["steps"] = features.seq_index, features.steps
    return arrays


def np_save(arrays: dict[str, np.ndarray], directory: Path) -> None:
    """The raw dump: one `np.save` per array."""
    directory.mkdir(parents=True)
    for name, array in arrays.items():
        np.save(directory / f"{name}.npy", array)


def np_load(arrays: dict[str, np.ndarray], directory: Path) -> dict[str, np.ndarray]:
    """Read the raw dump back into memory."""
    return {name: np.load(directory / f"{name}.npy") for name in arrays}


def parquet_save(features: FeatureSet, directory: Path) -> None:
    """The cache before: the table as parquet, the sequences as `.npy`."""
    directory.mkdir(parents=True)
    features.table.to_parquet(directory / "table.parquet", index=False)
    np.save(directory / "seq_index.npy", features.seq_index)
    np.save(directory / "steps.npy", features.steps)


def parquet_load(directory: Path) -> tuple:
    """Read the parquet cache back."""
    return pd.read_parquet(directory / "table.parquet"), np.load(directory / "seq_index.npy"), np.load(directory / "steps.npy")


def timed(function: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call, after flushing earlier writes to disk so that their
    write-back does not run during it; the result is dropped before returning."""
    os.sync()
    started, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - started, time.process_time() - cpu


def disk_bytes(directory: Path) -> int:
    """Bytes of the files in `directory`."""
    return sum(p.stat().st_size for p in directory.iterdir())


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work-dir", type=Path, default=Path("data/cache/benchmark"))
    args = parser.parse_args()

    cfg = compose_config(args.rows, args.seed)
    dataset = load_data(cfg.data)
    features = compute_features(dataset, as_spec(plain(cfg.features)), progress=False)
    arrays = raw_arrays(features)
    total = sum(a.nbytes for a in arrays.values())
    rows, columns = features.table.shape
    print(f"features: {rows:,} rows x {columns} table columns ({len(features.categorical)} categorical), "
          f"{features.seq_index.shape[1]}-step index, {features.steps.shape[1]} step features; {total / 1e9:.2f} GB of arrays "
          f"in {len(arrays)} files")

    work = args.work_dir / f"run-{os.getpid()}"
    ours, raw, old = work / "cache" / "key", work / "raw", work / "parquet"
    timings: dict[str, list[tuple[float, float]]] = {k: [] for k in ("cache write", "np.save", "parquet write", "cache read", "np.load", "parquet read", "checksums")}
    try:
        steps = {
            "cache write": lambda: save_cached(features, ours, {}),
            "np.save": lambda: np_save(arrays, raw),
            "parquet write": lambda: parquet_save(features, old),
            "cache read": lambda: load_cached(ours),
            "np.load": lambda: np_load(arrays, raw),
            "parquet read": lambda: parquet_load(old),
            "checksums": lambda: [xxhash.xxh3_64_hexdigest(a) for a in arrays.values()],
        }
        for round_number in range(args.repeat):
            for path in (ours, raw, old):
                shutil.rmtree(path, ignore_errors=True)
            for phase in (("cache write", "np.save", "parquet write"), ("cache read", "np.load", "parquet read", "checksums")):
                shift = round_number % len(phase)  # each method goes first in some round
                for name in phase[shift:] + phase[:shift]:
                    timings[name].append(timed(steps[name]))
        sizes = {"cache": disk_bytes(ours), "np.save": disk_bytes(raw), "parquet": disk_bytes(old)}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    print(f"best of {args.repeat} rounds, files in the page cache; machine load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    for kind, baseline, others in (("write", "np.save", ("cache write", "parquet write")), ("read", "np.load", ("cache read", "parquet read"))):
        base_wall, base_cpu = min(timings[baseline])
        print(f"  {kind}: {baseline:<22} {base_wall:6.2f} s wall {base_cpu:6.2f} s CPU")
        for name in others:
            wall, cpu = min(timings[name])
            label = {"cache write": "feature cache", "cache read": "feature cache (+checks)"}.get(name, "old parquet cache")
            print(f"  {kind}: {label:<22} {wall:6.2f} s wall {cpu:6.2f} s CPU   = {wall / base_wall:4.2f}x wall, {cpu / base_cpu:4.2f}x CPU of {baseline}")
    hash_wall, _ = min(timings["checksums"])
    print(f"  checksums alone (xxh3-64 of {total / 1e9:.2f} GB): {hash_wall:.3f} s ({total / hash_wall / 1e9:.1f} GB/s)")
    print("  on disk: " + ", ".join(f"{name} {size / 1e9:.2f} GB" for name, size in sizes.items()))


if __name__ == "__main__":
    main()
