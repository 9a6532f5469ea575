"""From the composed config to a sweep's plain plans: one `FamilyPlan` per family, one `SweepSettings`.

Each family's config is the run's config recomposed with `model=<family>`, `+search=<family>` and the
family's `sweep.family_overrides`; a trial's sampled values are set into a copy of it (`apply`: a
value at its parameter's path, or a whole `conf/<group>/` option for a group parameter) and the
trial's recipe is built from that copy. The composition is explicit: the caller gives the command
line's overrides, the config directory and the `compose` function (Hydra's, inside `@hydra.main` or
a test's `initialize_config_dir`), so a sweep runs in-process from a test as from `run.py`.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import hydra.utils
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from atec_automl.errors import AtecError
from atec_automl.pipeline import Prepared
from atec_automl.provenance import current_git_commit
from atec_automl.recipe import Recipe
from atec_automl.search.fidelity import FidelitySchedule
from atec_automl.search.space import SearchSpace, load_space
from atec_automl.search.study import TrialSeededSampler
from atec_automl.search.sweep import FamilyPlan, SweepSettings
from atec_automl.tasks._experiment import build_policy, plain, recipe

Compose = Callable[[Sequence[str]], DictConfig]
"""Composes `conf/config.yaml` with a list of overrides."""


def config_dir() -> Path:
    """The directory of the primary Hydra config (where group options such as `labels/` live)."""
    for source in HydraConfig.get().runtime.config_sources:
        if source.provider == "main" and source.schema == "file":
            return Path(source.path)
    raise RuntimeError("no primary config directory in Hydra's config sources")


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """`conf/config.yaml` composed with `overrides` (inside `@hydra.main`)."""
    return compose(config_name="config", overrides=list(overrides))


def sweep_overrides(overrides: Sequence[str]) -> list[str]:
    """The command line's overrides, less the `model` and `search` choices that the sweep makes per family."""
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("model", "search")]


def family_config(cfg: DictConfig, family: str, overrides: Sequence[str], compose: Compose) -> DictConfig:
    """The run's config recomposed for one family: the user's overrides, `model=<family>`, then
    the family's `sweep.family_overrides`; the grey-label policy joins its search space unless the
    user fixed `labels=` or turned `sweep.search_labels` off."""
    user = sweep_overrides(overrides)
    extra = list(cfg.sweep.family_overrides.get(family) or [])
    composed = compose([*user, f"model={family}", f"+search={family}", *extra])
    if searches_labels(cfg, user):
        with open_dict(composed):
            composed.search.params = OmegaConf.merge(composed.search.params, cfg.sweep.grey_labels)
    return composed


def searches_labels(cfg: DictConfig, overrides: Sequence[str]) -> bool:
    """Whether the grey-label policy is searched: on by default, off when the user chose one."""
    fixed = any(o.split("=", 1)[0].lstrip("+~") == "labels" for o in overrides)
    return bool(cfg.sweep.get("search_labels", True)) and not fixed


def family_space(family_cfg: DictConfig, conf_dir: Path) -> SearchSpace:
    """The family's search space (`search`), its group parameters read from `conf_dir`."""
    return load_space(plain(family_cfg.search), conf_dir)


def apply(cfg: DictConfig, space: SearchSpace, values: Mapping[str, Any]) -> DictConfig:
    """A copy of `cfg` with each sampled value set at its parameter's path (group options first)."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    params = {p.name: p for p in space.params}
    for name in sorted(values, key=lambda n: params[n].type != "group"):
        param = params[name]
        if OmegaConf.select(out, param.path, default="<absent>") == "<absent>":
            raise AtecError(f"search space {space.family}: path {param.path!r} of {name!r} is not in the config")
        OmegaConf.update(out, param.path, param.value_to_set(values[name]), merge=False)
    return out


def trial_recipe(family_cfg: DictConfig, space: SearchSpace, values: Mapping[str, Any]) -> Recipe:
    """The recipe of one trial: the family's config with the trial's sampled values."""
    return recipe(apply(family_cfg, space, values), record=True)


def study_name(cfg: DictConfig, family: str, data_fingerprint: str) -> str:
    """`study.study_name` if set, else `<prefix>-<family>-<hash of data, features, labels, split>`.

    Rerunning the same command resumes the same study; changing the data or the experiment's
    fixed parts starts a new one instead of mixing incomparable trials.
    """
    if cfg.study.get("study_name"):
        return f"{cfg.study.study_name}-{family}"
    fixed = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("features", "labels", "split") if key in cfg}
    digest = hashlib.sha256(f"{data_fingerprint}|{fixed}".encode()).hexdigest()[:10]
    return f"{cfg.study.name_prefix}-{family}-{digest}"


def build_sampler(sampler_cfg: DictConfig, enqueued: int = 0) -> Any:
    """`study.sampler`, seeded per trial from its `seed` (unseeded when the seed is null). Its
    `n_startup_trials` (TPE's, GP's) count the random trials after the `enqueued` default trials: Optuna
    counts every finished trial, and the defaults, one per label policy with the same model parameters,
    would otherwise leave TPE one random trial to start from."""
    startup = sampler_cfg.get("n_startup_trials")
    extra = {} if startup is None else {"n_startup_trials": int(startup) + enqueued}
    if sampler_cfg.get("seed") is None:
        return hydra.utils.instantiate(sampler_cfg, **extra)
    return TrialSeededSampler(hydra.utils.instantiate(sampler_cfg, _partial_=True, **extra), int(sampler_cfg.seed))


def features_summary(features: dict) -> str:
    """The feature spec in a few words: its class, its entity groups (if any) and a hash of the whole spec."""
    digest = hashlib.sha256(json.dumps(features, sort_keys=True, default=str).encode()).hexdigest()[:10]
    kind = str(features.get("_target_", "features")).rsplit(".", 1)[-1]
    groups = features.get("entities")
    return f"{kind}" + (f" ({', '.join(groups)})" if isinstance(groups, dict) else "") + f", spec {digest}"


def study_metadata(cfg: DictConfig, family: str, prepared: Prepared, overrides: Sequence[str]) -> dict[str, str]:
    """What every trial of the family's study shares, as the study's user attributes show it."""
    return {
        "family": family,
        "data_fingerprint": prepared.dataset.fingerprint,
        "features": features_summary(plain(cfg.features)),
        "split": "; ".join(fold.describe() for fold in prepared.folds),
        "label_policy": "searched" if searches_labels(cfg, sweep_overrides(overrides)) else build_policy(cfg).name,
        "git_commit": current_git_commit(),
    }


def family_plan(cfg: DictConfig, family: str, prepared: Prepared, overrides: Sequence[str], conf_dir: Path,
                compose: Compose) -> FamilyPlan:
    """One family's study plan, from the run's config recomposed for the family."""
    family_cfg = family_config(cfg, family, overrides, compose)
    space = family_space(family_cfg, conf_dir)
    return FamilyPlan(family, space, partial(trial_recipe, family_cfg, space), plain(family_cfg.study),
                      study_name(family_cfg, family, prepared.dataset.fingerprint),
                      build_sampler(family_cfg.study.sampler, enqueued_count(family_cfg, space)),
                      hydra.utils.instantiate(family_cfg.study.pruner),
                      study_metadata(family_cfg, family, prepared, overrides), hydra.utils.instantiate(cfg.logger),
                      int(cfg.sweep.report_every.get(family, 1)))


def enqueued_count(family_cfg: DictConfig, space: SearchSpace) -> int:
    """How many default trials a new study of the family starts with (`study.enqueue_defaults`)."""
    return len(space.enqueue) if family_cfg.study.enqueue_defaults else 0


def fidelity_schedule(cfg: DictConfig) -> FidelitySchedule:
    """The low-fidelity rungs of `sweep.fidelity` (none when the section is absent)."""
    section = cfg.sweep.get("fidelity")
    if section is None:
        return FidelitySchedule()
    return FidelitySchedule(tuple(float(s) for s in section.shares), int(section.min_train_rows),
                            int(section.reduction_factor), int(section.get("explore_trials", 10)),
                            bool(section.get("cut_steps", True)))


def sweep_settings(cfg: DictConfig) -> SweepSettings:
    """The budget, recovery, pruning and fidelity settings every family's study shares."""
    after = cfg.sweep.get("prune_folds_after", 3)
    timeout = cfg.study.timeout_s
    return SweepSettings(int(cfg.study.n_trials), None if timeout is None else float(timeout),
                         bool(cfg.study.enqueue_defaults), float(cfg.study.grace_period),
                         None if after is None else int(after), int(cfg.leaderboard.get("bootstrap", 200)),
                         fidelity_schedule(cfg), int(cfg.seed))
