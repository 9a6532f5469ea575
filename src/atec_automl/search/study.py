"""Opening a study: storage with heartbeats, explicit sampler and pruner, named per family and data."""
from __future__ import annotations

import hashlib
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from atec_automl.errors import AtecError


SCHEMA_RACE_DELAYS = (0.5, 1.0, 2.0)
"""Workers starting together on an empty database race to create Optuna's tables; a loser retries after these pauses."""


def quiet_optuna() -> None:
    """Our own progress lines replace Optuna's per-trial log; its experimental-feature notices are noise."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage_for(study_cfg: DictConfig) -> optuna.storages.RDBStorage:
    """RDB storage (SQLite file or PostgreSQL URL) whose heartbeats fail and retry a killed worker's trial."""
    if not study_cfg.get("storage"):
        raise AtecError("study.storage is not set: give the study's database URL, e.g. "
                        "study.storage=postgresql+psycopg://USER:PASSWORD@HOST:5432/atec")
    url = str(study_cfg.storage)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    for delay in SCHEMA_RACE_DELAYS:
        try:
            return _rdb_storage(url, study_cfg)
        except sqlalchemy.exc.IntegrityError:
            time.sleep(delay)
    return _rdb_storage(url, study_cfg)


def _rdb_storage(url: str, study_cfg: DictConfig) -> optuna.storages.RDBStorage:
    """Open the storage; a lost table-creation race passes through (IntegrityError), anything else is one line."""
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=dict(study_cfg.get("engine_kwargs") or {}),
            heartbeat_interval=int(study_cfg.heartbeat_interval),
            grace_period=int(study_cfg.grace_period),
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=int(study_cfg.max_retry)),
        )
    except sqlalchemy.exc.IntegrityError:
        raise
    except Exception as error:
        raise AtecError(f"study.storage {redacted(url)}: cannot open ({type(error).__name__}: {str(error).splitlines()[0]})") from error


def redacted(url: str) -> str:
    """The storage URL without its password, for messages and records."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest or ":" not in rest.split("@", 1)[0]:
        return url
    credentials, host = rest.split("@", 1)
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


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


def open_study(cfg: DictConfig, family: str, data_fingerprint: str) -> tuple[optuna.Study, bool]:
    """Create or resume the family's study (maximising the mean ATEC score over folds).

    Returns the study and whether this call created it: creation is atomic in the storage, so of
    several workers starting at once exactly one learns that it created the study.
    """
    quiet_optuna()
    settings = dict(storage=storage_for(cfg.study), study_name=study_name(cfg, family, data_fingerprint),
                    sampler=instantiate(cfg.study.sampler), pruner=instantiate(cfg.study.pruner))
    try:
        return optuna.create_study(direction="maximize", **settings), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(**settings), False
