"""Building blocks the neural families share: activations, weight init, embeddings, dense stacks, the logit."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from atec_automl.errors import AtecError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "selu": nn.SELU, "gelu": nn.GELU,
    "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "hard_sigmoid": nn.Hardsigmoid, "softplus": nn.Softplus,
    "softsign": nn.Softsign, "linear": nn.Identity,
}
WEIGHT_INITS = ("uniform", "normal", "xavier", "he")
EMBEDDING_INIT_SCALE = 0.05
DROPOUT_LEVELS = 1 << 16


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (see ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise AtecError(f"model.activation: {name!r} is not one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class Dropout(nn.Module):
    """Inverted dropout; on CPU its mask comes from numpy's PCG64 generator, four 16-bit lanes per draw.

    torch's CPU dropout draws one Bernoulli variate per element from its Mersenne Twister
    (`bernoulli_`) and took 30 % of an MLP training step; this mask costs a fifth of it. The rate
    is rounded to a multiple of 1/65536 and kept values are scaled by 1/(1 - that rate). The
    generator is seeded from torch's when the module is built, so a seeded fit repeats exactly.
    Other devices use torch's own (fused) dropout.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise AtecError(f"model.dropout: {p} is not in [0, 1]")
        self.p = p
        self.threshold = round(p * DROPOUT_LEVELS)
        self.scale = np.float32(DROPOUT_LEVELS / (DROPOUT_LEVELS - self.threshold)) if self.threshold < DROPOUT_LEVELS else 0.0
        self.bits = np.random.Generator(np.random.PCG64(int(torch.randint(1 << 62, (1,)).item()))).bit_generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x with a random share `p` of its elements zeroed (training only), the rest scaled up."""
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        return x * torch.from_numpy(self.keep_mask(x.shape)).to(x.dtype)

    def keep_mask(self, shape: torch.Size, positive: np.ndarray | None = None) -> np.ndarray:
        """float32 mask of `shape`: 0 where a uniform 16-bit lane falls below the rate (or, given
        `positive`, where it is False), else the scale. The draws are the same either way."""
        n = int(np.prod(shape))
        lanes = self.bits.random_raw((n + 3) // 4).view(np.uint16)[:n].reshape(shape)
        keep = lanes >= self.threshold
        if positive is not None:
            keep &= positive
        return np.multiply(keep, self.scale, dtype=np.float32)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLUDropout(Dropout):
    """ReLU then inverted dropout, on CPU in one product: the mask is also zero where x <= 0.

    Separately, ReLU's forward and backward and dropout's two products took a fifth of an MLP
    training step; together they are one product each way (the backward is autograd's product by the
    mask). Values and gradients are those of `ReLU` then `Dropout` (zeros may carry a minus sign), and
    the mask's draws are the same, so a seeded fit trains the same weights either way.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """max(x, 0) with a random share `p` of its elements zeroed (training only), the rest scaled up."""
        if not self.training or self.threshold == 0 or x.device.type != "cpu" or x.dtype != torch.float32:
            return super().forward(torch.relu(x))
        return x * torch.from_numpy(self.keep_mask(x.shape, positive=x.detach().numpy() > 0))


def dense_stack(width: int, layers: int, units: int, activation_name: str, dropout: float) -> nn.Sequential:
    """`layers` x (Linear(units) -> activation -> dropout), starting from `width` inputs.

    A ReLU and its dropout are one `ReLUDropout`. Modules are named by their place in the unfused
    stack (Linear layers at 0, 3, 6, ...), so the weights' keys do not depend on the fusion."""
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    for layer in range(layers):
        blocks[str(3 * layer)] = nn.Linear(width, units)
        if activation_name == "relu":
            blocks[str(3 * layer + 1)] = ReLUDropout(dropout)
        else:
            blocks[str(3 * layer + 1)] = activation(activation_name)
            blocks[str(3 * layer + 2)] = Dropout(dropout)
        width = units
    return nn.Sequential(blocks)


class LogitLayer(nn.Linear):
    """The final Linear layer, computed in float32 even under bf16 autocast.

    A bf16 logit keeps 8 significant bits: on 100 k rows an MLP trained under bf16-mixed gave 2,624
    distinct scores and 67 among its top 500, so the ranking that the ATEC TPRs at FPR 0.001-0.01
    read was mostly ties. Its inputs are still rounded to bf16 by the layers before it, but a sum of
    them in float32 keeps the rows apart. Same parameters as `nn.Linear`, so saved weights load.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 `x @ weight.T + bias`, autocast off (a plain Linear when autocast is not on)."""
        if not torch.is_autocast_enabled(x.device.type):
            return super().forward(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x.float())


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
    """Concatenates the scaled numeric block with an embedding of each categorical column.

    Column j gets `min(embedding_dim, cardinality_j)` dimensions. The columns of equal width share
    one table (column j's rows start at its offset), so a batch costs one lookup and one gradient
    scatter per width instead of one per column. Output: the numeric block, then the embeddings by
    width group (in order of first appearance), columns in their order within a group.
    """

    def __init__(self, n_numeric: int, cardinalities: list[int], embedding_dim: int):
        super().__init__()
        groups: dict[int, list[int]] = {}
        for column, cardinality in enumerate(cardinalities):
            groups.setdefault(min(embedding_dim, cardinality), []).append(column)
        self.tables = nn.ModuleList(nn.Embedding(sum(cardinalities[j] for j in columns), width)
                                    for width, columns in groups.items())
        self.all_columns = len(groups) == 1
        for g, columns in enumerate(groups.values()):
            offsets = np.cumsum([0] + [cardinalities[j] for j in columns[:-1]])
            self.register_buffer(f"columns_{g}", torch.tensor(columns, dtype=torch.int64), persistent=False)
            self.register_buffer(f"offsets_{g}", torch.as_tensor(offsets, dtype=torch.int64), persistent=False)
        self.width = n_numeric + sum(width * len(columns) for width, columns in groups.items())

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """(B x n_numeric, B x C int64) -> B x width."""
        parts = [numeric]
        for g, table in enumerate(self.tables):
            codes = categorical if self.all_columns else categorical.index_select(1, getattr(self, f"columns_{g}"))
            parts.append(table(codes + getattr(self, f"offsets_{g}")).flatten(1))
        return torch.cat(parts, dim=1)
