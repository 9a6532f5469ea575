"""Reading the submissions folder back: each submission's `manifest.json` (see `atec_automl.submit`)."""
from __future__ import annotations

import json
from pathlib import Path


def read_manifests(root: Path) -> list[tuple[Path, dict]]:
    """(folder, manifest) of every submission in `root`, oldest first; unreadable manifests are skipped."""
    found = []
    for manifest_path in sorted(Path(root).glob("*/manifest.json")):
        if manifest_path.parent.name.startswith("."):
            continue
        try:
            found.append((manifest_path.parent, json.loads(manifest_path.read_text())))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda item: str(item[1].get("created_at", "")))
