"""The Lightning loop that trains a neural family's net: the module, its callbacks, the `Trainer`.

`NeuralModel.fit` imports this module, so Lightning (and what it pulls in: torchmetrics, scipy's
signal package, torch._dynamo, about 4 s on 2 cores) loads only when a net trains; loading a saved
net, predicting and serving need torch alone. Early stopping watches a validation metric
(`valid_auc`, `valid_atec` or `valid_loss`); the best epoch's weights are kept in memory by
`KeepBest` (no checkpoint files). Lightning writes nothing: no logger, no checkpoints,
`default_root_dir` inside the trainer's workspace.
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities.seed import isolate_rng
from torch import nn

from atec_automl.metric import atec_score, auc
from atec_automl.models.base import Report
from atec_automl.models.neural import MONITORS, IndexBatches, NeuralParams, make_optimizer
from atec_automl.models.trainer import TrainerSettings


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Python's, numpy's and torch's generators seeded with `seed` inside, restored after."""
    with isolate_rng():
        pl.seed_everything(seed, workers=False, verbose=False)
        yield


class BinaryModule(pl.LightningModule):
    """Binary cross-entropy on soft targets, validation AUC / ATEC score / loss per epoch."""

    def __init__(self, net: nn.Module, params: NeuralParams, pos_weight: float | None, compile_net: bool = False):
        super().__init__()
        self.net, self.params = net, params
        # the compiled wrapper shares the net's parameters; kept out of the module tree (and state_dict)
        object.__setattr__(self, "step_net", torch.compile(net) if compile_net else net)
        self.register_buffer("pos_weight", None if pos_weight is None else torch.tensor(pos_weight), persistent=False)
        self._valid_logits: list[torch.Tensor] = []
        self._valid_targets: list[torch.Tensor] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Weighted BCE of one batch."""
        logits = self.step_net(batch).float()
        return F.binary_cross_entropy_with_logits(logits, batch["target"], weight=batch.get("weight"),
                                                  pos_weight=self.pos_weight)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Collect logits; metrics are computed over the whole validation set at epoch end."""
        self._valid_logits.append(self.step_net(batch).float())
        self._valid_targets.append(batch["target"])

    def on_validation_epoch_end(self) -> None:
        """Log valid_auc, valid_atec and valid_loss (unweighted BCE)."""
        logits = torch.cat(self._valid_logits)
        target = torch.cat(self._valid_targets)
        self._valid_logits, self._valid_targets = [], []
        y, s = target.cpu().numpy(), logits.double().cpu().numpy()
        self.log("valid_auc", auc(y, s), prog_bar=True)
        self.log("valid_atec", atec_score(y, s).score, prog_bar=True)
        self.log("valid_loss", F.binary_cross_entropy_with_logits(logits, target).item())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """See `make_optimizer`."""
        return make_optimizer(self.net.parameters(), self.params)


class KeepBest(pl.Callback):
    """Copies the net's weights at each improvement of the monitored metric; records the history."""

    def __init__(self, monitor: str, mode: str):
        self.monitor, self.mode = monitor, mode
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict] = []

    def on_validation_end(self, trainer: pl.Trainer, module: BinaryModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("valid_")}
        self.history.append({"epoch": trainer.current_epoch, **metrics})
        value = metrics[self.monitor]
        better = self.best_value is None or (value > self.best_value if self.mode == "max" else value < self.best_value)
        if better:
            self.best_value, self.best_epoch = value, trainer.current_epoch
            self.best_state = {k: v.detach().clone() for k, v in module.net.state_dict().items()}


class ReportEach(pl.Callback):
    """Calls `report(epoch, value)` after each validation; whatever it raises stops `fit`."""

    def __init__(self, report: Report, monitor: str):
        self.report, self.monitor = report, monitor

    def on_validation_end(self, trainer: pl.Trainer, module: BinaryModule) -> None:
        self.report(trainer.current_epoch, float(trainer.callback_metrics[self.monitor]))


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's informational lines (device summary) and its internal deprecation notes."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*")
            warnings.filterwarnings("ignore", message=r".*`validation_step` but have no `val_dataloader`.*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def fresh_memory_left_unfilled() -> Iterator[None]:
    """Deterministic mode without filling every new tensor's memory first.

    `torch.use_deterministic_algorithms(True)` (Lightning's `deterministic=True`) also writes NaN
    into every `torch.empty` allocation, so that a bug reading uninitialised memory shows; that
    cost the CNN-LSTM a fifth of its step on CPU (the LSTM's large workspaces). The algorithms
    chosen stay the deterministic ones; only the fill is skipped while training.
    """
    before = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = before


def train_net(net: nn.Module, params: NeuralParams, settings: TrainerSettings, family: str,
              train_batches: IndexBatches, valid_batches: IndexBatches | None, pos_weight: float | None,
              report: Report | None) -> KeepBest | None:
    """Fit `net` in place for `params.epochs` (early stopping on `valid_batches` when given).

    Returns the best-epoch tracker when validating; `report(epoch, value)` runs after each validation.
    """
    module = BinaryModule(net, params, pos_weight, compile_net=settings.compile)
    callbacks: list[pl.Callback] = []
    keep_best = None
    if valid_batches is not None:
        monitor, mode = MONITORS[params.monitor]
        keep_best = KeepBest(monitor, mode)
        callbacks += [keep_best, EarlyStopping(monitor=monitor, mode=mode, patience=params.patience)]
        if report is not None:
            callbacks.append(ReportEach(report, monitor))
    with settings.workspace(family) as root, quiet_lightning(), fresh_memory_left_unfilled():
        trainer = pl.Trainer(
            accelerator=settings.accelerator, devices=1, precision=settings.precision,
            deterministic=settings.deterministic, max_epochs=params.epochs, logger=False,
            enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
            enable_progress_bar=settings.enable_progress_bar, default_root_dir=str(root), callbacks=callbacks)
        trainer.fit(module, train_dataloaders=train_batches, val_dataloaders=valid_batches)
    return keep_best
