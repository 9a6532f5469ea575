"""Reading the submissions folder back: each submission's `manifest.json` (see `atec_automl.submit`)."""
from __future__ import annotations

import json
from pathlib import Path


def _manifest_files(root: Path) -> list[Path]:
    """The `manifest.json` of every submission folder in `root` (staging folders, named with a dot, excepted)."""
    return [path for path in sorted(Path(root).glob("*/manifest.json")) if not path.parent.name.startswith(".")]


def _read(path: Path) -> dict | str:
    """A manifest's content, or why it cannot be read."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    except ValueError as error:
        return f"is not JSON ({error})"
    return content if isinstance(content, dict) else "is not a JSON object"


def read_manifests(root: Path) -> list[tuple[Path, dict]]:
    """(folder, manifest) of every submission in `root`, oldest first; unreadable manifests are skipped
    (`damaged_manifests` lists them)."""
    found = [(path.parent, content) for path in _manifest_files(root) if isinstance(content := _read(path), dict)]
    return sorted(found, key=lambda item: str(item[1].get("created_at", "")))


def damaged_manifests(root: Path) -> list[tuple[Path, str]]:
    """(folder, what is wrong with its manifest) of every submission in `root` whose manifest cannot be read."""
    return [(path.parent, problem) for path in _manifest_files(root) if isinstance(problem := _read(path), str)]
