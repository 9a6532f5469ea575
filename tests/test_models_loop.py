"""The training loop's building blocks: dropout mask, ReLU and dropout in one product, shared embedding tables,
row-major stores, fused optimizers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from atec_automl.errors import AtecError
from atec_automl.metric import auc
from atec_automl.models.base import ModelData
from atec_automl.models.layers import Dropout, ReLUDropout, TabularEncoder, dense_stack
from atec_automl.models.mlp import MLPModel
from atec_automl.models.lightning_loop import fresh_memory_left_unfilled
from atec_automl.models.neural import NeuralParams, make_optimizer
from atec_automl.models.trainer import TrainerSettings
from atec_automl.testing import make_toy


def test_dropout_zeroes_its_rate_scales_the_rest_and_repeats_for_a_seed():
    torch.manual_seed(3)
    dropout = Dropout(0.25)
    x = torch.ones(400, 500, requires_grad=True)
    y = dropout(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.25) < 0.005
    assert torch.allclose(y[y != 0], torch.tensor(4 / 3))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient passes the same mask
    torch.manual_seed(3)
    assert torch.equal(Dropout(0.25)(torch.ones(400, 500)), y.detach())
    dropout.eval()
    assert dropout(x) is x
    assert torch.equal(Dropout(1.0)(torch.ones(3, 4)), torch.zeros(3, 4))
    with pytest.raises(AtecError, match="model.dropout"):
        Dropout(1.5)


def unfused_relu_stack(width: int, layers: int, units: int, dropout: float) -> torch.nn.Sequential:
    """What `dense_stack` built before ReLU and dropout were fused: Linear, ReLU, Dropout per layer."""
    blocks: list[torch.nn.Module] = []
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, units), torch.nn.ReLU(), Dropout(dropout)]
        width = units
    return torch.nn.Sequential(*blocks)


def test_relu_and_dropout_in_one_product_train_the_same_weights_as_relu_then_dropout():
    torch.manual_seed(5)
    fused = dense_stack(12, 2, 16, "relu", 0.3)
    torch.manual_seed(5)
    unfused = unfused_relu_stack(12, 2, 16, 0.3)
    assert any(isinstance(m, ReLUDropout) for m in fused) and not any(isinstance(m, ReLUDropout) for m in unfused)
    assert fused.state_dict().keys() == unfused.state_dict().keys()  # weights saved before the fusion still load
    optimizers = [torch.optim.Adam(net.parameters(), lr=1e-3) for net in (fused, unfused)]
    inputs = torch.randn(20, 64, 12, generator=torch.Generator().manual_seed(1))
    for x in inputs:
        outputs = []
        for net, optimizer in zip((fused, unfused), optimizers):
            optimizer.zero_grad()
            y = net(x)
            (y.sin().sum()).backward()
            optimizer.step()
            outputs.append(y.detach())
        assert torch.equal(*outputs)
        assert 0.4 < (outputs[0] == 0).float().mean() < 0.95  # both ReLU's zeros and dropout's
    for a, b in zip(fused.parameters(), unfused.parameters()):
        assert torch.equal(a, b)
    fused.eval(), unfused.eval()
    assert torch.equal(fused(inputs[0]), unfused(inputs[0]))
    assert torch.equal(fused(inputs[0]), fused(inputs[0]).clamp(min=0))
    tanh_stack = dense_stack(12, 2, 16, "tanh", 0.3)
    assert [type(m).__name__ for m in tanh_stack] == ["Linear", "Tanh", "Dropout"] * 2


def test_encoder_shares_one_table_per_width_and_looks_up_each_column():
    cardinalities = [21, 5, 30, 3, 9]
    encoder = TabularEncoder(n_numeric=4, cardinalities=cardinalities, embedding_dim=8)
    assert [t.weight.shape for t in encoder.tables] == [(21 + 30 + 9, 8), (5, 5), (3, 3)]
    assert encoder.width == 4 + 8 + 5 + 8 + 3 + 8
    categorical = torch.tensor([[20, 4, 29, 2, 8], [0, 1, 5, 0, 3]])
    numeric = torch.randn(2, 4)
    out = encoder(numeric, categorical)
    wide, five, three = (t.weight for t in encoder.tables)
    expected = torch.cat([numeric, wide[categorical[:, 0]], wide[21 + categorical[:, 2]], wide[51 + categorical[:, 4]],
                          five[categorical[:, 1]], three[categorical[:, 3]]], dim=1)
    assert torch.equal(out, expected)


def test_stored_inputs_are_row_major_for_batch_gathers():
    toy = make_toy(seed=0)
    rows = np.flatnonzero(toy.label >= 0)
    model = MLPModel(epochs=1)
    data = ModelData(toy.features, rows, toy.label[rows])
    model.fit_inputs(data)
    store = model.input_store(data, data.target)
    assert store.numeric.is_contiguous() and store.categorical.is_contiguous()


@pytest.mark.parametrize("name,kernel", [("adam", "fused"), ("adamw", "fused"), ("sgd", "fused"),
                                         ("adamax", "foreach"), ("rmsprop", "foreach")])
def test_optimizers_update_all_parameters_in_one_kernel(name, kernel):
    optimizer = make_optimizer(torch.nn.Linear(3, 2).parameters(), NeuralParams(optimizer=name))
    assert optimizer.defaults[kernel] is True


def test_weights_of_another_network_layout_are_one_error(tmp_path):
    toy = make_toy(seed=0)
    rows = np.flatnonzero(toy.label >= 0)
    model = MLPModel(epochs=1, batch_size=512)
    model.fit(ModelData(toy.features, rows, toy.label[rows]))
    model.save(tmp_path)
    state = torch.load(tmp_path / "weights.pt")
    state = {k.replace("encoder.tables.", "encoder.embeddings."): v for k, v in state.items()}
    torch.save(state, tmp_path / "weights.pt")
    with pytest.raises(AtecError, match="does not fit this version's mlp network"):
        MLPModel.load(tmp_path)


def test_training_skips_the_nan_fill_of_fresh_memory_and_restores_it():
    torch.use_deterministic_algorithms(True)
    try:
        with fresh_memory_left_unfilled():
            assert torch.utils.deterministic.fill_uninitialized_memory is False
        assert torch.utils.deterministic.fill_uninitialized_memory is True
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.slow
def test_compiled_training_step_trains_the_net_itself(tmp_path):
    """trainer.compile=true: the compiled step updates the net's own parameters; saved weights load into a plain net."""
    toy = make_toy(seed=0)
    rows = np.flatnonzero(toy.label >= 0)
    data = ModelData(toy.features, rows, toy.label[rows])
    model = MLPModel(trainer=TrainerSettings(compile=True), epochs=2, batch_size=512)
    model.fit(data)
    assert auc(toy.label[rows], model.predict(data)) > 0.6
    model.save(tmp_path)
    np.testing.assert_array_equal(MLPModel.load(tmp_path).predict(data), model.predict(data))
