"""Writing and reading a saved model's directory: files appear whole or not at all."""
from __future__ import annotations

import json
from pathlib import Path

from atec_automl.errors import AtecError
from atec_automl.staging import write_text_atomically

META_FILE = "model.json"


def write_meta(directory: Path, meta: dict) -> None:
    """Write the model's description (`family`, parameters, columns) as JSON."""
    text = json.dumps(meta, indent=2, sort_keys=True)
    write_text_atomically(Path(directory) / META_FILE, text)


def read_meta(directory: Path, family: str | None = None) -> dict:
    """Read `model.json`, checking the family when one is expected."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise AtecError(f"model directory {directory}: no {META_FILE} (not a saved model)")
    meta = json.loads(path.read_text())
    if family is not None and meta.get("family") != family:
        raise AtecError(f"model directory {directory}: holds a {meta.get('family')!r} model, not {family!r}")
    return meta
