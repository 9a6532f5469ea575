"""`task=generate`: write the synthetic data set of `cfg.data` (rows, seed, dir, file_format, time_resolution).

    python run.py task=generate data.rows=200000 data.dir=data/synthetic/small

Prints rows, fraud and grey shares per file (test shares from the hidden labels), the seconds
taken and rows/s. The story behind the data is in `atec_automl.data.synthetic`.
"""
from __future__ import annotations

import time

from omegaconf import DictConfig

from atec_automl.data.synthetic import generate_from_config, read_manifest
from atec_automl.errors import AtecError

REQUIRED_KEYS = ("rows", "seed", "dir", "file_format")


def run(cfg: DictConfig) -> None:
    """Generate the files and print their summary."""
    missing = [key for key in REQUIRED_KEYS if cfg.data.get(key) is None]
    if missing:
        raise AtecError(f"task=generate needs data.{', data.'.join(missing)}: use data=synthetic")
    started = time.perf_counter()
    paths = generate_from_config(cfg.data)
    seconds = time.perf_counter() - started
    print(summary(read_manifest(paths["train"].parent), seconds))


def summary(manifest: dict, seconds: float) -> str:
    """One line per file with rows and label shares, then the totals and the speed."""
    lines = [f"{'file':<22} {'rows':>10} {'fraud':>7} {'grey':>7}  window"]
    for part, info in manifest["parts"].items():
        rows = info["rows"]
        lines.append(
            f"{info['file']:<22} {rows:>10,} {info['fraud'] / rows:>7.2%} {info['grey'] / rows:>7.2%}"
            f"  {info['first_day']} .. {info['last_day']}"
        )
    lines.append(f"{manifest['hidden_labels']['file']:<22} {'(hidden: test labels, true fraud of grey/mislabelled train rows)':>27}")
    rows = manifest["rows"]
    lines.append(f"{rows:,} rows (seed {manifest['seed']}, {manifest['file_format']}) in {seconds:.1f} s: {rows / seconds:,.0f} rows/s")
    return "\n".join(lines)
