"""Public entry point: `build_features(dataset, features_cfg, cache_dir) -> FeatureSet`.

The label column is dropped before anything is computed, so no feature can read it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from atec_automl.data.dataset import TIMELINE_COLUMNS, Dataset
from atec_automl.errors import AtecError, DataError
from atec_automl.features.cache import DamagedCache, cache_key, load_cached, save_cached
from atec_automl.features.featureset import FeatureSet
from atec_automl.features.memory import reuse_freed_memory
from atec_automl.features.prelim import build_prelim_table
from atec_automl.features.semifinal import RawFeatureBuilder
from atec_automl.features.spec import FeatureSpec, PrelimFeatures, RawEventFeatures
from atec_automl.staging import remove_stale_staging

log = logging.getLogger(__name__)


SPECS: dict[str, type[FeatureSpec]] = {f"{cls.__module__}.{cls.__name__}": cls for cls in (RawEventFeatures, PrelimFeatures)}
"""The feature definitions by the `_target_` that `conf/features/*.yaml` and a submission's `features.json` name."""


def as_spec(features_cfg: Any) -> FeatureSpec:
    """A feature spec from a spec object or a plain mapping with `_target_` (e.g. `cfg.features` as a dict)."""
    if isinstance(features_cfg, (RawEventFeatures, PrelimFeatures)):
        return features_cfg
    if not isinstance(features_cfg, Mapping):
        raise TypeError(f"features config must be a spec or a mapping with _target_, got {type(features_cfg).__name__}")
    target = features_cfg.get("_target_")
    if target not in SPECS:
        raise AtecError(f"features._target_: {target!r} is not a feature definition; choose one of {sorted(SPECS)}")
    return SPECS[target](**{key: value for key, value in features_cfg.items() if key != "_target_"})


def cache_location(dataset: Dataset, features_cfg: Any, cache_dir: Path | str | None = None) -> Path | None:
    """Where the features of `dataset` are (or will be) cached; None when caching is off.

    `cache_dir` overrides the config's `cache_dir` (default `data/cache/features`); the config's
    `cache_dir: null` with no argument turns caching off.
    """
    spec = as_spec(features_cfg)
    root = cache_dir if cache_dir is not None else spec.cache_dir
    if root is None:
        return None
    return Path(root) / cache_key(dataset.fingerprint, spec.fingerprint())


def build_features(dataset: Dataset, features_cfg: Any, cache_dir: Path | str | None = None, progress: bool = True) -> FeatureSet:
    """Features of every event of `dataset` (row i = timeline row i), from the cache when built before."""
    return load_or_build(dataset, features_cfg, cache_dir, progress)[0]


def load_or_build(dataset: Dataset, features_cfg: Any, cache_dir: Path | str | None = None, progress: bool = True) -> tuple[FeatureSet, bool]:
    """`build_features`, and whether the features came from the cache.

    A damaged cache is reported in one warning line and rebuilt; staging directories that a
    killed run left in the cache directory are removed.
    """
    spec = as_spec(features_cfg)
    spec.check_columns(list(dataset.frame.columns))
    location = cache_location(dataset, spec, cache_dir)
    if location is not None:
        remove_stale_staging(location.parent)
        cached = _read_cache(location)
        if cached is not None:
            log.info("features: loaded %s", location)
            return cached, True
    started = time.perf_counter()
    features = compute_features(dataset, spec, progress)
    seconds = time.perf_counter() - started
    if location is not None:
        save_cached(features, location, {"build_seconds": seconds, "rows": len(dataset.frame), "spec_class": type(spec).__name__})
        log.info("features: built in %.1f s, cached at %s", seconds, location)
    return features, False


def _read_cache(location: Path) -> FeatureSet | None:
    """The cached features at `location`; None (after one warning line) when they are damaged."""
    try:
        return load_cached(location)
    except DamagedCache as damage:
        log.warning("features: %s; rebuilding it", damage)
        return None


def compute_features(dataset: Dataset, spec: FeatureSpec, progress: bool = True,
                     vocabulary: dict[str, pd.Index] | None = None) -> FeatureSet:
    """Build the features without touching any cache; `vocabulary` freezes categorical codes (see `RawFeatureBuilder`)."""
    frame = dataset.frame.drop(columns=["label"], errors="ignore")
    _check_time_order(frame, dataset)
    fingerprint = f"{dataset.fingerprint}:{spec.fingerprint()}"
    if isinstance(spec, PrelimFeatures):
        return FeatureSet(table=build_prelim_table(frame, spec), fingerprint=fingerprint)
    format_columns = [c for c in frame.columns if c not in TIMELINE_COLUMNS]
    builder = RawFeatureBuilder(frame, spec, format_columns, vocabulary)
    total = len(spec.entities) + 2 + (spec.sequence is not None)
    with reuse_freed_memory(), tqdm(total=total, desc="features", unit="step", disable=None if progress else True) as bar:
        table, categorical = builder.build(bar)
        seq_index = steps = None
        step_names: list[str] = []
        if spec.sequence is not None:
            bar.set_postfix_str("sequences")
            seq_index, steps, step_names = builder.sequences(table)
            bar.update()
    return FeatureSet(table=table, categorical=categorical, seq_index=seq_index, steps=steps, step_names=step_names, fingerprint=fingerprint)


def _check_time_order(frame: pd.DataFrame, dataset: Dataset) -> None:
    """The timeline contract: `ts` present and non-decreasing, `ts_resolution` present and at least 1 second."""
    source = str(dataset.sources.get("train", "timeline"))
    for column in ("ts", "ts_resolution"):
        if column not in frame.columns:
            raise DataError(source, f"the timeline has no {column} column", column=column)
    short = np.flatnonzero(frame["ts_resolution"].to_numpy() < 1)
    if len(short):
        raise DataError(source, "ts_resolution below 1 second", column="ts_resolution", row=int(short[0]) + 1)
    ts = frame["ts"].to_numpy(dtype=np.int64)
    bad = np.flatnonzero(ts[1:] < ts[:-1])
    if len(bad):
        raise DataError(source, "timeline is not sorted by time", column="ts", row=int(bad[0]) + 1)

