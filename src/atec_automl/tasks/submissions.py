"""`task=submissions`: list the submissions in `submit.dir` (oldest first): name, entries, data,
the entries' local scores, created; and the folders whose manifest cannot be read."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from atec_automl.submissions import damaged_manifests, read_manifests

COLUMNS = ("name", "method", "entries", "data", "scores", "created")


def summary_rows(root: Path) -> list[tuple[str, ...]]:
    """One row of display strings per submission."""
    rows = []
    for folder, content in read_manifests(root):
        entries = content.get("entries", [])
        rows.append((folder.name, "blend" if len(entries) > 1 else "entry",
                     ",".join(str(e.get("id")) for e in entries), str(content.get("data_fingerprint", "?"))[:8],
                     ",".join("-" if e.get("score") is None else f"{e['score']:.4f}" for e in entries),
                     str(content.get("created_at", "?"))))
    return rows


def run(cfg: DictConfig) -> None:
    """Print the table, or say that there is none yet; then the folders whose manifest cannot be read."""
    root = Path(cfg.submit.dir)
    rows = summary_rows(root)
    if not rows:
        print(f"No submissions in {root} yet: run task=submit (or a sweep with sweep.submit=true).")
    else:
        print(f"Submissions in {root} ({len(rows)})")
        widths = [max(len(row[i]) for row in (COLUMNS, *rows)) for i in range(len(COLUMNS))]
        for row in (COLUMNS, *rows):
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for folder, problem in damaged_manifests(root):
        print(f"damaged, not listed: {folder} (its manifest.json {problem})")
