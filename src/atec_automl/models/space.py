"""Optuna search spaces held as data (`conf/search/<family>.yaml`) and applied to a config.

A space file has `family`, `params` (name -> {path, type: float|int|categorical, low, high, log,
choices}) and `enqueue` (trials to run first, name -> value; the first is the library defaults).
A sweep engine samples with `suggest(trial, space)` and sets the values with `apply(cfg, space, values)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import optuna
from omegaconf import DictConfig, OmegaConf

from atec_automl.errors import AtecError

TYPES = ("float", "int", "categorical")


@dataclass(frozen=True)
class SearchParam:
    """One searched parameter: the config key it sets and its distribution."""

    name: str
    path: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None

    def suggest(self, trial: optuna.Trial) -> Any:
        """Sample this parameter with `trial.suggest_*`."""
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def contains(self, value: Any) -> bool:
        """Whether `value` is a point of this parameter's space."""
        if self.type == "categorical":
            return value in self.choices
        if self.type == "int" and not float(value).is_integer():
            return False
        return self.low <= value <= self.high


@dataclass(frozen=True)
class SearchSpace:
    """A family's searched parameters and the trials to enqueue first."""

    family: str
    params: tuple[SearchParam, ...]
    enqueue: tuple[dict, ...]


def load_space(source: str | Path | Mapping | DictConfig) -> SearchSpace:
    """A SearchSpace from a YAML file path or an already-loaded mapping (e.g. `cfg.search`)."""
    raw = OmegaConf.load(source) if isinstance(source, (str, Path)) else source
    data = OmegaConf.to_container(raw, resolve=True) if isinstance(raw, DictConfig) else dict(raw)
    where = f"search space {source}" if isinstance(source, (str, Path)) else f"search space {data.get('family')}"
    params = tuple(_param(where, name, spec) for name, spec in data.get("params", {}).items())
    space = SearchSpace(str(data.get("family")), params, tuple(dict(t) for t in data.get("enqueue", [])))
    by_name = {p.name: p for p in params}
    for trial in space.enqueue:
        for name, value in trial.items():
            if name not in by_name or not by_name[name].contains(value):
                raise AtecError(f"{where}: enqueued {name}={value!r} is not a point of the space")
    return space


def _param(where: str, name: str, spec: Mapping) -> SearchParam:
    """One parameter's spec, checked."""
    kind = spec.get("type")
    if kind not in TYPES or "path" not in spec:
        raise AtecError(f"{where}: parameter {name!r} needs a path and a type among {TYPES}")
    if kind == "categorical":
        if not spec.get("choices"):
            raise AtecError(f"{where}: categorical parameter {name!r} needs choices")
        return SearchParam(name, spec["path"], kind, choices=tuple(spec["choices"]))
    if spec.get("low") is None or spec.get("high") is None or spec["low"] >= spec["high"]:
        raise AtecError(f"{where}: parameter {name!r} needs low < high")
    return SearchParam(name, spec["path"], kind, spec["low"], spec["high"], bool(spec.get("log", False)))


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Sample every parameter of `space`: name -> value."""
    return {p.name: p.suggest(trial) for p in space.params}


def apply(cfg: DictConfig, space: SearchSpace, values: Mapping[str, Any]) -> DictConfig:
    """A copy of `cfg` with each sampled value set at its parameter's path."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    paths = {p.name: p.path for p in space.params}
    for name, value in values.items():
        if OmegaConf.select(out, paths[name], default="<absent>") == "<absent>":
            raise AtecError(f"search space {space.family}: path {paths[name]!r} of {name!r} is not in the config")
        OmegaConf.update(out, paths[name], value, merge=False)
    return out
