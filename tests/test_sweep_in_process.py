"""A sweep run in-process (no subprocess, no `@hydra.main`): the task layer composes each family's
config through the conftest compose helper and hands the library plain plans; and a submission refits
an entry on this run's trainer, whatever trainer the entry was swept on."""
from __future__ import annotations

import gc
import json
import weakref
from dataclasses import replace
from pathlib import Path

import optuna
from omegaconf import OmegaConf

from atec_automl.leaderboard import Leaderboard
from atec_automl.pipeline import Prepared
from atec_automl.search import sweep as search_sweep
from atec_automl.search.fidelity import enqueue_promotion
from atec_automl.tasks._experiment import entry_recipe, prepare, submit_configured, trainer_settings
from atec_automl.tasks.sweep import sweep
from test_submit import scored_entry

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def tiny_sweep_overrides(root: Path) -> list[str]:
    """One CatBoost trial (the library defaults, grey rows as black) on tiny synthetic data, on one fold."""
    return ["data.rows=40000", f"data.dir={root}/data", "features.cache_dir=null", "logger=none",
            f"leaderboard.path={root}/leaderboard.sqlite", f"study.storage=sqlite:///{root}/optuna.sqlite",
            f"submit.dir={root}/submissions", "leaderboard.bootstrap=0", "split.n_folds=1", "study.n_trials=1",
            "sweep.models=[catboost]", "labels=as_black", "trainer=cpu",
            "sweep.family_overrides.catboost=['model.iterations=30','model.early_stopping_rounds=10','model.thread_count=1']"]


def test_a_sweep_runs_in_process_and_its_entry_is_submitted(compose_cfg, tmp_path: Path, capsys) -> None:
    overrides = tiny_sweep_overrides(tmp_path)
    cfg = compose_cfg(overrides)
    prepared = prepare(cfg)
    (result,) = sweep(cfg, prepared, tmp_path / "run", overrides, CONF_DIR, compose_cfg)
    assert (result.family, result.counted) == ("catboost", 1)
    (entry,) = Leaderboard(tmp_path / "leaderboard.sqlite").ranked()
    recorded = OmegaConf.create(entry.config_yaml)
    assert (entry.family, entry.policy, recorded.model.iterations) == ("catboost", "as_black", 30)
    study = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{tmp_path}/optuna.sqlite")
    assert study.user_attrs["label_policy"] == "as_black"
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE

    target = submit_configured(cfg, prepared, tmp_path / "run")
    manifest = json.loads((target / "manifest.json").read_text())
    assert [e["id"] for e in manifest["entries"]] == [entry.id]
    assert manifest["model"]["members"][0]["family"] == "catboost"
    assert "refitting it with this run's trainer" not in capsys.readouterr().out


def test_an_entry_swept_on_gpu_is_refit_on_this_runs_trainer(compose_cfg, tmp_path: Path, capsys) -> None:
    overrides = tiny_sweep_overrides(tmp_path)
    swept_on_gpu = compose_cfg([*overrides, "trainer=gpu"])
    entry = replace(scored_entry(0, 3.0), id=7, config_yaml=OmegaConf.to_yaml(swept_on_gpu, resolve=True))
    cfg = compose_cfg([*overrides, "trainer.cpu_threads=2"])
    refit = entry_recipe(cfg, entry)
    assert refit.trainer == trainer_settings(cfg)
    assert (refit.trainer.accelerator, refit.trainer.catboost_task_type, refit.trainer.cpu_threads) == ("cpu", "CPU", 2)
    said = capsys.readouterr().out
    assert "entry 7 was fitted with trainer accelerator=gpu" in said
    assert "refitting it with this run's trainer accelerator=cpu" in said


def a_first_trial_deferred(compose_cfg, tmp_path: Path, monkeypatch) -> tuple[list[str], Prepared, optuna.Study]:
    """A real in-process sweep on tiny data with rungs whose worker stops after its first trial, deferred at
    the first rung, and no promotion run: (its overrides, the prepared data, the study)."""
    rungs = ["sweep.fidelity.min_train_rows=200", "sweep.fidelity.explore_trials=10", "study.n_trials=10"]
    first = [*tiny_sweep_overrides(tmp_path), *rungs]
    cfg = compose_cfg(first)
    prepared = prepare(cfg)
    with monkeypatch.context() as patch:  # the worker stops after its first trial
        patch.setattr(search_sweep.Budget, "__call__", lambda self, study, trial: study.stop())
        patch.setattr(search_sweep, "run_promotions", lambda *args, **kwargs: None)
        (result,) = sweep(cfg, prepared, tmp_path / "run", first, CONF_DIR, compose_cfg)
    study = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{tmp_path}/optuna.sqlite")
    return first, prepared, study


def test_past_the_budget_without_an_entry_the_best_deferred_trial_alone_gets_its_full_size_fit(
        compose_cfg, tmp_path: Path, monkeypatch) -> None:
    first, prepared, study = a_first_trial_deferred(compose_cfg, tmp_path, monkeypatch)
    (deferred,) = study.trials
    assert deferred.user_attrs["deferred"] == 1, "the first trial waits at the first rung for the exploration"
    study.enqueue_trial(deferred.params)  # queued before the promotion: it must not take the spent budget

    second = [*first, "study.n_trials=5", "study.timeout_s=0.000001"]
    (result,) = sweep(compose_cfg(second), prepared, tmp_path / "run", second, CONF_DIR, compose_cfg)
    _, skipped, promoted = study.get_trials()
    assert skipped.state == optuna.trial.TrialState.PRUNED and "budget is spent" in skipped.user_attrs["skipped"]
    assert result.counted == 2, "the skipped trial, never fitted, does not use study.n_trials"
    assert promoted.state == optuna.trial.TrialState.COMPLETE and promoted.user_attrs["promoted_from"] == 0
    assert promoted.intermediate_values == {}, "straight to the full-size fit: no rung left to climb"
    (entry,) = Leaderboard(tmp_path / "leaderboard.sqlite").ranked()
    assert entry.trial == promoted.number and all("@" not in fold["fold"] for fold in entry.fold_scores)


def test_a_promotion_queued_twice_by_racing_workers_is_fitted_once(compose_cfg, tmp_path: Path, monkeypatch) -> None:
    first, prepared, study = a_first_trial_deferred(compose_cfg, tmp_path, monkeypatch)
    (deferred,) = study.trials
    for _ in range(2):  # what two workers finishing at once do: each queues the same promotion
        enqueue_promotion(study, deferred, deferred.user_attrs["deferred"])

    second = [*first, "study.n_trials=1"]  # the budget is met: only the queued promotions run
    with monkeypatch.context() as patch:
        patch.setattr(search_sweep, "run_promotions", lambda *args, **kwargs: None)
        sweep(compose_cfg(second), prepared, tmp_path / "run", second, CONF_DIR, compose_cfg)
    _, carrier, twin = study.get_trials()
    assert "skipped" not in carrier.user_attrs and carrier.intermediate_values, "the first copy climbs on"
    assert min(carrier.intermediate_values) > deferred.user_attrs["deferred"]
    assert twin.state == optuna.trial.TrialState.PRUNED
    assert twin.user_attrs["skipped"] == f"trial {carrier.number} already carries trial 0's promotion"
    assert twin.intermediate_values == {}, "the second copy is never fitted"


class Cycle:
    """A reference cycle (it points to itself) that only the cyclic garbage collector can free."""

    def __init__(self) -> None:
        self.me = self


def test_between_trials_the_survivors_are_frozen_out_of_collections_until_the_sweep_ends(
        compose_cfg, tmp_path: Path, monkeypatch) -> None:
    """Each trial runs with what was alive before it frozen out of the collector's passes (with torch loaded
    a full pass walked some 435,000 objects, 255 ms, after every trial and several times inside one); the
    sweep's end unfreezes everything, so a cycle that was alive at a freeze and died later is still freed."""
    overrides = [*tiny_sweep_overrides(tmp_path), "study.n_trials=2"]
    cfg = compose_cfg(overrides)
    prepared = prepare(cfg)
    frozen_at_start: list[int] = []
    kept: list[Cycle] = []
    made: list[weakref.ref] = []
    original = search_sweep.Objective.__call__

    def observed(self, trial: optuna.Trial) -> float:
        frozen_at_start.append(gc.get_freeze_count())
        if trial.number == 0:
            kept.append(Cycle())  # alive when trial 0's survivors are frozen
            made.append(weakref.ref(kept[0]))
        else:
            kept.clear()  # garbage from here on, inside the frozen generation
        return original(self, trial)

    monkeypatch.setattr(search_sweep.Objective, "__call__", observed)
    before = gc.get_freeze_count()
    (result,) = sweep(cfg, prepared, tmp_path / "run", overrides, CONF_DIR, compose_cfg)
    assert result.counted == 2
    assert frozen_at_start[1] > frozen_at_start[0] > before
    assert gc.get_freeze_count() == before
    gc.collect()
    assert made[0]() is None
