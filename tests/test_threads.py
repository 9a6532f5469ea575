"""Thread counts follow the cores this process may use: affinity, cgroup quota, workers per host."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from atec_automl.errors import AtecError
from atec_automl.tasks._experiment import trainer_settings
from atec_automl.models.base import ModelData
from atec_automl.models.catboost_model import CatBoostModel
from atec_automl.models.mlp import MLPModel
from atec_automl.models.threads import cgroup_cpu_quota, usable_cores
from atec_automl.models.trainer import TrainerSettings
from atec_automl.testing import make_toy

AFFINITY = len(os.sched_getaffinity(0))
MISSING = Path("/nonexistent/cgroup")
needs_two_cores = pytest.mark.skipif(AFFINITY < 2, reason="needs a process allowed on 2 cores")


def cgroup_files(tmp_path: Path, v2: str | None = None, v1: tuple[str, str] | None = None) -> dict[str, Path]:
    """Fake cgroup files (absent ones point nowhere) as keyword arguments of the quota functions."""
    paths = {"cpu_max": MISSING, "cfs_quota": MISSING, "cfs_period": MISSING}
    if v2 is not None:
        paths["cpu_max"] = tmp_path / "cpu.max"
        paths["cpu_max"].write_text(v2 + "\n")
    if v1 is not None:
        paths["cfs_quota"], paths["cfs_period"] = tmp_path / "cpu.cfs_quota_us", tmp_path / "cpu.cfs_period_us"
        paths["cfs_quota"].write_text(v1[0] + "\n")
        paths["cfs_period"].write_text(v1[1] + "\n")
    return paths


@pytest.mark.parametrize(
    ("v2", "v1", "quota"),
    [
        ("150000 100000", None, 1.5),
        ("max 100000", None, None),
        ("max 100000", ("100000", "100000"), None),
        (None, ("200000", "100000"), 2.0),
        (None, ("-1", "100000"), None),
        (None, None, None),
        ("garbage", None, None),
    ],
)
def test_cgroup_quota_is_read_from_v2_then_v1(tmp_path, v2, v1, quota):
    assert cgroup_cpu_quota(**cgroup_files(tmp_path, v2, v1)) == quota


def test_quota_caps_the_cores_rounded_down_and_never_below_one(tmp_path):
    assert usable_cores(**cgroup_files(tmp_path, v2="100000 100000")) == 1
    assert usable_cores(**cgroup_files(tmp_path, v2="50000 100000")) == 1
    assert usable_cores(**cgroup_files(tmp_path, v1=("150000", "100000"))) == 1
    assert usable_cores(**cgroup_files(tmp_path, v2="6400000 100000")) == AFFINITY


@pytest.mark.parametrize("workers", [1, 2, 3, 64])
def test_workers_per_host_divide_the_cores(tmp_path, workers):
    assert usable_cores(workers, **cgroup_files(tmp_path)) == max(1, AFFINITY // workers)
    assert usable_cores(workers, **cgroup_files(tmp_path, v2="400000 100000")) == max(1, min(AFFINITY, 4) // workers)


@needs_two_cores
def test_affinity_is_respected():
    """A process pinned to one core (a real sched_setaffinity) gets 1; trainer and torch follow."""
    code = ("import os, torch; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
            "from atec_automl.models.trainer import TrainerSettings; t = TrainerSettings(cpu_threads=None);"
            "torch.set_num_threads(2)\n"
            "with t.threads(): print(t.usable_cores(), torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    assert out.stdout.split() == ["1", "1"]


def test_torch_runs_at_cpu_threads_or_else_the_usable_cores():
    before = torch.get_num_threads()
    for settings, expected in ((TrainerSettings(), 1),
                               (TrainerSettings(cpu_threads=None), usable_cores()),
                               (TrainerSettings(cpu_threads=None, workers_per_host=AFFINITY), 1),
                               (TrainerSettings(cpu_threads=3), 3),
                               (TrainerSettings(cpu_threads=3, workers_per_host=AFFINITY), 3)):
        torch.set_num_threads(5)
        with settings.threads():
            assert torch.get_num_threads() == expected
        assert torch.get_num_threads() == 5
    torch.set_num_threads(before)


def test_interop_threads_fixed_earlier_are_left_alone():
    """torch refuses a second inter-op count; setting threads still works and says nothing."""
    code = ("import torch; torch.set_num_interop_threads(1); torch.set_num_threads(1);"
            "from atec_automl.models.threads import set_torch_threads; set_torch_threads(2);"
            "print(torch.get_num_threads(), torch.get_num_interop_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    assert (out.stdout.split(), out.stderr) == (["2", "1"], "")


@pytest.fixture(scope="module")
def small() -> tuple[ModelData, ModelData]:
    """Train and validation rows of a small toy timeline."""
    toy = make_toy(n_rows=1500, n_users=150, n_numeric=4, seed=5)
    rows = np.arange(1500)
    target = toy.true_label.astype(np.float64)
    return ModelData(toy.features, rows[:1200], target[:1200]), ModelData(toy.features, rows[1200:], target[1200:])


@needs_two_cores
@pytest.mark.parametrize(("trainer", "explicit", "expected"),
                         [(TrainerSettings(), None, AFFINITY), (TrainerSettings(workers_per_host=2), None, AFFINITY // 2),
                          (TrainerSettings(workers_per_host=2), 2, 2), (TrainerSettings(), 1, 1)])
def test_catboost_fits_with_the_chosen_thread_count(small, trainer, explicit, expected):
    params = {} if explicit is None else {"thread_count": explicit}
    model = CatBoostModel(trainer=trainer, iterations=20, **params)
    model.fit(*small)
    assert model.booster.get_params()["thread_count"] == expected


@needs_two_cores
def test_neural_training_runs_at_the_chosen_thread_count(small):
    """The MLP trains under workers_per_host=2 at AFFINITY // 2 threads (seen from inside each epoch)."""
    seen: list[int] = []
    model = MLPModel(trainer=TrainerSettings(cpu_threads=None, workers_per_host=2), epochs=2, batch_size=256)
    torch.set_num_threads(AFFINITY)
    model.fit(*small, report=lambda epoch, value: seen.append(torch.get_num_threads()))
    assert seen == [AFFINITY // 2] * 2
    assert torch.get_num_threads() == AFFINITY


def test_settings_reach_the_trainer_from_the_config(compose_cfg):
    assert trainer_settings(compose_cfg([])).torch_threads == 1
    trainer = trainer_settings(compose_cfg(["trainer.workers_per_host=2", "trainer.cpu_threads=null"]))
    assert (trainer.workers_per_host, trainer.torch_threads) == (2, max(1, AFFINITY // 2))


@pytest.mark.parametrize(("key", "value"), [("workers_per_host", 0), ("cpu_threads", 0)])
def test_bad_thread_settings_name_the_key(key, value):
    with pytest.raises(AtecError, match=f"trainer.{key}"):
        TrainerSettings(**{key: value})
