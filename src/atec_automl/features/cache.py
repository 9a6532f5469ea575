"""On-disk cache of built feature sets: one directory per (data fingerprint, feature definition).

Layout of `<cache_dir>/<key>/`, raw arrays and a manifest:
- `table.<i>.npy`: a (k, N) array per run of consecutive table columns sharing one dtype, one
  column per array row, so each column is contiguous and maps straight into the DataFrame; a
  pandas categorical column gets a file of its codes, its categories kept in the manifest.
- `seq_index.npy` and `steps.npy` when the format has sequences.
- `manifest.json`: each file with its dtype, shape, size in bytes and the xxh3-64 checksum of its
  data; the columns of each table file; the other FeatureSet fields; the build metadata; and a
  checksum of the manifest itself.

Reading maps the files copy-on-write (`np.load(mmap_mode="c")`): nothing is copied into the
process, processes reading one cache share its pages, and writes to the arrays stay private.
Sizes and checksums are checked on every read; a mismatch raises `DamagedCache`. A directory is
written in a staging directory and renamed into place, so a reader never sees half a cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import xxhash

from atec_automl.features.featureset import FeatureSet
from atec_automl.staging import staging_dir, write_atomically

MANIFEST_FILE = "manifest.json"
FORMAT = "npy-1"
SEQUENCE_FILES = {"seq_index": "seq_index.npy", "steps": "steps.npy"}


class DamagedCache(Exception):
    """A cache directory that exists but does not read back as it was written."""

    def __init__(self, directory: Path, problem: str):
        super().__init__(f"damaged feature cache {directory}: {problem}")


def cache_key(data_fingerprint: str, spec_fingerprint: str) -> str:
    """Directory name of the features of one dataset under one feature definition."""
    return hashlib.sha256(f"{data_fingerprint}|{spec_fingerprint}".encode()).hexdigest()[:24]


def load_cached(directory: Path) -> FeatureSet | None:
    """The feature set stored in `directory`, or None when there is none; `DamagedCache` when it
    does not match its manifest."""
    if not directory.is_dir():
        return None
    manifest = read_meta(directory)
    try:
        arrays = {name: _load_array(directory, name, entry) for name, entry in manifest["files"].items()}
        sequences = {field: arrays[name] for field, name in SEQUENCE_FILES.items() if name in arrays}
        return FeatureSet(
            table=_assemble_table(manifest["table"], arrays, manifest["shape"][0]),
            categorical=manifest["categorical"],
            seq_index=sequences.get("seq_index"),
            steps=sequences.get("steps"),
            step_names=manifest["step_names"],
            fingerprint=manifest["fingerprint"],
        )
    except (KeyError, TypeError, ValueError) as error:
        raise DamagedCache(directory, f"{MANIFEST_FILE} does not describe its files ({type(error).__name__}: {error})") from None


def read_meta(directory: Path) -> dict:
    """The checked manifest of a cached feature set (files, build time, shape, definition)."""
    path = directory / MANIFEST_FILE
    if not path.is_file():
        older = ", a cache of an older version" if (directory / "meta.json").is_file() else ""
        raise DamagedCache(directory, f"no {MANIFEST_FILE}{older}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DamagedCache(directory, f"{MANIFEST_FILE} is unreadable ({error})") from None
    if not isinstance(manifest, dict) or manifest.pop("checksum", None) != _manifest_checksum(manifest):
        raise DamagedCache(directory, f"{MANIFEST_FILE} does not match its checksum")
    if manifest.get("format") != FORMAT:
        raise DamagedCache(directory, f"{MANIFEST_FILE} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def save_cached(features: FeatureSet, directory: Path, extra_meta: dict) -> None:
    """Write `features` into `directory` atomically (staging directory, then rename), replacing
    whatever damaged cache is there."""
    with staging_dir(directory) as staging:
        files, blocks = {}, []
        for i, columns in enumerate(_column_runs(features.table)):
            name = f"table.{i}.npy"
            block, arrays = _describe_block(features.table, columns, name)
            files[name] = _write_npy(staging / name, arrays, (len(columns), len(features.table)))
            blocks.append(block)
        if features.seq_index is not None:
            for field, name in SEQUENCE_FILES.items():
                array = getattr(features, field)
                files[name] = _write_npy(staging / name, [array], array.shape)
        manifest = {
            "format": FORMAT,
            "fingerprint": features.fingerprint,
            "categorical": features.categorical,
            "step_names": features.step_names,
            "has_sequences": features.seq_index is not None,
            "shape": list(features.table.shape),
            "table": blocks,
            "files": files,
            **extra_meta,
        }
        manifest["checksum"] = _manifest_checksum(manifest)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        _publish(staging, directory)


def export_table(features: FeatureSet, event_ids: pd.Series, path: Path) -> None:
    """Write the tabular features with the event id column first, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.concat([pd.DataFrame({"event_id": event_ids.to_numpy()}), features.table], axis=1)
    write_atomically(path, lambda temporary: table.to_parquet(temporary, index=False))


def _column_runs(table: pd.DataFrame) -> list[list[str]]:
    """The table's columns cut into runs stored as one file each: consecutive columns of one numpy
    dtype, or a single pandas categorical column."""
    runs: list[list[str]] = []
    previous = None
    for name, dtype in table.dtypes.items():
        if not isinstance(name, str):
            raise TypeError(f"feature column names must be strings, got {name!r}")
        categorical = isinstance(dtype, pd.CategoricalDtype)
        if not categorical and (not isinstance(dtype, np.dtype) or dtype.kind == "O"):
            raise TypeError(f"feature column {name!r} has dtype {dtype}, which the feature cache cannot store")
        if categorical or previous is None or dtype != previous:
            runs.append([])
        runs[-1].append(name)
        previous = None if categorical else dtype  # a categorical column never joins a run
    return runs


def _describe_block(table: pd.DataFrame, columns: list[str], file: str) -> tuple[dict, list[np.ndarray]]:
    """The manifest entry of one table file and the column arrays it holds."""
    dtype = table.dtypes[columns[0]]
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories
        block = {"file": file, "columns": columns, "categories": categories.tolist(),
                 "categories_dtype": str(categories.dtype), "ordered": bool(dtype.ordered)}
        return block, [table[columns[0]].cat.codes.to_numpy()]
    return {"file": file, "columns": columns}, [table[c].to_numpy() for c in columns]


def _write_npy(path: Path, parts: Iterable[np.ndarray], shape: tuple[int, ...]) -> dict:
    """Write the C-order concatenation of `parts` as one `.npy` array of `shape` and return its
    manifest entry (dtype, shape, size, checksum of the data).

    The checksum runs on a second thread while this one writes: both release the GIL on large
    buffers, so on two cores it costs almost no wall time. One worker hashes the parts in order.
    """
    parts = list(parts)
    dtype = parts[0].dtype
    hasher = xxhash.xxh3_64()
    with open(path, "wb") as stream, ThreadPoolExecutor(max_workers=1) as checksum_thread:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
        np.lib.format.write_array_header_1_0(stream, header)
        hashed = []
        for part in parts:
            data = _as_bytes(np.ascontiguousarray(part, dtype=dtype))
            hashed.append(checksum_thread.submit(hasher.update, data))
            stream.write(data)
        for done in hashed:
            done.result()
    return {"dtype": dtype.str, "shape": list(shape), "bytes": path.stat().st_size, "xxh3_64": hasher.hexdigest()}


def _as_bytes(array: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous array, as a flat uint8 view (any dtype, datetimes included)."""
    return array.reshape(-1).view(np.uint8)


def _load_array(directory: Path, name: str, entry: dict) -> np.ndarray:
    """One file of the cache, memory-mapped, after checking its size, dtype, shape and checksum."""
    path = directory / name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DamagedCache(directory, f"{name} is missing") from None
    if size != entry["bytes"]:
        raise DamagedCache(directory, f"{name} has {size:,} bytes, the manifest says {entry['bytes']:,}")
    mapped = "c" if np.prod(entry["shape"]) > 0 else None  # an empty array cannot be mapped
    try:
        array = np.load(path, mmap_mode=mapped, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DamagedCache(directory, f"{name} is unreadable ({error})") from None
    if array.dtype.str != entry["dtype"] or list(array.shape) != entry["shape"]:
        raise DamagedCache(directory, f"{name} holds {array.dtype.str} {list(array.shape)}, the manifest says {entry['dtype']} {entry['shape']}")
    if xxhash.xxh3_64_hexdigest(_as_bytes(array)) != entry["xxh3_64"]:
        raise DamagedCache(directory, f"{name} does not match its checksum")
    return array


def _assemble_table(blocks: list[dict], arrays: dict[str, np.ndarray], rows: int) -> pd.DataFrame:
    """The DataFrame over the mapped table files, without copying them."""
    parts = [_block_frame(block, arrays[block["file"]]) for block in blocks]
    if not parts:
        return pd.DataFrame(index=pd.RangeIndex(rows))
    return pd.concat(parts, axis=1)


def _block_frame(block: dict, array: np.ndarray) -> pd.DataFrame:
    """The columns of one table file."""
    if "categories" in block:
        categories = pd.Index(block["categories"], dtype=block["categories_dtype"])
        dtype = pd.CategoricalDtype(categories, ordered=block["ordered"])
        return pd.DataFrame({block["columns"][0]: pd.Categorical.from_codes(array[0], dtype=dtype)})
    return pd.DataFrame(array.T, columns=block["columns"], copy=False)


def _manifest_checksum(manifest: dict) -> str:
    """Checksum of a manifest's content (without its own checksum)."""
    return xxhash.xxh3_64_hexdigest(json.dumps(manifest, sort_keys=True).encode())


def _publish(staging: Path, directory: Path) -> None:
    """Rename the finished staging directory to `directory`. An intact cache already there (a
    concurrent builder's) is kept; a damaged one is moved aside and removed."""
    try:
        os.rename(staging, directory)
        return
    except OSError:
        if not directory.exists():
            raise
    if _is_intact(directory):
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        os.replace(directory, aside)
    except FileNotFoundError:
        pass  # removed meanwhile by a concurrent builder
    try:
        os.rename(staging, directory)
    except OSError:
        if not _is_intact(directory):
            raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def _is_intact(directory: Path) -> bool:
    """Whether `directory` holds a cache that reads back as written."""
    try:
        return load_cached(directory) is not None
    except DamagedCache:
        return False
