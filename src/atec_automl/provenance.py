"""Where results came from: the code's git commit."""
from __future__ import annotations

import subprocess
from pathlib import Path


def current_git_commit(directory: Path | None = None) -> str:
    """Commit hash of the code's checkout (`-dirty` if tracked files changed); "unknown" outside git."""
    where = directory or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        clean = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=where, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("" if clean.returncode == 0 else "-dirty")
