"""Run a benchmark script's child mode in a fresh process that imports `atec_automl` from a given `src/`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def last_line(script: str, args: list[str], src: Path) -> str:
    """The last line `python script *args` prints, run on one thread with `atec_automl` imported from `src`
    (this checkout's or another's, for old-beside-new figures)."""
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, script, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]
