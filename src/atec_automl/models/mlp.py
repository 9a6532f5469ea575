"""Multi-layer perceptron on the event's tabular features (seed 000's model and search space)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from atec_automl.models.base import ModelData
from atec_automl.models.layers import LogitLayer, TabularEncoder, dense_stack
from atec_automl.models.neural import NeuralModel, NeuralParams, TabularStore
from atec_automl.models.preprocess import TabularPreprocessor
from atec_automl.models.tabular_inputs import fit_table_inputs, tabular_store


@dataclass
class MLPParams(NeuralParams):
    """Shared training parameters plus the hidden layers."""

    hidden_layers: int = 2
    hidden_units: int = 128


class MLPNet(nn.Module):
    """Embeddings + numeric block -> hidden layers -> one logit."""

    def __init__(self, encoder: TabularEncoder, params: MLPParams):
        super().__init__()
        self.encoder = encoder
        self.hidden = dense_stack(encoder.width, params.hidden_layers, params.hidden_units,
                                  params.activation, params.dropout)
        self.out = LogitLayer(params.hidden_units if params.hidden_layers else encoder.width, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B,)."""
        x = self.encoder(batch["numeric"], batch["categorical"])
        return self.out(self.hidden(x)).squeeze(-1)


class MLPModel(NeuralModel):
    """The MLP family; see `NeuralModel` for training and `MLPParams` for the parameters."""

    family = "mlp"
    params_class = MLPParams

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.preprocessor: TabularPreprocessor | None = None

    def fit_inputs(self, train: ModelData) -> None:
        self.preprocessor = fit_table_inputs(train, self.params, self.seed)

    def input_store(self, data: ModelData, target: np.ndarray | None) -> TabularStore:
        return tabular_store(self.preprocessor, data, target, self.trainer.device)

    def build_net(self) -> nn.Module:
        encoder = TabularEncoder(self.preprocessor.n_inputs, self.preprocessor.cardinalities, self.params.embedding_dim)
        return MLPNet(encoder, self.params)

    def _inputs_state(self) -> dict:
        return {"table": self.preprocessor.state()}

    def _load_inputs_state(self, state: dict) -> None:
        self.preprocessor = TabularPreprocessor.from_state(state["table"])
