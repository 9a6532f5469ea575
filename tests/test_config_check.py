"""Bad settings stop `python run.py` before any data is loaded, with one `error:` line naming the key and
exit status 2 (Hydra's own composition errors included); every run gets its own run dir and log."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from atec_automl.errors import AtecError
from atec_automl.settings import MODEL_SETTINGS
from atec_automl.tasks._config import check_config

REPO = Path(__file__).resolve().parents[1]

# name -> (overrides, what the error line must start with); `{tmp}` is the case's own folder.
CASES: dict[str, tuple[list[str], str]] = {
    "negative trial budget": (["study.n_trials=-1"], "error: study.n_trials=-1: "),
    "zero trial budget": (["study.n_trials=0"], "error: study.n_trials=0: "),
    "negative timeout": (["study.timeout_s=-1"], "error: study.timeout_s=-1: "),
    "blend of nothing": (["task=submit", "submit.blend_top=0"], "error: submit.blend_top=0: "),
    "seed not a number": (["seed=abc"], "error: seed='abc': "),
    "negative iterations": (["task=train", "model.iterations=-5"], "error: model.iterations=-5: "),
    "unknown family in the sweep": (["sweep.models=[catboost,xgboost]"], "error: sweep.models[1]='xgboost': no such model family; choose among catboost, cnn_lstm, mlp"),
    "family override out of range": (["sweep.family_overrides.mlp=['model.epochs=0']"],
                                     "error: sweep family mlp (sweep.family_overrides.mlp): model.epochs=0: "),
    "leaderboard dir not writable": (["leaderboard.path={tmp}/a_file/leaderboard.sqlite"],
                                     "error: leaderboard.path: cannot write in {tmp}/a_file"),
    "submissions dir not writable": (["submit.dir={tmp}/a_file/submissions"], "error: submit.dir: cannot write in {tmp}/a_file"),
    "serve state dir not writable": (["task=serve", "serve.submission={tmp}/submissions/none",
                                      "serve.state_dir={tmp}/a_file/state"], "error: serve.state_dir: cannot write in {tmp}/a_file"),
    "serve port not a number": (["task=serve", "serve.submission={tmp}/submissions/none", "serve.port=abc"],
                                "error: serve.port='abc': "),
    "serve port out of range": (["task=serve", "serve.submission={tmp}/submissions/none", "serve.port=99999"],
                                "error: serve.port=99999: "),
    "serve batches of nothing": (["task=serve", "serve.submission={tmp}/submissions/none", "serve.max_batch=0"],
                                 "error: serve.max_batch=0: "),
    "serve no time ahead": (["task=serve", "serve.submission={tmp}/submissions/none", "serve.max_ahead_hours=0"],
                            "error: serve.max_ahead_hours=0: "),
    "predict output in a file": (["task=predict", "predict.submission={tmp}/submissions/none", "predict.events=new.csv",
                                  "predict.output={tmp}/a_file/scores.csv"], "error: predict.output: cannot write in {tmp}/a_file"),
    "predict output a folder": (["task=predict", "predict.submission={tmp}/submissions/none", "predict.events=new.csv",
                                 "predict.output={tmp}"], "error: predict.output={tmp}: is a folder"),
    "submission outside its folder": (["task=submit", "submit.name=../escape"],
                                      "error: submit.name='../escape': Value error, must be one folder name"),
    "review size not a number": (["task=review", "review.size=abc"], "error: review.size='abc': "),
    "check-data top of nothing": (["task=check-data", "check_data.top=0"], "error: check_data.top=0: "),
    "fidelity shares falling": (["sweep.fidelity.shares=[0.5,0.2]"],
                                "error: sweep.fidelity.shares=[0.5, 0.2]: Value error, user shares must rise strictly"),
    "trainer threads below one": (["task=train", "trainer.cpu_threads=0"],
                                  "error: trainer.cpu_threads: 0 is not >= 1 (null: the usable cores)"),
    "label policy out of range": (["task=train", "labels=two_step_pu", "labels.spy_share=2"],
                                  "error: labels: need 0 < spy_share < 1"),
    "negative learning rate": (["task=train", "model.learning_rate=-1"], "error: model.learning_rate=-1: "),
    "trees deeper than CatBoost's": (["task=train", "model.depth=40"], "error: model.depth=40: "),
    "MLP without units": (["task=train", "model=mlp", "model.hidden_units=0"], "error: model.hidden_units=0: "),
    "learning rate not a number": (["task=train", "model=mlp", "model.learning_rate=abc"], "error: model.learning_rate='abc': "),
    "synthetic rows not a number": (["task=generate", "data.rows=abc"], "error: data.rows='abc': "),
    "unknown group option": (["model=xgboost"], "error: model=xgboost: no such option in conf/model/; choose one of: catboost"),
    "bad override syntax": (["study.n_trials=[1"], "error: override 'study.n_trials=[1': "),
    "key that is not there": (["study.ntrials=3"], "error: Could not override 'study.ntrials'"),
    "interpolation of a missing key": (["debug=${no_such_key}"], "error: debug: Interpolation key 'no_such_key' not found"),
}


def _outputs(tmp: Path) -> list[str]:
    """Overrides putting the leaderboard, the study and the submissions under `tmp`."""
    return [f"leaderboard.path={tmp}/leaderboard.sqlite", f"study.storage=sqlite:///{tmp}/optuna.sqlite",
            f"submit.dir={tmp}/submissions"]


def _command(overrides: list[str], tmp: Path) -> list[str]:
    """`python run.py` with every output under `tmp`, then the case's overrides."""
    return [sys.executable, "run.py", f"data.dir={tmp}/data", f"features.cache_dir={tmp}/features", *_outputs(tmp),
            f"hydra.run.dir={tmp}/run", *overrides]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Every case's folder and result; the commands run side by side, one per CPU."""

    def attempt(name: str) -> tuple[str, tuple[Path, subprocess.CompletedProcess]]:
        tmp = tmp_path_factory.mktemp("case")
        (tmp / "a_file").write_text("a file where a folder should be\n")
        overrides = [o.replace("{tmp}", str(tmp)) for o in CASES[name][0]]
        result = subprocess.run(_command(overrides, tmp), cwd=REPO, capture_output=True, text=True, timeout=120,
                                env={**os.environ, "WANDB_MODE": "disabled"})
        return name, (tmp, result)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(pool.map(attempt, CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_setting_stops_with_one_line_naming_the_key_before_any_data_is_loaded(name, outcomes) -> None:
    tmp, result = outcomes[name]
    expected = CASES[name][1].replace("{tmp}", str(tmp))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), f"{result.stderr!r} does not start with {expected!r}"
    assert not (tmp / "data").exists() and not (tmp / "leaderboard.sqlite").exists()


def checked(tmp_path: Path, *overrides: str) -> None:
    """`check_config` on the config `python run.py <overrides>` composes, outputs under tmp_path."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=[*_outputs(tmp_path), *overrides])
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        check_config(cfg)


@pytest.mark.parametrize("experiment", ["smoke", "prelim", "gpu_long"])
def test_every_shipped_experiment_passes_the_check(tmp_path: Path, experiment: str) -> None:
    """On a machine without CUDA the GPU experiment is refused by its trainer, in one line, and passes on the CPU."""
    import torch

    if experiment == "gpu_long" and not torch.cuda.is_available():
        with pytest.raises(AtecError, match=r"^trainer.accelerator=gpu but torch sees no CUDA device; use trainer=cpu$"):
            checked(tmp_path, f"experiment={experiment}")
        checked(tmp_path, f"experiment={experiment}", "trainer.accelerator=cpu")
    else:
        checked(tmp_path, f"experiment={experiment}")
    assert (tmp_path / "submissions").is_dir() and not any((tmp_path / "submissions").iterdir())


def test_the_defaults_pass_and_read_only_tasks_create_nothing(tmp_path: Path) -> None:
    checked(tmp_path)
    checked(tmp_path / "other", "task=leaderboard")
    assert not (tmp_path / "other").exists()
    with pytest.raises(AtecError, match=r"^study.n_trials=0: "):
        checked(tmp_path, "task=leaderboard", "study.n_trials=0")


def test_a_serve_address_in_use_is_refused_before_anything_loads(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AtecError, match=rf"^serve.host='127.0.0.1' serve.port={port}: cannot listen there \("):
            checked(tmp_path, "task=serve", "serve.submission=submissions/none", f"serve.port={port}")
    checked(tmp_path, "task=serve", "serve.submission=submissions/none", f"serve.port={port}")


def test_every_model_family_has_its_settings_schema() -> None:
    from atec_automl.models import FAMILIES

    assert {target.replace(":", ".") for target in FAMILIES.values()} == set(MODEL_SETTINGS)


def test_runs_started_together_get_their_own_run_dir_and_log(tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "run.py"), "task=leaderboard", f"leaderboard.path={tmp_path}/lb.sqlite"]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    runs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    dirs = []
    for stdout, _ in outputs:
        first = stdout.splitlines()[0]
        assert first.startswith("[run] dir: ") and stdout.count("[run] dir:") == 1, stdout
        dirs.append(Path(first.removeprefix("[run] dir: ")))
    assert len(set(dirs)) == 3 and all(d.parent.parent == tmp_path / "runs" for d in dirs), dirs
    for run_dir in dirs:
        assert f"[run] dir: {run_dir}" in (run_dir / "run.log").read_text()
