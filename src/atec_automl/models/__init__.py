"""Model families behind one interface: CatBoost, MLP and CNN-LSTM.

Build one from the composed config with `build_model(cfg)`, which is
`hydra.utils.instantiate(cfg.model, _partial_=True)(trainer=<cfg.trainer instantiated>, seed=cfg.seed)`;
read a saved one back with `load_model(directory)`, which dispatches on `model.json`'s family.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import hydra.utils
from omegaconf import DictConfig

from atec_automl.errors import AtecError
from atec_automl.models.base import FitResult, Model, ModelData, Report
from atec_automl.models.io import read_meta
from atec_automl.models.trainer import TrainerSettings

FAMILIES = {
    "catboost": "atec_automl.models.catboost_model:CatBoostModel",
    "mlp": "atec_automl.models.mlp:MLPModel",
    "cnn_lstm": "atec_automl.models.cnn_lstm:CNNLSTMModel",
}

__all__ = ["FAMILIES", "FitResult", "Model", "ModelData", "Report", "TrainerSettings", "build_model",
           "build_trainer", "family_class", "load_model"]


def build_trainer(cfg: DictConfig, root_dir: str | Path | None = None) -> TrainerSettings:
    """The trainer settings of `cfg.trainer`, writing under `root_dir` (a temporary place when None)."""
    return hydra.utils.instantiate(cfg.trainer, root_dir=None if root_dir is None else str(root_dir))


def build_model(cfg: DictConfig, root_dir: str | Path | None = None, model_cfg: DictConfig | None = None) -> Model:
    """A fresh, unfitted model of `model_cfg` (default `cfg.model`) on `cfg.trainer`, seeded by `cfg.seed`."""
    make = hydra.utils.instantiate(cfg.model if model_cfg is None else model_cfg, _partial_=True, _convert_="all")
    return make(trainer=build_trainer(cfg, root_dir), seed=int(cfg.seed))


def family_class(family: str) -> type[Model]:
    """The Model class of a family name (catboost, mlp, cnn_lstm)."""
    if family not in FAMILIES:
        raise AtecError(f"unknown model family {family!r}; choose one of {sorted(FAMILIES)}")
    module, name = FAMILIES[family].split(":")
    return getattr(importlib.import_module(module), name)


def load_model(directory: str | Path, trainer: TrainerSettings | None = None) -> Model:
    """Read back any model written by `Model.save` (CPU unless `trainer` says otherwise)."""
    meta = read_meta(Path(directory))
    return family_class(meta.get("family", "")).load(Path(directory), trainer=trainer)
