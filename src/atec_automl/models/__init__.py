"""Model families behind one interface: CatBoost, MLP and CNN-LSTM.

A `Recipe` (`atec_automl.recipe`, built by the task layer from `conf/model/` and `conf/trainer/`)
builds a fresh one with `recipe.build_model(root_dir)`; `family_class(name)` is the class of a family
name; read a saved one back with `load_model(directory)`, which dispatches on `model.json`'s family.
`FAMILIES` is the one registry of family names (the leaderboard's families are these plus its own);
importing this package loads no model library (torch, Lightning, CatBoost): `family_class` does.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from atec_automl.errors import AtecError
from atec_automl.models.base import FitResult, Model, ModelData, Report
from atec_automl.models.io import read_meta

if TYPE_CHECKING:
    from atec_automl.models.trainer import TrainerSettings

FAMILIES = {
    "catboost": "atec_automl.models.catboost_model:CatBoostModel",
    "mlp": "atec_automl.models.mlp:MLPModel",
    "cnn_lstm": "atec_automl.models.cnn_lstm:CNNLSTMModel",
}

__all__ = ["FAMILIES", "FitResult", "Model", "ModelData", "Report", "family_class", "load_model"]


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
