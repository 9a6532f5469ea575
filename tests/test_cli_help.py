"""`python run.py --help`: the tasks and the config groups on one screen."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from atec_automl.tasks import available_tasks

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_every_task_and_group_on_one_screen() -> None:
    result = subprocess.run([sys.executable, "run.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) < 60, f"--help printed {len(lines)} lines"
    tasks_at = lines.index("== Tasks (task=NAME) ==")
    groups_at = lines.index("== Config groups (group=option) ==")
    listed = [re.match(r"  (\S+)\s", line).group(1) for line in lines[tasks_at + 1:groups_at] if line.strip()]
    assert sorted(listed) == available_tasks()
    groups = {line.split(":")[0] for line in lines[groups_at + 1:] if re.match(r"^[a-z_]+: ", line)}
    assert {"data", "features", "split", "labels", "model", "trainer", "study", "logger", "experiment"} <= groups
    assert "multirun/" in result.stdout


def test_the_config_comment_names_every_task() -> None:
    comment = next(line for line in (REPO / "conf/config.yaml").read_text().splitlines() if line.startswith("task:"))
    assert sorted(comment.split("#", 1)[1].replace("|", " ").split()) == available_tasks()
