"""From the composed config to the plain objects the library takes: the prepared data and a recipe.

This is where the Hydra config stops: `load_data(cfg.data)` reads the configured files (generating
the synthetic data first when `data.generate_if_missing` asks), `prepare(cfg)` loads the data, reads the reviewed labels,
builds the features and cuts the folds; `recipe(cfg)` turns the `model`, `trainer`, `labels`,
`features` and `seed` settings into a frozen `Recipe` (model class and settings, trainer, label
policy, seed); `submit_settings(cfg)` and `entry_recipe(cfg, entry)` do the same for a submission.
Everything below the tasks receives these, never the config.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import hydra.utils
from omegaconf import DictConfig, OmegaConf

from atec_automl.data.dataset import PARTS, Dataset
from atec_automl.data.formats import format_of
from atec_automl.data.load import load_dataset
from atec_automl.errors import AtecError
from atec_automl.experts import check_expert_name
from atec_automl.features.build import build_features
from atec_automl.labels import LabelPolicy
from atec_automl.leaderboard import Entry, Leaderboard
from atec_automl.models.base import Model
from atec_automl.models.trainer import TrainerSettings
from atec_automl.pipeline import Prepared
from atec_automl.progress import progress
from atec_automl.recipe import ExpertSource, Recipe
from atec_automl.reviews import ReviewStore, read_review_file, store_path
from atec_automl.submit import SubmitSettings, submit
from atec_automl.truth import HiddenTruth

NOT_POLICY_KEYS = ("expert", "reviews")
"""`labels.*` keys read by the task layer, not by a policy's constructor."""


def load_data(data_cfg: DictConfig) -> Dataset:
    """Load, validate and join the files of `data` (generating the synthetic data first if asked)."""
    return load_dataset(format_of(plain(data_cfg.format)), part_paths(data_cfg))


def part_paths(data_cfg: DictConfig) -> dict[str, Path]:
    """The configured file of each part (train required, tests optional), generating synthetic data if asked."""
    for part in PARTS:
        if OmegaConf.is_missing(data_cfg, part):
            raise AtecError(f"data.{part} is not set: give data.{part}=<path of the {part} file>")
    paths = {part: Path(str(data_cfg[part])) for part in PARTS if data_cfg.get(part) is not None}
    if "train" not in paths:
        raise AtecError("data.train is null: a train file is required")
    if data_cfg.get("generate_if_missing", False):
        from atec_automl.data.synthetic import ensure_generated  # the generator only when asked

        ensure_generated(data_cfg)
    return paths


def prepare(cfg: DictConfig) -> Prepared:
    """Load and validate the data, read the reviewed labels (adding `labels.reviews` first), build the
    features, cut the folds of `cfg.split`, read hidden labels if any."""
    check_expert(cfg)
    dataset = load_data(cfg.data)
    reviews = read_reviews(cfg, dataset)
    features = build_features(dataset, plain(cfg.features))
    split = hydra.utils.instantiate(cfg.split)
    folds = split.folds(dataset)
    hidden = cfg.data.get("hidden_labels")
    truth = HiddenTruth.load(Path(hidden), dataset, split.scored_days) if hidden and Path(hidden).exists() else None
    return Prepared(dataset, features, folds, truth, reviews)


def plain(section: Any) -> Any:
    """A config section as plain dicts and lists, interpolations resolved."""
    return OmegaConf.to_container(section, resolve=True) if OmegaConf.is_config(section) else section


def check_expert(cfg: DictConfig) -> None:
    """Refuse, before any work, an oracle expert on data without hidden labels (real data)."""
    if "expert" in cfg.labels and check_expert_name(str(cfg.labels.expert)) == "oracle" and not cfg.data.get("hidden_labels"):
        raise AtecError(f"labels.expert=oracle answers from synthetic data's hidden labels, and data.train="
                        f"{cfg.data.get('train')} has none (real data): use labels.expert=file with labels.reviews=PATH")


def review_store(cfg: DictConfig) -> ReviewStore:
    """The reviewed-labels store of `cfg` (`leaderboard.reviews`, else beside `leaderboard.path`)."""
    return ReviewStore(store_path(cfg.leaderboard.path, cfg.leaderboard.get("reviews")))


def read_reviews(cfg: DictConfig, dataset: Dataset) -> dict[str, int]:
    """Add the filled review file `labels.reviews` (if given) to the store, then read the whole store."""
    store = review_store(cfg)
    reviews_file = cfg.labels.get("reviews")
    if reviews_file:
        train_ids = dataset.frame["event_id"].to_numpy()[dataset.part_rows("train")].astype(str)
        ids, labels = read_review_file(Path(str(reviews_file)), train_ids)
        store.add(ids, labels, source=str(reviews_file))
    return store.read()


def build_policy(cfg: DictConfig) -> LabelPolicy:
    """The policy of `cfg.labels` (an active policy without its expert: `pipeline.label_policy` adds it)."""
    settings = plain(cfg.labels)
    for key in NOT_POLICY_KEYS:
        settings.pop(key, None)
    return hydra.utils.instantiate(settings)


def trainer_settings(cfg: DictConfig) -> TrainerSettings:
    """The trainer settings of `cfg.trainer` (writing into a temporary place until a fit names one)."""
    return hydra.utils.instantiate(cfg.trainer)


def model_class(cfg: DictConfig) -> type[Model]:
    """The Model class `cfg.model._target_` names."""
    found = hydra.utils.get_class(str(cfg.model._target_))
    if not (isinstance(found, type) and issubclass(found, Model)):
        raise AtecError(f"model._target_ {cfg.model._target_} is not a model family class")
    return found


def expert_source(cfg: DictConfig) -> ExpertSource:
    """Where an active label policy's answers come from (`labels.expert`)."""
    hidden = cfg.data.get("hidden_labels")
    return ExpertSource(str(cfg.labels.get("expert", "oracle")), None if hidden is None else str(hidden),
                        f"data.train={cfg.data.get('train')}")


def recipe(cfg: DictConfig, record: bool = False) -> Recipe:
    """The recipe of the composed config: `model` on `trainer` under `labels`, seeded by `seed`; with
    `record`, it keeps the whole config as resolved YAML for a leaderboard entry (inside a Hydra run:
    the config's `${hydra:...}` values resolve only there)."""
    settings = plain(cfg.model)
    settings.pop("_target_", None)
    return Recipe(model_class(cfg), settings, trainer_settings(cfg), build_policy(cfg), int(cfg.seed),
                  plain(cfg.features), expert_source(cfg), OmegaConf.to_yaml(cfg, resolve=True) if record else "")


def submit_settings(cfg: DictConfig) -> SubmitSettings:
    """The `submit` section as settings."""
    section = cfg.submit
    entry = section.get("entry")
    return SubmitSettings(Path(str(section.dir)), None if entry is None else int(entry), str(section.get("choose", "best")),
                          int(section.get("blend_top", 1)), bool(section.get("refit", True)),
                          None if section.get("name") is None else str(section.name))


def submit_configured(cfg: DictConfig, prepared: Prepared, run_dir: Path) -> Path:
    """Submit as the `submit` settings say (refitting under `run_dir/submit`)."""
    board = Leaderboard(cfg.leaderboard.url or cfg.leaderboard.path)
    return submit(submit_settings(cfg), prepared, board, run_dir / "submit", partial(entry_recipe, cfg),
                  plain(cfg.data.format))


def entry_recipe(cfg: DictConfig, entry: Entry) -> Recipe:
    """The recipe that refits `entry`: its recorded config, with this run's data section (same fingerprint,
    today's paths) and this run's trainer (`trainer=cpu` refits an entry swept on GPU on the CPU)."""
    recorded = OmegaConf.create(entry.config_yaml)
    if plain(recorded.get("trainer")) != plain(cfg.trainer):
        progress(f"[submit] entry {entry.id} was fitted with trainer {describe_trainer(recorded.get('trainer'))}; "
                 f"refitting it with this run's trainer {describe_trainer(cfg.trainer)}")
    recorded.data = cfg.data
    recorded.trainer = cfg.trainer
    return recipe(recorded)


def describe_trainer(section: DictConfig | None) -> str:
    """A trainer section in a few words (accelerator, precision, CatBoost's task type)."""
    if section is None:
        return "(none recorded)"
    return (f"accelerator={section.get('accelerator')} precision={section.get('precision')} "
            f"catboost_task_type={section.get('catboost_task_type')}")
