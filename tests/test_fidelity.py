"""Multi-fidelity search: the user subsamples of the rungs, and a real sweep that climbs them
(a CatBoost study on small synthetic data with the rungs' row threshold lowered so that they run)."""
from __future__ import annotations

import numpy as np
import optuna
import pytest

from atec_automl.errors import AtecError
from atec_automl.leaderboard import Leaderboard
from atec_automl.search.fidelity import FidelitySchedule, promote, promote_the_best, rung_quota, rungs, still_deferred, user_subsample
from atec_automl.split import Fold
from test_sweep import run, studies, sweep_command


def a_fold(n_users: int = 500, events_per_user: int = 8) -> tuple[Fold, np.ndarray]:
    """A fold over interleaved users' events: the first 3/4 of the rows train, then 1/8 early-stop, 1/8 scored."""
    codes = np.tile(np.arange(n_users), events_per_user)
    rows = np.arange(len(codes))
    cut, stop = len(rows) * 3 // 4, len(rows) * 7 // 8
    return Fold("fold0", rows[:cut], rows[cut:stop], rows[stop:], 10, 12), codes


def test_a_user_subsample_keeps_whole_users_and_only_thins_the_training_rows() -> None:
    fold, codes = a_fold()
    small = user_subsample(fold, codes, 0.2, seed=7)
    kept = set(codes[small.train])
    assert 0.1 < len(kept) / 500 < 0.3
    assert set(small.train) == {r for r in fold.train if codes[r] in kept}, "every training event of a kept user"
    assert np.array_equal(small.early_stop, fold.early_stop) and np.array_equal(small.scored, fold.scored)
    assert np.all(np.diff(small.train) > 0), "time order kept"
    assert small.name == "fold0@20%users"


def test_rungs_are_nested_and_only_run_when_their_share_is_large_enough() -> None:
    fold, codes = a_fold()
    schedule = FidelitySchedule(shares=(0.1, 0.3), min_train_rows=500, reduction_factor=3)
    climbed = rungs(schedule, [fold], codes, seed=1)
    assert [r.share for r in climbed] == [0.3], "10% of 3,000 training rows is under 500"
    low, high = rungs(FidelitySchedule((0.1, 0.3), 100, 3), [fold], codes, seed=1)
    assert (low.step, high.step) == (1, 3)
    assert set(low.fold.train) < set(high.fold.train)


def test_a_rung_fits_its_share_of_the_model_steps_unless_told_not_to() -> None:
    fold, codes = a_fold()
    low, high = rungs(FidelitySchedule((0.111, 0.333), 100, 3), [fold], codes, seed=1)
    assert (low.model_steps(2000), high.model_steps(2000), low.model_steps(20), low.model_steps(3)) == (222, 666, 3, 1)
    whole = rungs(FidelitySchedule((0.111, 0.333), 100, 3, cut_steps=False), [fold], codes, seed=1)
    assert [r.model_steps(2000) for r in whole] == [2000, 2000]


@pytest.mark.parametrize("kwargs", [{"shares": (0.5, 0.2)}, {"shares": (1.0,)}, {"shares": (0.0,)},
                                    {"reduction_factor": 1}, {"min_train_rows": 0}, {"explore_trials": -1}])
def test_a_bad_schedule_is_refused(kwargs: dict) -> None:
    with pytest.raises(AtecError, match="sweep.fidelity"):
        FidelitySchedule(**kwargs)


def test_a_bad_schedule_setting_is_one_error_line_before_any_data(run_cli) -> None:
    result = run_cli(["sweep.fidelity.reduction_factor=1", "data.dir=/nonexistent/never-read"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: sweep.fidelity.reduction_factor=1: Input should be greater than or equal to 2"]


@pytest.mark.slow
def test_a_sweep_explores_at_the_rungs_first_and_only_full_fits_become_entries(tmp_path) -> None:
    root = tmp_path / "out"
    result = run(sweep_command(tmp_path, root, "sweep.models=[catboost]", "labels=as_black", "study.n_trials=7",
                               "split.n_folds=1", "sweep.submit=false",
                               "sweep.fidelity.shares=[0.111,0.333]", "sweep.fidelity.min_train_rows=1000",
                               "sweep.fidelity.explore_trials=4"))
    assert "[sweep] low-fidelity rungs on fold0: 11% of the users" in result.stdout
    trials = {t.number: t for t in studies(root)["catboost"].trials if t.state != optuna.trial.TrialState.WAITING}
    complete = {n: t for n, t in trials.items() if t.state == optuna.trial.TrialState.COMPLETE}
    pruned = {n: t for n, t in trials.items() if t.state == optuna.trial.TrialState.PRUNED}
    assert len(complete) >= 1 and len(pruned) >= 4
    assert not any(set(t.intermediate_values) - {1, 3} for t in trials.values()), "only rung scores are reported"
    for trial in trials.values():
        for attr, cap in (("rung_0.111_steps", 17), ("rung_0.333_steps", 50)):
            if attr in trial.user_attrs:
                steps, best_step = trial.user_attrs[attr]
                assert steps == cap and best_step < cap, "a rung fits its share of the 150 iterations (experiment=smoke)"
    assert any("rung_0.333_steps" in t.user_attrs for t in trials.values())
    deferred = {n: t.user_attrs["deferred"] for n, t in pruned.items() if "deferred" in t.user_attrs}
    assert deferred and min(deferred) == 0, "the first trial to pass a rung waits for the exploration"
    assert all(t.user_attrs["pruned_at"] for t in pruned.values())
    assert all(n < 3 and step == 1 for n, step in deferred.items()), \
        "only the first 4 - 1 to score at the first rung wait; quota 4 // 3 = 1 at the second: nobody waits there"
    promoted = {n: t for n, t in trials.items() if "promoted_from" in t.user_attrs}
    assert promoted, "the deferred trials among the best at the first rung are promoted"
    for number, trial in promoted.items():
        source = trials[trial.user_attrs["promoted_from"]]
        assert source.user_attrs["deferred"] == trial.user_attrs["promoted_past"] == 1 and source.params == trial.params
        assert set(trial.intermediate_values) == {3}, "a promoted trial goes on from the next rung"
    for number, trial in complete.items():
        expected = {3} if number in promoted else {1, 3}
        assert set(trial.intermediate_values) == expected and (number in promoted or number >= 3)
    entries = Leaderboard(root / "leaderboard.sqlite").ranked()
    assert sorted(e.trial for e in entries) == sorted(complete)
    assert all("@" not in fold["fold"] for e in entries for fold in e.fold_scores), "entries are full-size fits"


def a_study_with_deferred_trials(values: list[float], step: int = 1) -> optuna.Study:
    """A real in-memory study whose trials scored at the rungs up to `step` and were deferred there."""
    study = optuna.create_study(direction="maximize")
    add_deferred(study, values, step)
    return study


def add_deferred(study: optuna.Study, values: list[float], step: int) -> None:
    """Add trials deferred at the rung of `step` (1 or 3) with these scores there."""
    distributions = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for value in values:
        study.add_trial(optuna.trial.create_trial(
            params={"x": value}, distributions=distributions, state=optuna.trial.TrialState.PRUNED,
            intermediate_values={s: value for s in (1, 3) if s <= step}, user_attrs={"deferred": step}))


def queued(study: optuna.Study) -> list[tuple[float, int, int]]:
    """(x, promoted_from, promoted_past) of the study's waiting trials, in queue order."""
    return [(t.system_attrs["fixed_params"]["x"], t.user_attrs["promoted_from"], t.user_attrs["promoted_past"])
            for t in study.get_trials(states=(optuna.trial.TrialState.WAITING,))]


def test_promotion_waits_for_each_rungs_quota_unless_the_budget_ended_it() -> None:
    fold, codes = a_fold()
    climbed = rungs(FidelitySchedule((0.1, 0.3), 100, 3), [fold], codes, seed=1)
    schedule = FidelitySchedule((0.1, 0.3), 100, 3, explore_trials=10)
    assert [rung_quota(10, 3, i) for i in range(3)] == [10, 3, 1] and rung_quota(0, 3, 1) == 0
    study = a_study_with_deferred_trials([0.2, 0.5, 0.3, 0.4, 0.1, 0.6])
    assert promote(study, climbed, schedule, budget=20) == 0, "6 of 10 scored at the first rung: nothing goes on yet"
    assert promote(study, climbed, schedule, budget=0) == 2, "the budget ended the exploration: the best 6 // 3"
    assert queued(study) == [(0.6, 5, 1), (0.5, 1, 1)], "best first, to go on from the second rung"
    assert promote(study, climbed, schedule, budget=0) == 0, "a trial is promoted once"
    add_deferred(study, [0.7, 0.45, 0.9], step=3)
    assert promote(study, climbed, schedule, budget=20) == 1, "3 scored at the second rung: its quota is met"
    assert queued(study)[-1] == (0.9, 10, 3), "the best 3 // 3 goes on to the full-size fit"


def test_the_budgets_last_promotion_is_the_trial_that_climbed_highest() -> None:
    fold, codes = a_fold()
    climbed = rungs(FidelitySchedule((0.1, 0.3), 100, 3), [fold], codes, seed=1)
    study = a_study_with_deferred_trials([0.9, 0.8])
    add_deferred(study, [0.4, 0.6], step=3)
    assert promote_the_best(study, climbed) == 3
    assert queued(study) == [(0.6, 3, 3)], "the best at the highest rung, straight to its full-size fit"
    assert promote_the_best(optuna.create_study(direction="maximize"), climbed) is None, "nothing deferred"


def test_a_trial_marked_deferred_without_its_rung_value_is_never_promoted() -> None:
    fold, codes = a_fold()
    climbed = rungs(FidelitySchedule((0.1, 0.3), 100, 3), [fold], codes, seed=1)
    study = a_study_with_deferred_trials([0.2, 0.5, 0.3])
    study.add_trial(optuna.trial.create_trial(  # killed between marking itself deferred and its value landing
        params={"x": 0.9}, distributions={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
        state=optuna.trial.TrialState.PRUNED, user_attrs={"deferred": 1}))
    assert [t.number for t in still_deferred(study)] == [0, 1, 2]
    assert promote(study, climbed, FidelitySchedule((0.1, 0.3), 100, 3, explore_trials=3), budget=3) == 1
    assert queued(study) == [(0.5, 1, 1)]


def test_a_promotion_skipped_unfitted_leaves_its_trial_deferred_for_a_later_sweep() -> None:
    fold, codes = a_fold()
    climbed = rungs(FidelitySchedule((0.1, 0.3), 100, 3), [fold], codes, seed=1)
    study = a_study_with_deferred_trials([0.2, 0.5, 0.3])
    distributions = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for skipped, why in [(1, "the budget is spent, trial 2's full-size fit goes first"), (0, None)]:
        study.add_trial(optuna.trial.create_trial(  # copies of trial 1's and trial 0's promotions
            params={"x": 0.5}, distributions=distributions, state=optuna.trial.TrialState.PRUNED,
            user_attrs={"promoted_from": skipped, "promoted_past": 1} | ({"skipped": why} if why else {})))
    assert [t.number for t in still_deferred(study)] == [1, 2], "trial 1's copy fitted nothing; trial 0's was fitted"
    assert promote_the_best(study, climbed) == 1
    assert queued(study) == [(0.5, 1, 3)]
