"""The three model families on a small toy timeline with a planted signal, on CPU."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from omegaconf import DictConfig

from atec_automl.errors import AtecError
from atec_automl.metric import auc
from atec_automl.models import FAMILIES as REGISTERED_FAMILIES
from atec_automl.models import family_class, load_model
from atec_automl.models.base import Model, ModelData
from atec_automl.models.catboost_model import OBJECT_POOL_ROWS, CatBoostModel, decimal_text
from atec_automl.models.cnn_lstm import CNNLSTMModel, CNNLSTMNet, CNNLSTMParams, right_aligned
from atec_automl.models.layers import TabularEncoder
from atec_automl.models.neural import IndexBatches, TabularStore
from atec_automl.models.trainer import TrainerSettings
from atec_automl.search.space import load_space
from atec_automl.tasks._experiment import recipe
from atec_automl.testing import ToyData, make_toy
from conftest import compose_config

FAMILIES = ("catboost", "mlp", "cnn_lstm")
SMALL = {
    "catboost": ["model.iterations=150", "model.early_stopping_rounds=40", "model.thread_count=1"],
    "mlp": ["model.epochs=6", "model.batch_size=256"],
    "cnn_lstm": ["model.epochs=6", "model.batch_size=256"],
}


def small_cfg(family: str, *overrides: str) -> DictConfig:
    """The composed config of a family with short training."""
    return compose_config([f"model={family}", "trainer.cpu_threads=1", *SMALL[family], *overrides])


@pytest.fixture(scope="module")
def toy() -> ToyData:
    return make_toy(seed=0)


def split(toy: ToyData) -> tuple[ModelData, ModelData]:
    """Train on days 0-8 (grey dropped), validate on the 0/1 rows of days 9-11."""
    train = np.flatnonzero((toy.day < 9) & (toy.label >= 0))
    valid = np.flatnonzero((toy.day >= 9) & (toy.label >= 0))
    return ModelData(toy.features, train, toy.label[train]), ModelData(toy.features, valid, toy.label[valid])


@pytest.fixture(scope="module")
def fitted(toy: ToyData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Model, object]]:
    """One fitted model and its FitResult per family."""
    train, valid = split(toy)
    out = {}
    for family in FAMILIES:
        model = recipe(small_cfg(family)).build_model(root_dir=tmp_path_factory.mktemp(family))
        out[family] = (model, model.fit(train, valid))
    return out


def test_codes_reach_catboost_as_their_decimal_text_past_the_cached_range() -> None:
    """Codes go into a CatBoost pool as the text CatBoost reads integer columns of a frame as: `str` of each,
    made per code (few codes, a wide range) or per value of their range (many codes, a narrow range)."""
    for codes in ([[-1, 0, 7], [3, -1, 2]], [[1022, 1023], [40_000, 5]], [[-5, 9]], [[2, 1]] * 50, [[-1, 3]] * 0):
        array = np.asarray(codes, dtype=np.int64)
        assert decimal_text(array).tolist() == [[str(v) for v in row] for row in codes]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_ranks_held_out_days_better_than_chance(family, toy, fitted):
    model, result = fitted[family]
    _, valid = split(toy)
    scores = model.predict(valid)
    assert scores.dtype == np.float64 and scores.shape == valid.rows.shape
    assert ((scores >= 0) & (scores <= 1)).all()
    assert auc(valid.target, scores) > 0.75
    assert result.valid_score == pytest.approx(auc(valid.target, scores), abs=2e-3)  # the best epoch's AUC, read off training
    assert result.best_iteration is not None and len(result.history) >= result.best_iteration + 1


@pytest.mark.parametrize("family", FAMILIES)
def test_save_then_load_predicts_identically(family, toy, fitted, tmp_path):
    model, _ = fitted[family]
    everything = ModelData(toy.features, np.arange(len(toy.label)))
    model.save(tmp_path / "saved")
    again = load_model(tmp_path / "saved")
    assert type(again) is type(model)
    np.testing.assert_array_equal(again.predict(everything), model.predict(everything))


def test_catboost_scores_a_few_rows_as_it_scores_them_in_a_large_batch(toy, fitted):
    """Up to `OBJECT_POOL_ROWS` rows (a scoring request) are pooled from one object array, more rows from
    `FeaturesData`: the same float32 values and code text, so the same scores, bit for bit (missing values too)."""
    model, _ = fitted["catboost"]
    rows = np.arange(min(len(toy.label), 400))
    assert np.isnan(toy.features.table.iloc[rows].to_numpy(dtype=np.float32)).any()
    batch = model.predict(ModelData(toy.features, rows))
    few = [model.predict(ModelData(toy.features, rows[i:i + size])) for size in (1, 3, OBJECT_POOL_ROWS)
           for i in range(0, len(rows), 50)]
    expected = [batch[i:i + size] for size in (1, 3, OBJECT_POOL_ROWS) for i in range(0, len(rows), 50)]
    for got, want in zip(few, expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("family", ["mlp", "cnn_lstm"])
def test_predict_switches_a_net_left_in_training_mode_to_eval(family, toy, fitted):
    """predict moves the net and switches it to eval mode only when needed (each walks the module tree,
    a third of a one-event request's predict): a net left in training mode still predicts with dropout off."""
    model, _ = fitted[family]
    rows = ModelData(toy.features, np.arange(300))
    first = model.predict(rows)
    model.net.train()
    np.testing.assert_array_equal(model.predict(rows), first)
    assert not any(module.training for module in model.net.modules())


PREDICT_AND_COUNT_THREADS = textwrap.dedent("""
    import pickle, sys
    import psutil
    from atec_automl.models import load_model
    model = load_model(sys.argv[1])
    with open(sys.argv[2], "rb") as handle:
        data = pickle.load(handle)
    before = psutil.Process().num_threads()
    for _ in range(3):
        model.predict(data)
    print(before, psutil.Process().num_threads())
""")


def test_predicting_a_few_rows_wakes_no_catboost_worker_threads(toy, fitted, tmp_path):
    """A scoring request's rows are pooled and predicted on the caller's thread: CatBoost's default pool,
    built on every core, started worker threads, and one then spun after each request (a fresh process,
    since training in this one has started workers already)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one usable core: CatBoost's default is one thread anyway")
    model, _ = fitted["catboost"]
    model.save(tmp_path / "saved")
    with open(tmp_path / "rows.pkl", "wb") as handle:
        pickle.dump(ModelData(toy.features, np.arange(3)), handle)
    done = subprocess.run([sys.executable, "-c", PREDICT_AND_COUNT_THREADS, str(tmp_path / "saved"),
                           str(tmp_path / "rows.pkl")], capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    before, after = map(int, done.stdout.split())
    assert after == before


PREDICT_AND_LIST_LIBRARIES = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    from atec_automl.models import load_model
    with open(sys.argv[2], "rb") as handle:
        data = pickle.load(handle)
    np.save(sys.argv[3], load_model(sys.argv[1]).predict(data))
    print(" ".join(sorted({name.split(".")[0] for name in sys.modules} & {"torch", "lightning", "torchmetrics"})))
""")


@pytest.mark.parametrize("family", ["mlp", "cnn_lstm"])
def test_a_saved_net_predicts_in_a_process_that_never_loads_lightning(family, toy, fitted, tmp_path):
    """Scoring with a saved net (task=predict, task=serve) needs torch alone: Lightning and what it pulls in
    (torchmetrics, scipy.signal, torch._dynamo: seconds of start-up) load only when a net trains."""
    model, _ = fitted[family]
    model.save(tmp_path / "saved")
    rows = ModelData(toy.features, np.arange(500))
    with open(tmp_path / "rows.pkl", "wb") as handle:
        pickle.dump(rows, handle)
    done = subprocess.run([sys.executable, "-c", PREDICT_AND_LIST_LIBRARIES, str(tmp_path / "saved"),
                           str(tmp_path / "rows.pkl"), str(tmp_path / "scores.npy")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["torch"]
    np.testing.assert_array_equal(np.load(tmp_path / "scores.npy"), model.predict(rows))


@pytest.mark.parametrize("family", FAMILIES)
def test_cpu_training_is_deterministic_for_a_seed(family, toy):
    train, valid = split(toy)
    predictions = []
    for seed in (3, 3, 4):
        model = recipe(small_cfg(family, f"seed={seed}")).build_model()
        model.fit(train, valid)
        predictions.append(model.predict(valid))
    np.testing.assert_array_equal(predictions[0], predictions[1])
    assert not np.array_equal(predictions[0], predictions[2])


@pytest.mark.parametrize("family", ["mlp", "cnn_lstm"])
def test_bf16_training_still_gives_each_row_its_own_score(family, toy):
    """Under bf16 autocast the logit stays float32: a bf16 logit has 8 significant bits, so many
    scores would tie, and the ATEC TPRs at FPR 0.001-0.01 are read from the top of that ranking."""
    train, valid = split(toy)
    model = recipe(small_cfg(family, "trainer.precision=bf16-mixed", "model.epochs=1")).build_model()
    model.fit(train, valid)
    scores = model.predict(valid)
    assert np.unique(scores).size >= 0.99 * scores.size  # float32 logits: 1428-1429 of 1429; bf16 logits: 828-860


FIT_BF16_CNN_LSTM = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    import torch
    from atec_automl.models.cnn_lstm import CNNLSTMModel
    from atec_automl.models.trainer import TrainerSettings
    lstm_outputs = set()
    torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: lstm_outputs.add(str(output[0].dtype)) if isinstance(module, torch.nn.LSTM) else None)
    with open(sys.argv[1], "rb") as handle:
        train, valid = pickle.load(handle)
    model = CNNLSTMModel(trainer=TrainerSettings(precision="bf16-mixed"), epochs=1, batch_size=256)
    model.fit(train, valid)
    scores = model.predict(valid)
    print(",".join(sorted(lstm_outputs)), np.isfinite(scores).all(), np.unique(scores).size, scores.size)
""")


def test_cnn_lstm_keeps_its_lstm_in_float32_under_bf16_on_a_cpu_without_bf16_instructions(toy, tmp_path):
    """oneDNN capped at AVX2 (a laptop's CPU) has no bf16 LSTM kernel: under `trainer.precision=bf16-mixed`
    the LSTM fell back to a bf16 path 6-8x slower per step than float32 (33-42 ms against 5.2-5.8 ms for
    256 sequences of 9 steps, 32 units). There the LSTM now runs in float32; the rest of the net keeps bf16."""
    with open(tmp_path / "split.pkl", "wb") as handle:
        pickle.dump(split(toy), handle)
    done = subprocess.run([sys.executable, "-c", FIT_BF16_CNN_LSTM, str(tmp_path / "split.pkl")], capture_output=True,
                          text=True, env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert done.returncode == 0, done.stderr[-2000:]
    lstm_outputs, finite, distinct, rows = done.stdout.split()
    assert (lstm_outputs, finite) == ("torch.float32", "True")
    assert int(distinct) >= 0.99 * int(rows)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cnn_lstm_runs_its_lstm_in_float32_under_cuda_bf16_autocast():
    """cuDNN's autocast would hand the LSTM float16 (not bf16), with no loss scaling."""
    params = CNNLSTMParams()
    net = CNNLSTMNet(TabularEncoder(5, [3, 4], params.embedding_dim), 7, params).cuda()
    seen = []
    net.lstm.register_forward_hook(lambda module, inputs, output: seen.append(output[0].dtype))
    batch = {"sequence": torch.randn(16, 21, 7, device="cuda"), "numeric": torch.randn(16, 5, device="cuda"),
             "categorical": torch.zeros(16, 2, dtype=torch.int64, device="cuda")}
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        logits = net(batch)
    logits.sum().backward()
    assert seen == [torch.float32]
    assert logits.dtype == torch.float32
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in net.lstm.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_report_sees_each_step_and_can_prune(family, toy):
    train, valid = split(toy)
    seen = []

    def report(step: int, value: float) -> None:
        seen.append((step, value))
        if step == 2:
            raise optuna.TrialPruned(f"pruned at step {step}")

    with pytest.raises(optuna.TrialPruned):
        recipe(small_cfg(family)).build_model().fit(train, valid, report=report)
    assert [s for s, _ in seen] == [0, 1, 2]
    assert all(0.0 <= v <= 1.0 for _, v in seen)


@pytest.mark.parametrize("family", FAMILIES)
def test_training_writes_nothing_into_the_working_directory(family, toy, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    train, valid = split(toy)
    recipe(small_cfg(family, "model.epochs=1" if family != "catboost" else "model.iterations=5")).build_model(
        root_dir=tmp_path / "run").fit(train, valid)
    assert os.listdir(cwd) == []


def test_soft_targets_train_catboost_and_class_weights_apply(toy):
    train, valid = split(toy)
    soft = ModelData(toy.features, train.rows, np.where(train.target == 1, 0.9, 0.05))
    model = recipe(small_cfg("catboost", "model.auto_class_weights=Balanced")).build_model()
    model.fit(soft, valid)
    assert auc(valid.target, model.predict(valid)) > 0.75


def test_pruning_callback_of_optuna_integration_plugs_into_report(toy):
    train, valid = split(toy)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.99))
    trial = study.ask()

    def report(step: int, value: float) -> None:
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()

    with pytest.raises(optuna.TrialPruned):
        recipe(small_cfg("mlp")).build_model().fit(train, valid, report=report)
    assert list(trial.storage.get_trial(trial._trial_id).intermediate_values) == [0]


def test_sequence_batches_hold_past_events_then_the_event(toy):
    fs = toy.features
    model = CNNLSTMModel(scaling="standard", epochs=1)
    rows = np.flatnonzero(toy.label >= 0)
    model.fit_inputs(ModelData(fs, rows, toy.label[rows]))
    row = int(np.flatnonzero((fs.seq_index >= 0).sum(axis=1) == 3)[0])
    store = model.input_store(ModelData(fs, np.array([row])), None)
    sequence = store.gather(torch.tensor([0]), training=False)["sequence"][0].numpy()
    k = fs.seq_index.shape[1]
    past = fs.seq_index[row][fs.seq_index[row] >= 0]
    expected_steps = model.step_scaler.transform(fs.steps[np.concatenate([past, [row]])])
    assert sequence.shape == (k + 1, fs.steps.shape[1] + 1)
    np.testing.assert_array_equal(sequence[:k - 3], 0.0)
    np.testing.assert_allclose(sequence[k - 3:, :-1], expected_steps)
    np.testing.assert_array_equal(sequence[:, -1], [0.0] * (k - 3) + [1.0] * 4)


def test_shift_augmentation_drops_the_most_recent_past_events(toy):
    fs = toy.features
    rows = np.flatnonzero((fs.seq_index >= 0).sum(axis=1) >= 2)[:50]
    model = CNNLSTMModel(shift_prob=1.0, max_shift=1, epochs=1)
    model.fit_inputs(ModelData(fs, rows, np.zeros(len(rows))))
    store = model.input_store(ModelData(fs, rows, np.zeros(len(rows))), np.zeros(len(rows)))
    index = torch.arange(len(rows))
    plain = store.gather(index, training=False)["sequence"]
    shifted = store.gather(index, training=True)["sequence"]
    torch.testing.assert_close(shifted[:, 1:-1], plain[:, :-2])
    torch.testing.assert_close(shifted[:, -1], plain[:, -1])
    assert (shifted[:, 0, -1] == 0).all()


def test_right_alignment_moves_padding_first_keeping_order():
    seq = np.array([[4, 7, -1, -1], [-1, 2, -1, 5], [1, 2, 3, 9]])
    np.testing.assert_array_equal(right_aligned(seq), [[-1, -1, 4, 7], [-1, -1, 2, 5], [1, 2, 3, 9]])


def test_balanced_sampling_draws_both_classes_equally():
    target = torch.tensor([1.0] * 20 + [0.0] * 980)
    store = TabularStore(torch.zeros(1000, 1), torch.zeros(1000, 0, dtype=torch.long), target)
    weights = target / target.sum() + (1 - target) / (1 - target).sum()
    batches = IndexBatches(store, 500, torch.device("cpu"), shuffle=True, seed=0, sample_weights=weights)
    drawn = torch.cat([b["target"] for _ in range(10) for b in batches])
    assert len(drawn) == 10_000
    assert 0.45 < float(drawn.mean()) < 0.55


def test_cnn_lstm_without_sequences_is_a_one_line_error(toy):
    fs = toy.features
    flat = type(fs)(table=fs.table, categorical=fs.categorical)
    train, valid = split(toy)
    with pytest.raises(AtecError, match="seq_index"):
        CNNLSTMModel(epochs=1).fit(ModelData(flat, train.rows, train.target), ModelData(flat, valid.rows, valid.target))


@pytest.mark.parametrize("family", FAMILIES)
def test_grey_or_out_of_range_targets_are_refused(family, toy):
    train, valid = split(toy)
    grey = ModelData(toy.features, train.rows, np.where(np.arange(len(train.rows)) == 5, -1.0, train.target))
    with pytest.raises(AtecError, match=r"\[0, 1\]"):
        recipe(small_cfg(family)).build_model().fit(grey, valid)
    with pytest.raises(AtecError, match="unknown parameter"):
        recipe(small_cfg(family, "+model.no_such_knob=1")).build_model()


def test_catboost_gpu_settings_reach_catboost_without_callbacks():
    gpu = TrainerSettings(accelerator="cpu", catboost_task_type="GPU", catboost_devices="0")
    model = CatBoostModel(trainer=gpu, subsample=0.8, auto_class_weights="Balanced")
    params = model._booster_params(soft=False, validating=True, train_dir="/nonexistent")
    assert params["task_type"] == "GPU" and params["devices"] == "0"
    assert params["bootstrap_type"] == "Bernoulli" and params["auto_class_weights"] == "Balanced"
    assert params["allow_writing_files"] is False and params["use_best_model"] is True
    cpu = CatBoostModel(subsample=0.8)._booster_params(soft=True, validating=False, train_dir="/nonexistent")
    assert cpu["task_type"] == "CPU" and cpu["loss_function"] == "CrossEntropy" and "bootstrap_type" not in cpu


def ctr_features(model: CatBoostModel, tmp_path) -> list:
    """The target-statistic (CTR) features of a fitted CatBoost model, from its JSON export."""
    path = tmp_path / "model.json"
    model.booster.save_model(str(path), format="json")
    return json.loads(path.read_text())["features_info"].get("ctrs", [])


def test_catboost_search_chooses_between_target_statistics_and_one_hot_codes(toy, fitted, tmp_path):
    """The search space offers one-hot categorical fields beside CatBoost's target statistics (its default,
    enqueued first), and a one-hot trial's model holds no target statistic at all."""
    space = load_space(Path(__file__).resolve().parents[1] / "conf" / "search" / "catboost.yaml")
    one_hot = {p.name: p for p in space.params}["one_hot_max_size"]
    assert one_hot.path == "model.one_hot_max_size" and set(one_hot.choices) == {None, 255}
    assert space.enqueue[0]["one_hot_max_size"] is None
    train, valid = split(toy)
    assert toy.features.table[list(toy.features.categorical)].nunique().max() <= 255
    one_hot_model = recipe(small_cfg("catboost", "model.one_hot_max_size=255")).build_model(root_dir=tmp_path)
    one_hot_model.fit(train, valid)
    assert ctr_features(fitted["catboost"][0], tmp_path) and not ctr_features(one_hot_model, tmp_path)
    assert auc(valid.target, one_hot_model.predict(valid)) > 0.75


def test_gpu_trainer_refuses_a_machine_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(AtecError, match="no CUDA device"):
        TrainerSettings(accelerator="gpu", precision="bf16-mixed")


def test_each_registered_family_names_its_class_and_step_parameter():
    steps = {name: (family_class(name).family, family_class(name).step_key) for name in REGISTERED_FAMILIES}
    assert steps == {"catboost": ("catboost", "iterations"), "mlp": ("mlp", "epochs"), "cnn_lstm": ("cnn_lstm", "epochs")}
