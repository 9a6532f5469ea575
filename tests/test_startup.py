"""Tasks that fit no neural net start without the libraries they do not use.

`python run.py` pays for every module it imports before the task's work starts: torch about 1.2 s,
sklearn's metrics 0.8 s, scipy.stats 0.9 s on this machine. `PYTHONPROFILEIMPORTTIME=1` (the same as
`python -X importtime`) makes the real command list every module it imports on stderr.
"""
from __future__ import annotations

from pathlib import Path

import pytest

HEAVY = ("torch", "lightning", "sklearn", "scipy.stats")


def imported(stderr: str) -> set[str]:
    """The modules an importtime listing on stderr names."""
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def heavy(modules: set[str]) -> list[str]:
    """The libraries of `HEAVY` among `modules`."""
    return [name for name in HEAVY if name in modules]


@pytest.fixture
def listing_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run from here list their imports on stderr."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")


def test_check_data_loads_no_model_library(listing_imports, raw_files: dict[str, Path], run_cli) -> None:
    result = run_cli(["task=check-data", "data=atec", *(f"data.{part}={path}" for part, path in raw_files.items())])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rows" in result.stdout
    modules = imported(result.stderr)
    assert "pandas" in modules
    assert heavy(modules) == []


def test_the_leaderboard_loads_no_model_library(listing_imports, tmp_path: Path, run_cli) -> None:
    result = run_cli(["task=leaderboard", f"leaderboard.path={tmp_path / 'board' / 'leaderboard.sqlite'}"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no entries yet" in result.stdout
    modules = imported(result.stderr)
    assert "atec_automl.leaderboard" in modules
    assert heavy(modules) == []
