"""Search spaces as data: every conf/search file samples with real Optuna and builds its model."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from omegaconf import OmegaConf

from atec_automl.errors import AtecError
from atec_automl.models import FAMILIES
from atec_automl.search.space import load_space, suggest
from atec_automl.search.study import TrialSeededSampler
from atec_automl.tasks._experiment import recipe
from atec_automl.tasks._sweep import apply, family_plan
from conftest import compose_config

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_cfg(*overrides: str):
    return compose_config(overrides)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_enqueued_defaults_come_first_and_every_sample_builds_a_model(family):
    space = load_space(CONF_DIR / "search" / f"{family}.yaml")
    assert space.family == family and space.enqueue
    cfg = compose_cfg(f"model={family}")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for trial in space.enqueue:
        study.enqueue_trial(trial)
    for number in range(4):
        trial = study.ask()
        values = suggest(trial, space)
        if number == 0:
            assert values == space.enqueue[0]
        trial_cfg = apply(cfg, space, values)
        model = recipe(trial_cfg).build_model()
        for param in space.params:
            assert OmegaConf.select(trial_cfg, param.path) == values[param.name]
            assert getattr(model.params, param.path.split(".")[-1]) == values[param.name]
        study.tell(trial, float(number))


def test_defaults_enqueued_for_neural_families_match_the_model_config():
    for family in ("mlp", "cnn_lstm"):
        space = load_space(CONF_DIR / "search" / f"{family}.yaml")
        cfg = compose_cfg(f"model={family}")
        for param in space.params:
            assert OmegaConf.select(cfg, param.path) == space.enqueue[0][param.name], param.name


def test_malformed_space_is_a_one_line_error():
    with pytest.raises(AtecError, match="'depth' needs low < high"):
        load_space({"family": "catboost", "params": {"depth": {"path": "model.depth", "type": "int", "low": 5, "high": 5}}})
    with pytest.raises(AtecError, match="enqueued depth=11"):
        load_space({"family": "catboost", "params": {"depth": {"path": "model.depth", "type": "int", "low": 4, "high": 10}},
                    "enqueue": [{"depth": 11}]})
    space = load_space({"family": "catboost", "params": {"x": {"path": "model.nope", "type": "float", "low": 0, "high": 1}}})
    with pytest.raises(AtecError, match="'model.nope'"):
        apply(compose_cfg(), space, {"x": 0.5})


def sampled_trials(sampler: optuna.samplers.BaseSampler, space, count: int) -> list[dict]:
    """The parameters of a fresh study's first `count` trials after the space's enqueued ones, each told a
    score that favours deep trees (so that a model of the history has something to follow)."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for params in space.enqueue:
        study.enqueue_trial(params)
    trials = []
    for _ in range(len(space.enqueue) + count):
        trial = study.ask()
        values = suggest(trial, space)
        study.tell(trial, float(values["depth"]))
        trials.append(trial.params)
    return trials[len(space.enqueue):]


def test_random_startup_trials_come_after_the_enqueued_defaults():
    """The defaults, enqueued once per label policy with the same model parameters, do not use up TPE's
    random startup trials: the study's sampler draws `n_startup_trials` trials at random after them."""
    cfg = compose_config(["logger=none"])
    prepared = SimpleNamespace(dataset=SimpleNamespace(fingerprint="fingerprint"), folds=[])
    plan = family_plan(cfg, "catboost", prepared, [], CONF_DIR, compose_config)
    startup = int(cfg.study.sampler.n_startup_trials)
    assert len(plan.space.enqueue) == 4 and startup >= 2
    harness = sampled_trials(plan.sampler, plan.space, startup + 1)
    uniform = sampled_trials(TrialSeededSampler(optuna.samplers.RandomSampler, int(cfg.seed)), plan.space, startup + 1)
    assert harness[:startup] == uniform[:startup]
    assert harness[startup] != uniform[startup]
