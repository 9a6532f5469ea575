"""Grey-label policies: fixed treatments and two-step PU with real base learners."""
from __future__ import annotations


import numpy as np
import pytest

from atec_automl.errors import AtecError
from atec_automl.labels import GreyPolicy, TwoStepPU
from atec_automl.metric import auc
from atec_automl.models.base import ModelData
from atec_automl.tasks._experiment import build_policy, recipe
from atec_automl.testing import ToyData, make_toy
from conftest import compose_config

BASE = {
    "catboost": ["model=catboost", "model.iterations=100", "model.thread_count=1"],
    "mlp": ["model=mlp", "model.epochs=4", "model.batch_size=256", "trainer.cpu_threads=1"],
}


def compose_cfg(*overrides: str):
    return compose_config(overrides)


@pytest.fixture(scope="module")
def toy() -> ToyData:
    return make_toy(n_rows=8000, seed=1)


def train_valid(toy: ToyData) -> tuple[ModelData, np.ndarray, ModelData]:
    """Training rows of days 0-8 with raw labels; 0/1 rows of days 9-11 to validate on."""
    train = np.flatnonzero(toy.day < 9)
    valid = np.flatnonzero((toy.day >= 9) & (toy.label >= 0))
    return ModelData(toy.features, train), toy.label[train], ModelData(toy.features, valid, toy.label[valid])


@pytest.mark.parametrize(("name", "grey_target"), [("drop", None), ("as_black", 1.0), ("as_white", 0.0)])
def test_fixed_policies_from_config(name, grey_target, toy):
    data, labels, _ = train_valid(toy)
    out = build_policy(compose_cfg(f"labels={name}")).apply(data, labels)
    grey = labels == -1
    if grey_target is None:
        np.testing.assert_array_equal(out.rows, data.rows[~grey])
        np.testing.assert_array_equal(out.target, labels[~grey])
    else:
        np.testing.assert_array_equal(out.rows, data.rows)
        np.testing.assert_array_equal(out.target[grey], grey_target)
        np.testing.assert_array_equal(out.target[~grey], labels[~grey])


def test_default_policy_is_grey_as_black():
    assert build_policy(compose_cfg()) == GreyPolicy(treat="black")


def test_rows_without_a_label_are_refused(toy):
    data, labels, _ = train_valid(toy)
    labels = labels.copy()
    labels[7] = np.nan
    with pytest.raises(AtecError, match=f"training row {data.rows[7]} has label nan"):
        GreyPolicy("drop").apply(data, labels)


@pytest.mark.parametrize("family", ["catboost", "mlp"])
def test_reliable_negatives_are_purer_than_the_grey_rows(family, toy):
    data, labels, valid = train_valid(toy)
    cfg = compose_cfg(*BASE[family], "labels=two_step_pu")
    policy = build_policy(cfg)
    step1 = policy.reliable_negatives(data, labels, lambda: recipe(cfg).build_model(), valid)
    grey = labels == -1
    truth = toy.true_label[data.rows]
    assert step1.mask.sum() >= 20
    assert not step1.mask[~grey].any()
    assert truth[step1.mask].mean() < 0.5 * truth[grey].mean()
    assert len(step1.spies) == round(policy.spy_share * (labels == 1).sum())
    assert np.mean(step1.scores[step1.spies] < step1.threshold) == pytest.approx(policy.spy_percentile / 100, abs=0.05)


def test_two_step_pu_soft_targets_train_a_model_that_ranks_well(toy):
    data, labels, valid = train_valid(toy)
    cfg = compose_cfg(*BASE["catboost"], "labels=two_step_pu", "labels.em_rounds=2")
    policy = build_policy(cfg)
    out = policy.apply(data, labels, lambda: recipe(cfg).build_model(), valid)
    grey = labels == -1
    np.testing.assert_array_equal(out.rows, data.rows)
    np.testing.assert_array_equal(out.target[~grey], labels[~grey])
    assert ((out.target >= 0) & (out.target <= 1)).all()
    soft = out.target[grey]
    assert ((soft > 0) & (soft < 1)).any() and (soft == 0).any()
    truth = toy.true_label[data.rows][grey]
    assert auc(truth, soft) > 0.6
    model = recipe(cfg).build_model()
    model.fit(out, valid)
    assert auc(valid.target, model.predict(valid)) > 0.75


def test_two_step_pu_checks_its_settings_and_needs_a_model(toy):
    data, labels, _ = train_valid(toy)
    with pytest.raises(AtecError, match="spy_share"):
        TwoStepPU(spy_share=1.5)
    with pytest.raises(AtecError, match="base model"):
        TwoStepPU().apply(data, labels)
