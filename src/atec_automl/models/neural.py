"""What the MLP and the CNN-LSTM share: parameters, inputs held as tensors, fit, predict, save, load.

The training rows live as tensors on the training device (`InputStore`); `IndexBatches` draws a
permutation (or a class-balanced sample) per epoch and gathers each batch by index on that
device, so no DataLoader or worker process touches in-memory data. The Lightning loop itself
lives in `lightning_loop`, imported by `fit` alone: loading, predicting and serving need torch only.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar, Iterator, Protocol

import numpy as np
import torch
from torch import nn

from atec_automl.errors import AtecError
from atec_automl.models.base import FitResult, Model, ModelData, Report
from atec_automl.models.io import read_meta, write_meta
from atec_automl.models.layers import initialise
from atec_automl.models.trainer import TrainerSettings
from atec_automl.staging import write_atomically

WEIGHTS_FILE = "weights.pt"
PREDICT_CHUNK_ROWS = 1 << 18
OPTIMIZERS = ("sgd", "adam", "adamax", "adamw", "rmsprop")
IMBALANCE = ("none", "pos_weight", "sqrt_pos_weight", "balanced")
MONITORS = {"auc": ("valid_auc", "max"), "atec": ("valid_atec", "max"), "loss": ("valid_loss", "min")}


@dataclass
class NeuralParams:
    """Training hyper-parameters both neural families share (seed 000's search space and more)."""

    epochs: int = 20
    batch_size: int = 1024
    eval_batch_size: int = 16384
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    weight_init: str = "he"
    activation: str = "relu"
    dropout: float = 0.1
    scaling: str = "minmax"
    embedding_dim: int = 8
    max_categories: int = 1000
    min_category_count: int = 5
    imbalance: str = "pos_weight"
    monitor: str = "auc"
    patience: int = 3

    def __post_init__(self) -> None:
        for name, allowed in (("optimizer", OPTIMIZERS), ("imbalance", IMBALANCE), ("monitor", tuple(MONITORS))):
            if getattr(self, name) not in allowed:
                raise AtecError(f"model.{name}: {getattr(self, name)!r} is not one of {allowed}")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise AtecError(f"model: epochs, batch_size and patience must be >= 1, got {self.epochs}, "
                            f"{self.batch_size}, {self.patience}")


class InputStore(Protocol):
    """Model inputs of a set of rows, held on the training device."""

    def __len__(self) -> int:
        """Number of rows."""

    def gather(self, index: torch.Tensor, training: bool) -> dict[str, torch.Tensor]:
        """The batch of rows `index` (a device tensor): inputs, and `target`/`weight` when known."""


@dataclass
class TabularStore:
    """Scaled numeric block, categorical indices and targets of a set of rows, on one device."""

    numeric: torch.Tensor
    categorical: torch.Tensor
    target: torch.Tensor | None = None
    weight: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.numeric.shape[0]

    def gather(self, index: torch.Tensor, training: bool) -> dict[str, torch.Tensor]:
        """Rows `index` of every tensor (`index_select`: a plain row copy, several times faster than `tensor[index]`)."""
        batch = {"numeric": self.numeric.index_select(0, index), "categorical": self.categorical.index_select(0, index)}
        for name in ("target", "weight"):
            value = getattr(self, name)
            if value is not None:
                batch[name] = value.index_select(0, index)
        return batch


class IndexBatches:
    """Iterable of gathered batches over an `InputStore`, one pass per `iter()`.

    Training passes draw a seeded permutation, or, with `sample_weights`, a seeded sample with
    replacement of the same size (class-balanced sampling); evaluation passes go in order.
    """

    def __init__(self, store: InputStore, batch_size: int, device: torch.device, shuffle: bool,
                 seed: int = 0, sample_weights: torch.Tensor | None = None):
        self.store, self.batch_size, self.device, self.shuffle = store, batch_size, device, shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.cumulative = None if sample_weights is None else torch.cumsum(sample_weights.double().cpu(), 0)

    def __len__(self) -> int:
        return math.ceil(len(self.store) / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = self._order().to(self.device)
        for start in range(0, len(order), self.batch_size):
            yield self.store.gather(order[start:start + self.batch_size], training=self.shuffle)

    def _order(self) -> torch.Tensor:
        """Row order of one pass."""
        n = len(self.store)
        if self.cumulative is not None:
            draws = torch.rand(n, generator=self.generator, dtype=torch.float64) * self.cumulative[-1]
            return torch.searchsorted(self.cumulative, draws).clamp_(max=n - 1)
        if self.shuffle:
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)


FUSED_OPTIMIZERS = ("sgd", "adam", "adamw")


def make_optimizer(parameters: Iterator[nn.Parameter], params: NeuralParams) -> torch.optim.Optimizer:
    """The configured optimizer (SGD and RMSprop take the momentum).

    Adam, AdamW and SGD update all parameters in one fused kernel, Adamax and RMSprop with the
    multi-tensor (`foreach`) kernels, instead of torch's CPU default of one small op sequence per tensor.
    """
    lr, wd = params.learning_rate, params.weight_decay
    kernel = {"fused": True} if params.optimizer in FUSED_OPTIMIZERS else {"foreach": True}
    if params.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=params.momentum, weight_decay=wd, **kernel)
    if params.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr, momentum=params.momentum, weight_decay=wd, **kernel)
    optimizer_class = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax, "adamw": torch.optim.AdamW}
    return optimizer_class[params.optimizer](parameters, lr=lr, weight_decay=wd, **kernel)


def class_balance(target: torch.Tensor, weight: torch.Tensor | None) -> tuple[float, float]:
    """(weighted positive mass, weighted negative mass) of soft targets."""
    w = torch.ones_like(target) if weight is None else weight
    return float((target * w).sum()), float(((1 - target) * w).sum())


class NeuralModel(Model):
    """fit / predict / save / load for a Lightning-trained family; subclasses define inputs and net."""

    step_key = "epochs"
    params_class: ClassVar[type[NeuralParams]]

    def __init__(self, trainer: TrainerSettings | None = None, seed: int = 0, **params):
        known = {f.name for f in fields(self.params_class)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise AtecError(f"model={self.family}: unknown parameter {unknown[0]!r}; known: {sorted(known)}")
        self.params = self.params_class(**params)
        self.trainer = trainer or TrainerSettings()
        self.seed = int(seed)
        self.net: nn.Module | None = None

    @abstractmethod
    def fit_inputs(self, train: ModelData) -> None:
        """Fit input scaling / vocabularies on the training rows: `fit`'s first step (then `input_store`, `build_net`)."""

    @abstractmethod
    def input_store(self, data: ModelData, target: np.ndarray | None) -> InputStore:
        """Inputs of `data`'s rows (and their targets/weights) as tensors on the training device."""

    @abstractmethod
    def build_net(self) -> nn.Module:
        """A fresh network for the fitted inputs; forward(batch) -> logits (B,)."""

    @abstractmethod
    def _inputs_state(self) -> dict:
        """JSON-serialisable state of the fitted inputs."""

    @abstractmethod
    def _load_inputs_state(self, state: dict) -> None:
        """Inverse of `_inputs_state`."""

    def fit(self, train: ModelData, valid: ModelData | None = None, report: Report | None = None) -> FitResult:
        """Train with early stopping on `valid` (restoring the best epoch), calling `report` per epoch."""
        target = train.checked_target(f"model={self.family} train", hard=False)
        valid_target = None if valid is None else valid.checked_target(f"model={self.family} valid", hard=True)
        if report is not None and valid is None:
            raise AtecError(f"model={self.family}: report needs validation rows")
        from atec_automl.models import lightning_loop  # Lightning loads when a net trains, not when one predicts
        with lightning_loop.seeded(self.seed), self.trainer.threads():
            self.fit_inputs(train)
            self.net = self.build_net()
            initialise(self.net, self.params.weight_init)
            train_batches, valid_batches, pos_weight = self._batches(train, target, valid, valid_target)
            keep_best = lightning_loop.train_net(self.net, self.params, self.trainer, self.family, train_batches,
                                                 valid_batches, pos_weight, report)
        if keep_best is not None and keep_best.best_state is not None:
            self.net.load_state_dict(keep_best.best_state)
        if keep_best is None:
            return FitResult()
        return FitResult(best_iteration=keep_best.best_epoch, valid_score=keep_best.best_value, history=keep_best.history)

    def _batches(self, train: ModelData, target: np.ndarray, valid: ModelData | None,
                 valid_target: np.ndarray | None) -> tuple[IndexBatches, IndexBatches | None, float | None]:
        """Training batches (class-balanced when `imbalance=balanced`), validation batches, the BCE's pos_weight."""
        device = self.trainer.device
        store = self.input_store(train, target)
        positives, negatives = class_balance(torch.as_tensor(target), None if train.weight is None
                                             else torch.as_tensor(np.asarray(train.weight, dtype=np.float32)))
        pos_weight = {"pos_weight": negatives / positives, "sqrt_pos_weight": math.sqrt(negatives / positives)}
        balanced = self.params.imbalance == "balanced"
        sample_weights = self._balanced_weights(target, positives, negatives) if balanced else None
        train_batches = IndexBatches(store, self.params.batch_size, device, shuffle=True, seed=self.seed,
                                     sample_weights=sample_weights)
        valid_batches = None
        if valid is not None:
            valid_batches = IndexBatches(self.input_store(valid, valid_target), self.params.eval_batch_size, device,
                                         shuffle=False)
        return train_batches, valid_batches, pos_weight.get(self.params.imbalance)

    @staticmethod
    def _balanced_weights(target: np.ndarray, positives: float, negatives: float) -> torch.Tensor:
        """Per-row sampling weights giving positive and negative mass one half each."""
        return torch.as_tensor(target / positives + (1 - target) / negatives)

    def predict(self, data: ModelData) -> np.ndarray:
        """Probabilities (float64) for `data`'s rows, in chunks, under the trainer's autocast."""
        if self.net is None:
            raise AtecError(f"model={self.family}: predict before fit or load")
        data.check_rows(f"model={self.family} predict")
        device = self.trainer.device
        self._ready_to_predict(device)
        out = []
        with torch.inference_mode(), self.trainer.autocast(), self.trainer.threads():
            for start in range(0, len(data.rows), PREDICT_CHUNK_ROWS):
                chunk = ModelData(data.features, np.asarray(data.rows)[start:start + PREDICT_CHUNK_ROWS])
                batches = IndexBatches(self.input_store(chunk, None), self.params.eval_batch_size, device, shuffle=False)
                out += [torch.sigmoid(self.net(batch).float()).double().cpu() for batch in batches]
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float64)

    def _ready_to_predict(self, device: torch.device) -> None:
        """The net on `device` in eval mode, moved or switched only when it is not already: each call
        walks the module tree, a third of a one-event predict (the service's requests) when done every time.
        Mode changes go through the net's root (Lightning's and this class's), so its flag tells the tree's."""
        placed = next(self.net.parameters()).device
        if placed.type != device.type or (device.index is not None and placed.index != device.index):
            self.net.to(device)
        if self.net.training:
            self.net.eval()

    def save(self, directory: Path) -> None:
        """`model.json` (family, parameters, seed, input state) and `weights.pt` (the net's state_dict)."""
        if self.net is None:
            raise AtecError(f"model={self.family}: save before fit")
        directory = Path(directory)
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        write_atomically(directory / WEIGHTS_FILE, lambda tmp: torch.save(state, tmp))
        write_meta(directory, {"family": self.family, "params": asdict(self.params), "seed": self.seed,
                               "inputs": self._inputs_state()})

    @classmethod
    def load(cls, directory: Path, trainer: TrainerSettings | None = None) -> "NeuralModel":
        """Rebuild a model written by `save`, on `trainer`'s device (CPU by default)."""
        meta = read_meta(Path(directory), cls.family)
        model = cls(trainer=trainer, seed=meta["seed"], **meta["params"])
        model._load_inputs_state(meta["inputs"])
        model.net = model.build_net()
        state = torch.load(Path(directory) / WEIGHTS_FILE, map_location=model.trainer.device, weights_only=True)
        try:
            model.net.load_state_dict(state)
        except RuntimeError as mismatch:
            first = str(mismatch).strip().splitlines()[-1].strip()
            raise AtecError(f"model directory {directory}: {WEIGHTS_FILE} does not fit this version's {cls.family} "
                            f"network ({first}); retrain it") from None
        return model
