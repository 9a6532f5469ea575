"""On-disk cache of built feature sets: one directory per (data fingerprint, feature definition).

Layout of `<cache_dir>/<key>/`: `table.parquet`, `seq_index.npy` and `steps.npy` (when the format
has sequences) and `meta.json`. A directory is written under a temporary name and renamed into
place, so a reader never sees half a cache and concurrent builders do not corrupt each other.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from atec_automl.features.featureset import FeatureSet

META_FILE = "meta.json"


def cache_key(data_fingerprint: str, spec_fingerprint: str) -> str:
    """Directory name of the features of one dataset under one feature definition."""
    return hashlib.sha256(f"{data_fingerprint}|{spec_fingerprint}".encode()).hexdigest()[:24]


def load_cached(directory: Path) -> FeatureSet | None:
    """The feature set stored in `directory`, or None when there is none."""
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    table = pd.read_parquet(directory / "table.parquet")
    has_seq = meta["has_sequences"]
    return FeatureSet(
        table=table,
        categorical=meta["categorical"],
        seq_index=np.load(directory / "seq_index.npy") if has_seq else None,
        steps=np.load(directory / "steps.npy") if has_seq else None,
        step_names=meta["step_names"],
        fingerprint=meta["fingerprint"],
    )


def save_cached(features: FeatureSet, directory: Path, extra_meta: dict) -> None:
    """Write `features` into `directory` atomically (temporary directory, then rename)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would hide the cache from other users
    try:
        features.table.to_parquet(staging / "table.parquet", index=False)
        has_seq = features.seq_index is not None
        if has_seq:
            np.save(staging / "seq_index.npy", features.seq_index)
            np.save(staging / "steps.npy", features.steps)
        meta = {
            "fingerprint": features.fingerprint,
            "categorical": features.categorical,
            "step_names": features.step_names,
            "has_sequences": has_seq,
            "shape": list(features.table.shape),
            **extra_meta,
        }
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
        os.replace(staging, directory)
    except OSError:
        if not (directory / META_FILE).is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_meta(directory: Path) -> dict:
    """The metadata of a cached feature set (build time, shape, definition)."""
    return json.loads((directory / META_FILE).read_text())


def export_table(features: FeatureSet, event_ids: pd.Series, path: Path) -> None:
    """Write the tabular features with the event id column first, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.concat([pd.DataFrame({"event_id": event_ids.to_numpy()}), features.table], axis=1)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    table.to_parquet(staging, index=False)
    os.replace(staging, path)
