"""A recipe: everything needed to fit one model, as a small frozen object the library can use.

The task layer (`atec_automl.tasks`) builds a `Recipe` from the composed Hydra config (one per
task, or one per sweep trial) and hands it down; nothing below the tasks reads the config. A
recipe names the model class and its settings, the trainer settings, the grey-label policy (a
prototype copied fresh for every fit), the seed, the feature definition and, for active label
policies, where the expert's answers come from. `with_steps(n)` is the same recipe training
exactly `n` iterations or epochs (a refit at the step count chosen on validation, or a cheap rung).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from atec_automl.labels import LabelPolicy
from atec_automl.models.base import Model
from atec_automl.models.trainer import TrainerSettings


@dataclass(frozen=True)
class ExpertSource:
    """Who answers an active label policy's queries: `oracle` (the hidden labels at `hidden_labels`,
    synthetic data only) or `file` (the reviewed-labels store); `data_name` names the data in errors."""

    name: str = "oracle"
    hidden_labels: str | None = None
    data_name: str = "the data"


@dataclass(frozen=True)
class Recipe:
    """How to fit one model: family class and settings, trainer, label policy, seed, features."""

    model_class: type[Model]
    model_settings: Mapping[str, Any]
    trainer: TrainerSettings
    policy: LabelPolicy
    seed: int = 0
    features: Mapping[str, Any] = field(default_factory=dict)
    expert: ExpertSource = ExpertSource()
    config_yaml: str = ""
    """The composed config the recipe was built from, as YAML: what a leaderboard entry records."""

    @property
    def family(self) -> str:
        """The model family's name (catboost, mlp, cnn_lstm)."""
        return self.model_class.family

    def build_model(self, root_dir: str | Path | None = None) -> Model:
        """A fresh, unfitted model writing under `root_dir` (a private temporary place when None)."""
        trainer = replace(self.trainer, root_dir=None if root_dir is None else str(root_dir))
        return self.model_class(trainer=trainer, seed=self.seed, **self.model_settings)

    @property
    def steps(self) -> int:
        """The iterations (CatBoost) or epochs (nets) the model trains at most."""
        return int(self.model_settings[self.model_class.step_key])

    def with_steps(self, steps: int) -> Recipe:
        """The same recipe training exactly `steps` iterations (CatBoost) or epochs (nets)."""
        return replace(self, model_settings={**self.model_settings, self.model_class.step_key: int(steps)})

    def with_trainer(self, trainer: TrainerSettings) -> Recipe:
        """The same recipe on another trainer (device, precision, threads)."""
        return replace(self, trainer=trainer)

    def new_policy(self) -> LabelPolicy:
        """A fresh copy of the label policy (an active policy keeps per-fit state: its expert and queries)."""
        return replace(self.policy)
