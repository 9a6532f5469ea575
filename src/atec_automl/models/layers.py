"""Building blocks the neural families share: activations, weight init, embeddings, dense stacks."""
from __future__ import annotations

import torch
from torch import nn

from atec_automl.errors import AtecError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "selu": nn.SELU, "gelu": nn.GELU,
    "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "hard_sigmoid": nn.Hardsigmoid, "softplus": nn.Softplus,
    "softsign": nn.Softsign, "linear": nn.Identity,
}
WEIGHT_INITS = ("uniform", "normal", "xavier", "he")
EMBEDDING_INIT_SCALE = 0.05


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (see ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise AtecError(f"model.activation: {name!r} is not one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def dense_stack(width: int, layers: int, units: int, activation_name: str, dropout: float) -> nn.Sequential:
    """`layers` x (Linear(units) -> activation -> dropout), starting from `width` inputs."""
    blocks: list[nn.Module] = []
    for _ in range(layers):
        blocks += [nn.Linear(width, units), activation(activation_name), nn.Dropout(dropout)]
        width = units
    return nn.Sequential(*blocks)


def initialise(net: nn.Module, scheme: str) -> None:
    """Initialise Linear and Conv1d weights by `scheme` (keras-style names), biases to 0, embeddings small."""
    if scheme not in WEIGHT_INITS:
        raise AtecError(f"model.weight_init: {scheme!r} is not one of {WEIGHT_INITS}")
    for module in net.modules():
        if isinstance(module, nn.Embedding):
            nn.init.uniform_(module.weight, -EMBEDDING_INIT_SCALE, EMBEDDING_INIT_SCALE)
        elif isinstance(module, (nn.Linear, nn.Conv1d)):
            _init_weight(module.weight, scheme)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _init_weight(weight: torch.Tensor, scheme: str) -> None:
    """One weight tensor by scheme: uniform(+-0.05), normal(0, 0.05), Xavier/Glorot or He uniform."""
    if scheme == "uniform":
        nn.init.uniform_(weight, -EMBEDDING_INIT_SCALE, EMBEDDING_INIT_SCALE)
    elif scheme == "normal":
        nn.init.normal_(weight, 0.0, EMBEDDING_INIT_SCALE)
    elif scheme == "xavier":
        nn.init.xavier_uniform_(weight)
    else:
        nn.init.kaiming_uniform_(weight, nonlinearity="relu")


class TabularEncoder(nn.Module):
    """Concatenates the scaled numeric block with one embedding per categorical column."""

    def __init__(self, n_numeric: int, cardinalities: list[int], embedding_dim: int):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, min(embedding_dim, c)) for c in cardinalities)
        self.width = n_numeric + sum(e.embedding_dim for e in self.embeddings)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """(B x n_numeric, B x C int64) -> B x width."""
        parts = [numeric] + [emb(categorical[:, j]) for j, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)
