"""The run's settings, checked in one pass before any data is loaded.

A typed schema (pydantic) of the keys the tasks read: their types and ranges, the model families a
sweep names, each model's step counts and value ranges; and probes that a directory a task will
write into is writable and that the service's address can be listened on. It reads the resolved
config as plain dicts; a wrong setting raises `AtecError` naming the key, e.g. `study.n_trials=-1:
Input should be greater than or equal to 1`. Keys it does not list pass through unchecked. It
imports no model code (no torch), so that checking stays quick.
"""
from __future__ import annotations

import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from atec_automl.errors import AtecError

Count = Annotated[StrictInt, Field(ge=1)]
NonNegative = Annotated[StrictInt, Field(ge=0)]
Positive = Annotated[StrictFloat, Field(gt=0)]
NonNegativeNumber = Annotated[StrictFloat, Field(ge=0)]
Probability = Annotated[StrictFloat, Field(ge=0, le=1)]


class _Section(BaseModel):
    """A config section: the listed keys are checked, others are allowed.

    A default of None only means "not checked when absent" (the code that reads a key owns its default);
    a key given as null is refused unless its type allows None."""

    model_config = ConfigDict(extra="allow")


class StudySettings(_Section):
    storage: StrictStr | None
    n_trials: Count
    timeout_s: Positive | None
    heartbeat_interval: Count
    grace_period: Count
    max_retry: NonNegative


Share = Annotated[float, Field(gt=0, lt=1)]


def _rising(shares: list[float]) -> list[float]:
    """`shares` when each is larger than the one before, else ValueError."""
    if shares != sorted(set(shares)):
        raise ValueError("user shares must rise strictly")
    return shares


class FidelitySettings(_Section):
    shares: Annotated[list[Share], AfterValidator(_rising)]
    min_train_rows: Count
    reduction_factor: Annotated[StrictInt, Field(ge=2)]
    explore_trials: NonNegative = 10
    cut_steps: StrictBool = True


class SweepSettings(_Section):
    models: Annotated[list[StrictStr], Field(min_length=1)]
    report_every: dict[str, Count]
    prune_folds_after: NonNegative | None = 3
    submit: StrictBool
    fidelity: FidelitySettings | None = None


def _folder_name(name: str) -> str:
    """`name` when it names one folder inside its parent (a submission's `submit.dir/<name>`), else ValueError."""
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ValueError("must be one folder name: not empty, '.' or '..', no '/' or '\\'")
    return name


FolderName = Annotated[StrictStr, AfterValidator(_folder_name)]


class SubmitSettings(_Section):
    entry: Count | None
    blend_top: Count
    choose: Literal["best", "lower_bound", "indistinguishable"] = "best"
    refit: StrictBool = True
    name: FolderName | None
    dir: StrictStr


class LeaderboardSettings(_Section):
    path: StrictStr
    url: StrictStr | None = None
    bootstrap: NonNegative = 200


class SplitSettings(_Section):
    scored_days: Count = 3
    gap_days: NonNegative = 0
    n_folds: Count = 1
    early_stopping_days: NonNegative = 0
    min_frauds: NonNegative = 0


class DataSettings(_Section):
    rows: Count = None
    seed: NonNegative = None


class ReviewSettings(_Section):
    size: Count | None = None
    out: StrictStr | None = None


class CheckDataSettings(_Section):
    top: Count = None
    all_columns: StrictBool = None


class ServeSettings(_Section):
    submission: StrictStr | None = None
    host: StrictStr = None
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = None
    state_dir: StrictStr | None = None
    max_batch: Count = None
    max_ahead_hours: Positive | None = None


class Settings(_Section):
    task: StrictStr
    seed: NonNegative
    debug: StrictBool
    study: StudySettings
    sweep: SweepSettings
    submit: SubmitSettings
    leaderboard: LeaderboardSettings
    split: SplitSettings | None = None
    data: DataSettings | None = None
    serve: ServeSettings | None = None
    review: ReviewSettings | None = None
    check_data: CheckDataSettings | None = None


class CatBoostSettings(_Section):
    iterations: Count
    early_stopping_rounds: Count | None
    metric_period: Count
    learning_rate: Positive | None = None
    depth: Annotated[StrictInt, Field(ge=1, le=16)] = None
    l2_leaf_reg: NonNegativeNumber = None
    random_strength: NonNegativeNumber = None
    subsample: Annotated[StrictFloat, Field(gt=0, le=1)] | None = None
    border_count: Annotated[StrictInt, Field(ge=1, le=65535)] | None = None
    one_hot_max_size: NonNegative | None = None
    scale_pos_weight: Positive | None = None


class NeuralSettings(_Section):
    epochs: Count
    batch_size: Count
    eval_batch_size: Count
    patience: Count
    learning_rate: Positive = None
    momentum: NonNegativeNumber = None
    weight_decay: NonNegativeNumber = None
    dropout: Probability = None
    embedding_dim: Count = None
    max_categories: Count = None
    min_category_count: NonNegative = None


class MLPSettings(NeuralSettings):
    hidden_layers: NonNegative = None
    hidden_units: Count = None


class CNNLSTMSettings(NeuralSettings):
    conv_layers: NonNegative = None
    conv_channels: Count = None
    kernel_size: Count = None
    lstm_hidden: Count = None
    lstm_layers: Count = None
    tabular_units: Count = None
    head_layers: NonNegative = None
    head_units: Count = None
    shift_prob: Probability = None
    max_shift: NonNegative = None


MODEL_SETTINGS: dict[str, type[_Section]] = {
    "atec_automl.models.catboost_model.CatBoostModel": CatBoostSettings,
    "atec_automl.models.mlp.MLPModel": MLPSettings,
    "atec_automl.models.cnn_lstm.CNNLSTMModel": CNNLSTMSettings,
}
"""The schema of each model class's section, by its `_target_`; other classes pass unchecked."""


def check_settings(values: Mapping[str, Any], families: Sequence[str]) -> None:
    """Check the whole resolved config; `families` are the model families a sweep can run."""
    _validate(Settings, values, prefix="")
    for index, family in enumerate(values["sweep"]["models"]):
        if family not in families:
            raise AtecError(f"sweep.models[{index}]={family!r}: no such model family; choose among {', '.join(families)}")
    check_model(values.get("model") or {}, "model")


def check_model(model: Mapping[str, Any], prefix: str) -> None:
    """Check a `model` section's step counts, by the class its `_target_` names."""
    schema = MODEL_SETTINGS.get(str(model.get("_target_", "")))
    if schema is not None:
        _validate(schema, model, prefix)


def check_writable(key: str, directory: Path) -> None:
    """Create `directory` if needed and a probe file in it (deleted at once); one line naming `key` if that fails."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-probe-"):
            pass
    except FileExistsError as error:
        raise AtecError(f"{key}: cannot write in {directory} ({error.filename} is a file, not a directory)") from error
    except OSError as error:
        raise AtecError(f"{key}: cannot write in {directory} ({error.strerror or error})") from error


def check_listenable(host: str, port: int) -> None:
    """Bind a probe socket to `host:port` as uvicorn will (closed at once); one line naming the keys if that fails,
    so that a port in use is reported before the history loads, not after."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise AtecError(f"serve.host={host!r}: not a host name or address this machine can resolve ({error.strerror})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise AtecError(f"serve.host={host!r} serve.port={port}: cannot listen there "
                            f"({error.strerror or error})") from None


def _validate(schema: type[_Section], values: Mapping[str, Any], prefix: str) -> None:
    """Validate `values` against `schema`; the first problem as one line naming its key."""
    try:
        schema.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        key, value, found = _key(values, first["loc"])
        where = ".".join(part for part in (prefix, key) if part)
        shown = f"{where}={value!r}" if found and first["type"] != "missing" else where
        raise AtecError(f"{shown}: {first['msg']}") from None


def _key(values: Any, loc: Sequence[str | int]) -> tuple[str, Any, bool]:
    """The dotted key (`a.b[1]`) that `loc` points to in `values`, its value, and whether it is there.

    Parts of `loc` past a plain value (pydantic's names of union members) are not keys and are left out."""
    key = ""
    for part in loc:
        if isinstance(values, Mapping):
            key = f"{key}.{part}" if key else str(part)
            if part not in values:
                return key, None, False
            values = values[part]
        elif isinstance(values, list) and isinstance(part, int) and part < len(values):
            key, values = f"{key}[{part}]", values[part]
        else:
            break
    return key, values, True
