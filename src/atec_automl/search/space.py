"""Optuna search spaces held as data (`conf/search/<family>.yaml`) and applied to a config.

A space file has `family`, `params` (name -> {path, type: float|int|categorical|group, low, high,
log, choices, when, default}) and `enqueue` (trials to run first, name -> value; the first is the
library defaults).

- `type: group` chooses a whole config group option: `{path: labels, type: group, group: labels,
  choices: [as_black, drop]}` sets `labels` to the contents of `conf/labels/<choice>.yaml`.
- `when: {other_param: value}` samples a parameter only in trials where `other_param` took that
  value (conditional parameters, e.g. a label policy's own settings); `default` is its value in
  enqueued trials that do not give it.
- An enqueued trial that does not give a group parameter is enqueued once per choice, so every
  option starts from the same library-default trial.

A sweep engine samples with `suggest(trial, space)`; the task layer sets the values in a copy of the
config (`tasks._sweep.apply`) and builds the trial's recipe from it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import optuna
import yaml

from atec_automl.errors import AtecError

TYPES = ("float", "int", "categorical", "group")


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
    when: tuple[tuple[str, Any], ...] = ()
    default: Any = None
    options: tuple[tuple[str, Any], ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        """Sample this parameter with `trial.suggest_*`."""
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether this parameter applies given the values chosen so far (its `when` condition)."""
        return all(values.get(name) == value for name, value in self.when)

    def value_to_set(self, value: Any) -> Any:
        """What goes at `path`: the value, or for a group parameter the chosen option's config."""
        return dict(self.options)[value] if self.type == "group" else value

    def contains(self, value: Any) -> bool:
        """Whether `value` is a point of this parameter's space."""
        if self.type in ("categorical", "group"):
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


def load_space(source: str | Path | Mapping, conf_dir: Path | None = None) -> SearchSpace:
    """A SearchSpace from a YAML file path or an already-loaded plain mapping (e.g. `cfg.search` as a dict).

    `conf_dir` (the Hydra config directory) is where group parameters find their options.
    """
    data = read_yaml(Path(source)) if isinstance(source, (str, Path)) else dict(source)
    where = f"search space {source}" if isinstance(source, (str, Path)) else f"search space {data.get('family')}"
    params = tuple(_param(where, name, spec, conf_dir) for name, spec in data.get("params", {}).items())
    by_name = {p.name: p for p in params}
    for param in params:
        unknown = [name for name, _ in param.when if name not in by_name]
        if unknown:
            raise AtecError(f"{where}: parameter {param.name!r} depends on unknown parameter {unknown[0]!r}")
    enqueue = tuple(trial for listed in data.get("enqueue", []) for trial in _expand(dict(listed), params))
    for trial in enqueue:
        for name, value in trial.items():
            if name not in by_name or not by_name[name].contains(value):
                raise AtecError(f"{where}: enqueued {name}={value!r} is not a point of the space")
    return SearchSpace(str(data.get("family")), params, enqueue)


def _expand(trial: dict, params: tuple[SearchParam, ...]) -> list[dict]:
    """An enqueued trial once per choice of each group parameter it leaves open; conditional
    parameters get their defaults where active and are dropped where not."""
    trials = [trial]
    for param in params:
        if param.type == "group" and param.name not in trial:
            trials = [{**t, param.name: choice} for t in trials for choice in param.choices]
    expanded = []
    for t in trials:
        filled: dict = {}
        for param in params:
            if param.name in t and param.active(filled):
                filled[param.name] = t[param.name]
            elif param.when and param.active(filled) and param.default is not None:
                filled[param.name] = param.default
        expanded.append({**filled, **{k: v for k, v in t.items() if k not in {p.name for p in params}}})
    return expanded


def _param(where: str, name: str, spec: Mapping, conf_dir: Path | None) -> SearchParam:
    """One parameter's spec, checked."""
    kind = spec.get("type")
    if kind not in TYPES or "path" not in spec:
        raise AtecError(f"{where}: parameter {name!r} needs a path and a type among {TYPES}")
    when = tuple(dict(spec.get("when") or {}).items())
    if kind in ("categorical", "group"):
        if not spec.get("choices"):
            raise AtecError(f"{where}: {kind} parameter {name!r} needs choices")
        choices = tuple(spec["choices"])
        options = _group_options(where, name, spec, choices, conf_dir) if kind == "group" else ()
        return SearchParam(name, spec["path"], kind, choices=choices, when=when, default=spec.get("default"),
                           options=options)
    if spec.get("low") is None or spec.get("high") is None or spec["low"] >= spec["high"]:
        raise AtecError(f"{where}: parameter {name!r} needs low < high")
    return SearchParam(name, spec["path"], kind, spec["low"], spec["high"], bool(spec.get("log", False)),
                       when=when, default=spec.get("default"))


def _group_options(where: str, name: str, spec: Mapping, choices: tuple, conf_dir: Path | None) -> tuple:
    """(choice, config of `conf/<group>/<choice>.yaml`) for each choice of a group parameter."""
    group = spec.get("group") or spec["path"]
    if conf_dir is None:
        raise AtecError(f"{where}: group parameter {name!r} needs the config directory to read {group}/")
    options = []
    for choice in choices:
        path = Path(conf_dir) / group / f"{choice}.yaml"
        if not path.is_file():
            raise AtecError(f"{where}: parameter {name!r}: no option {choice!r} in {path.parent} "
                            f"(choose among {sorted(p.stem for p in path.parent.glob('*.yaml'))})")
        options.append((choice, read_yaml(path)))
    return tuple(options)


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats as OmegaConf reads them: `1e-3` is a number, not text."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
    r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
    r"|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))


def read_yaml(path: Path) -> dict:
    """A YAML file's mapping, as written (interpolations such as `${seed}` stay text for the config to resolve)."""
    with open(path, encoding="utf-8") as stream:
        return yaml.load(stream, Loader=_Loader) or {}


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Sample every parameter of `space` whose condition holds: name -> value."""
    values: dict[str, Any] = {}
    for param in space.params:
        if param.active(values):
            values[param.name] = param.suggest(trial)
    return values
