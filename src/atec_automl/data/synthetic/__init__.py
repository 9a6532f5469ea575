"""Realistic synthetic payment events in the ATEC semi-final raw schema.

`generate(rows, seed, out_dir)` writes `train`, `test_a`, `test_b` (same columns as the contest
files, tests without `is_fraud`), `test_labels` (the hidden labels: event_id, is_fraud and
true_fraud of every test row, then of every training row whose label is not the truth: each grey
row and each unreported fraud labelled 0) and `manifest.json`, all at once: files are built in a
hidden staging directory next to `out_dir` and moved in with renames, the manifest last, so an
interrupted run leaves nothing that looks complete. Same rows and seed give byte-identical files.

The generative story, one module a chapter (`simulate` runs them in this order):

- `world`: users, their households, devices, cards and usual payees; merchants, carrier NATs,
  hotspots, shop devices and the fraud rings' pools.
- `normal`: sessions of legitimate events following each user's habits, trips and holidays.
- `fraud`: ring campaigns over many victims and lone thieves (takeover, stolen phone, device farm).
- `labels`: the legacy rule engine that blocks the riskiest events (grey), unreported fraud, and
  the fields that go missing.
- `writing`: the entity numbers and codes as the contest's hex ids, texts and times, in parquet or CSV.

`windows` holds the three files' time windows and their drift (more device-farm fraud, more
missing fields, inflated amounts, newer app versions, new users, rings adapting to velocity
rules); `schema` the columns, vocabularies and codes.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from atec_automl.data.synthetic.schema import COLUMNS, INT_COLUMNS, NORMAL
from atec_automl.data.synthetic.simulation import SyntheticEvents, check_rows_and_seed, simulate
from atec_automl.data.synthetic.windows import WINDOWS
from atec_automl.data.synthetic.writing import write_parts
from atec_automl.digest import file_sha256
from atec_automl.errors import AtecError
from atec_automl.staging import remove_stale_staging, staging_dir

__all__ = ["COLUMNS", "GENERATOR_VERSION", "INT_COLUMNS", "MANIFEST_NAME", "WINDOWS", "SyntheticEvents",
           "ensure_generated", "generate", "generate_from_config", "is_current", "read_manifest", "simulate"]

log = logging.getLogger(__name__)
FILE_FORMATS = ("parquet", "csv")
TIME_RESOLUTIONS = ("second", "hour")
MANIFEST_NAME = "manifest.json"
GENERATOR_VERSION = 4
"""Version of the written files (4: the hidden labels file holds `true_fraud` and the training rows whose
label hides it); a manifest of another version is regenerated."""


def generate(
    rows: int, seed: int, out_dir: Path, file_format: str = "parquet", time_resolution: str = "second",
    grey_fraud_share: float | None = None,
) -> dict[str, Path]:
    """Write train, test_a, test_b, hidden test labels and a manifest into `out_dir`; return the 4 data paths."""
    _check_arguments(rows, seed, file_format, time_resolution)
    _check_grey_fraud_share(grey_fraud_share)
    out_dir = Path(out_dir)
    events = simulate(rows, seed, grey_fraud_share)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir.parent)
    with staging_dir(out_dir) as staging:
        names = write_parts(events, seed, staging, file_format, time_resolution)
        manifest = _manifest(events, seed, staging, names, file_format, time_resolution, grey_fraud_share)
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _publish(staging, out_dir, names)
    return {key: out_dir / name for key, name in names.items()}


def generate_from_config(data_cfg) -> dict[str, Path]:
    """`generate` with the keys of `conf/data/synthetic.yaml` (rows, seed, dir, file_format, time_resolution,
    grey_fraud_share)."""
    return generate(
        rows=int(data_cfg.rows),
        seed=int(data_cfg.seed),
        out_dir=Path(str(data_cfg.dir)),
        file_format=str(data_cfg.file_format),
        time_resolution=str(data_cfg.get("time_resolution", "second")),
        grey_fraud_share=_share_setting(data_cfg.get("grey_fraud_share")),
    )


def _share_setting(value) -> float | None:
    """`data.grey_fraud_share` as a float, or None (the rule engine's own share)."""
    return None if value is None else float(value)


def _check_grey_fraud_share(share: float | None) -> None:
    """The share of blocked (grey) events that are really fraud must lie in [0, 1]."""
    if share is not None and not 0.0 <= share <= 1.0:
        raise AtecError(f"data.grey_fraud_share={share}: give a share in [0, 1], or null for the rule engine's own")


def is_current(data_cfg) -> bool:
    """Whether `data_cfg.dir` holds a complete generation of this generator version with these settings."""
    try:
        manifest = read_manifest(Path(str(data_cfg.dir)))
    except (OSError, ValueError):
        return False
    wanted = {"generator_version": GENERATOR_VERSION, "rows": int(data_cfg.rows), "seed": int(data_cfg.seed),
              "file_format": str(data_cfg.file_format), "time_resolution": str(data_cfg.get("time_resolution", "second")),
              "grey_fraud_share": _share_setting(data_cfg.get("grey_fraud_share"))}
    return all(manifest.get(key) == value for key, value in wanted.items())


def ensure_generated(data_cfg) -> None:
    """Generate `data_cfg.dir` unless it already holds this generator version's files with these settings."""
    if not is_current(data_cfg):
        log.info("generating synthetic data into %s", data_cfg.dir)
        generate_from_config(data_cfg)


def read_manifest(out_dir: Path) -> dict:
    """The manifest of a generated directory (rows, seed, per-file counts and digests)."""
    return json.loads((Path(out_dir) / MANIFEST_NAME).read_text(encoding="utf-8"))


def _check_arguments(rows: int, seed: int, file_format: str, time_resolution: str) -> None:
    """Reject settings the generator cannot honour, naming the config key."""
    check_rows_and_seed(rows, seed)
    if file_format not in FILE_FORMATS:
        raise AtecError(f"data.file_format={file_format!r}: choose one of {', '.join(FILE_FORMATS)}")
    if time_resolution not in TIME_RESOLUTIONS:
        raise AtecError(f"data.time_resolution={time_resolution!r}: choose one of {', '.join(TIME_RESOLUTIONS)}")


def _manifest(
    events: SyntheticEvents, seed: int, directory: Path, names: dict[str, str], file_format: str, time_resolution: str,
    grey_fraud_share: float | None = None,
) -> dict:
    """Rows, seed, settings, per-part label counts and file digests (no timings: same seed, same bytes)."""
    labels = events.columns["is_fraud"]
    parts = {}
    for window in WINDOWS:
        part_labels = labels[events.part_slice(window.part)]
        parts[window.part] = {
            "file": names[window.part],
            "rows": int(len(part_labels)),
            "first_day": window.first_day,
            "last_day": window.last_day,
            "fraud": int((part_labels == 1).sum()),
            "white": int((part_labels == 0).sum()),
            "grey": int((part_labels == -1).sum()),
            "grey_really_fraud": int(((part_labels == -1) & (events.columns["tactic"][events.part_slice(window.part)] != NORMAL)).sum()),
            "sha256": file_sha256(directory / names[window.part]),
        }
    return {
        "generator": "atec_automl.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "rows": int(sum(events.part_rows.values())),
        "seed": int(seed),
        "file_format": file_format,
        "time_resolution": time_resolution,
        "grey_fraud_share": grey_fraud_share,
        "parts": parts,
        "hidden_labels": {"file": names["hidden_labels"], "sha256": file_sha256(directory / names["hidden_labels"])},
    }


def _publish(temp_dir: Path, out_dir: Path, names: dict[str, str]) -> None:
    """Move the finished files and the manifest into `out_dir`: one directory rename if it is new, else file by
    file, manifest last."""
    os.chmod(temp_dir, 0o755)
    if not out_dir.exists():
        try:
            os.rename(temp_dir, out_dir)
            return
        except OSError:
            pass  # created meanwhile by someone else: fall back to moving files
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for name in names.values():
        os.replace(temp_dir / name, out_dir / name)
    os.replace(temp_dir / MANIFEST_NAME, out_dir / MANIFEST_NAME)
