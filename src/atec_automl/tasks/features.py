"""`task=features`: build (or reuse) the features of the configured data and print a summary.

`features=default` for semi-final raw data, `features=prelim` for preliminary f-column data.
The cache lives under `features.cache_dir` (default `data/cache/features/`), keyed by the data
fingerprint and the feature definition, so a second run reuses it. `features.export=PATH.parquet`
also writes the tabular features with the event id column.
"""
from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

from atec_automl.errors import AtecError
from atec_automl.features.build import as_spec, cache_location, load_or_build
from atec_automl.features.cache import export_table, read_meta
from atec_automl.features.featureset import FeatureSet
from atec_automl.tasks._experiment import load_data, plain


def run(cfg: DictConfig) -> None:
    """Load the data, build or load its features, optionally export the table, print the summary."""
    dataset = load_data(cfg.data)
    spec = as_spec(plain(cfg.features))
    location = cache_location(dataset, spec)
    started = time.perf_counter()
    features, reused = load_or_build(dataset, spec)
    seconds = time.perf_counter() - started
    lines = summary(features, location, reused, seconds)
    if spec.export:
        export = Path(spec.export)
        if export.suffix != ".parquet":
            raise AtecError(f"features.export={spec.export}: the export path must end in .parquet")
        export_table(features, dataset.frame["event_id"], export)
        lines.append(f"exported: {export} ({len(features.table):,} rows, event_id + {features.table.shape[1]} columns)")
    print("\n".join(lines))


def summary(features: FeatureSet, location: Path | None, reused: bool, seconds: float) -> list[str]:
    """Lines describing what was built or loaded and where it is cached."""
    rows, columns = features.table.shape
    lines = [
        f"features: {rows:,} rows x {columns} columns ({len(features.categorical)} categorical)",
        f"sequences: {_sequence_shape(features)}",
    ]
    if location is None:
        lines.append(f"built in {seconds:.1f} s (cache off: features.cache_dir=null)")
    elif reused:
        built = read_meta(location).get("build_seconds", float("nan"))
        lines.append(f"reused cache {location} (loaded in {seconds:.1f} s; built in {built:.1f} s)")
    else:
        lines.append(f"built in {seconds:.1f} s, cached at {location}")
    return lines


def _sequence_shape(features: FeatureSet) -> str:
    """`N x K index, N x S steps`, or none for formats without users."""
    if features.seq_index is None:
        return "none (no users in this format)"
    index, steps = features.seq_index.shape, features.steps.shape
    return f"{index[0]:,} x {index[1]} index, {steps[0]:,} x {steps[1]} steps"
