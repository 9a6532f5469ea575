"""Every config error as one line, before any data is loaded.

`composition_error` composes the command line's overrides as `@hydra.main` will, and turns what
Hydra would print over several lines (an unknown group option such as `model=xgboost`, bad override
syntax, a key that is not there) into one. `check_config` then checks the composed config in one
pass: its interpolations resolve, its settings pass `atec_automl.settings`, each family a sweep
names recomposes and passes too, the directories the task writes into are writable, and the
service's address is free.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, InstantiationException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from atec_automl.errors import AtecError
from atec_automl.settings import check_listenable, check_model, check_settings, check_writable


def composition_error(conf_dir: Path, arguments: Sequence[str]) -> str | None:
    """The one-line error of a command line whose config does not compose, None when it composes.

    Command lines with Hydra's flags (`--help`, `-m`, `--cfg job`, ...) or `debug=true` are left to
    Hydra and its full message."""
    if any(argument.startswith("-") or argument == "debug=true" for argument in arguments):
        return None
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            compose(config_name="config", overrides=list(arguments))
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        return describe(error, arguments)
    return None


def describe(error: Exception, arguments: Sequence[str] = ()) -> str:
    """A Hydra or OmegaConf error in one line that names the override or key."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, option = str(error.missing_cfg_file).rpartition("/")
        choices = f"; choose one of: {', '.join(error.options)}" if error.options else ""
        return f"{group}={option}: no such option in conf/{group}/{choices}" if group else f"{option}: no such config"
    bad_syntax = next((a for a in arguments if not _parses(a)), None)
    if bad_syntax is not None:
        return f"override {bad_syntax!r}: {_one_line(str(error))}"
    if isinstance(error, OmegaConfBaseException) and getattr(error, "full_key", None):
        return f"{error.full_key}: {_one_line(str(getattr(error, 'msg', None) or error))}"
    return _one_line(str(error))


def _one_line(message: str) -> str:
    """A multi-line Hydra or OmegaConf message joined, without its pointers to the docs or its own restatement."""
    kept = [line.strip() for line in message.splitlines()
            if line.strip() and "hydra.cc" not in line and not line.startswith(("Error parsing override", "    "))]
    return " ".join(kept) or message.strip()


def _parses(argument: str) -> bool:
    """Whether `argument` is a syntactically valid Hydra override."""
    try:
        OverridesParser.create().parse_overrides([argument])
    except HydraException:
        return False
    return True


TRAINING_TASKS = ("sweep", "train", "submit", "review")
"""The tasks that build a trainer and a label policy."""


def check_config(cfg: DictConfig) -> None:
    """The one validation pass over the composed config; raises `AtecError` on the first problem."""
    check_settings(resolved(cfg), sweepable_families())
    if cfg.task in TRAINING_TASKS:
        check_components(cfg)
    if cfg.task == "sweep":
        for family in cfg.sweep.models:
            check_family(cfg, str(family))
    for key, directory in output_dirs(cfg):
        check_writable(key, directory)
    if cfg.task == "predict" and cfg.predict.get("output") and Path(str(cfg.predict.output)).is_dir():
        raise AtecError(f"predict.output={cfg.predict.output}: is a folder; give the path of the scores file to write")
    if cfg.task == "serve":
        check_listenable(str(cfg.serve.host), int(cfg.serve.port))


def check_components(cfg: DictConfig) -> None:
    """Build the trainer settings and the label policy, whose constructors check their values, before data loads.

    Imports the training modules here, not at the top: only the tasks that train need them."""
    from atec_automl.tasks._experiment import build_policy, trainer_settings

    try:
        trainer_settings(cfg)
        build_policy(cfg)
    except InstantiationException as error:
        found = user_error(error)
        if found is None:
            raise
        raise found from None


def user_error(error: BaseException) -> AtecError | None:
    """The `AtecError` itself, or the one a constructor raised inside Hydra's `instantiate` (which wraps it in an
    `InstantiationException` over several lines); None for anything else."""
    while isinstance(error, InstantiationException):
        error = error.__cause__
    return error if isinstance(error, AtecError) else None


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain values with every interpolation resolved."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise AtecError(describe(error)) from None


def sweepable_families() -> list[str]:
    """The families a sweep can recompose: options of both the `model` and the `search` config groups."""
    loader = GlobalHydra.instance().config_loader()
    return sorted(set(loader.get_group_options("model")) & set(loader.get_group_options("search")))


def check_family(cfg: DictConfig, family: str) -> None:
    """The family's config as the sweep will recompose it (`model=<family>`, `sweep.family_overrides`) composes and passes.

    Imports the sweep's modules (and torch) here, not at the top: only a sweep needs them."""
    from atec_automl.tasks._sweep import compose_config, config_dir, family_config, family_space

    try:
        family_cfg = family_config(cfg, family, HydraConfig.get().overrides.task, compose_config)
        check_model(resolved(family_cfg)["model"], "model")
        family_space(family_cfg, config_dir())
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise AtecError(f"sweep family {family} (sweep.family_overrides.{family}): {describe(error)}") from None
    except AtecError as error:
        raise AtecError(f"sweep family {family} (sweep.family_overrides.{family}): {error}") from None


def output_dirs(cfg: DictConfig) -> list[tuple[str, Path]]:
    """The directories the task will write into, each with the key that sets it."""
    task, dirs = str(cfg.task), []
    if task == "sweep" or (task == "score" and cfg.get("score", {}).get("add")):
        dirs.append(("leaderboard.path", Path(cfg.leaderboard.path).parent))
    if task == "sweep" and str(cfg.study.get("storage") or "").startswith("sqlite:///"):
        dirs.append(("study.storage", Path(str(cfg.study.storage).removeprefix("sqlite:///")).parent))
    if task == "submit" or (task == "sweep" and cfg.sweep.submit):
        dirs.append(("submit.dir", Path(cfg.submit.dir)))
    if task == "predict":
        from atec_automl.tasks.predict import OUTPUT_DIR

        output = cfg.predict.get("output")
        dirs.append(("predict.output", Path(str(output)).parent if output else OUTPUT_DIR))
    if task == "serve":
        from atec_automl.tasks.serve import STATE_ROOT

        dirs.append(("serve.state_dir", Path(cfg.serve.state_dir) if cfg.serve.get("state_dir") else STATE_ROOT))
    if task == "report":
        from atec_automl.tasks.report import report_path

        dirs.append(("report.path", report_path(cfg).parent))
    return dirs
