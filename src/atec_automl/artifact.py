"""A submission as a reloadable model: what `write_submission` stores beside the A/B files, and `load_submission`.

`submissions/<name>/` holds, besides `test_a.csv`, `test_b.csv` and `manifest.json`:

- `models/entry<id>/`: each blend member's refit model as `Model.save` writes it (CatBoost's
  `model.cbm`, or a net's `weights.pt`; `model.json` with its parameters and preprocessing state:
  scalers, embedding vocabularies) and `features.json`, the feature definition it reads;
- `vocabulary.json`: each coded categorical field's values in first-appearance order on the
  training timeline, so that new events get the codes the model learned (`frozen_codes`).

The manifest's `model` section names the members, the blend rule (one model, or the rank average
of several over the rows scored together), the data format, the artifact and feature-code
versions, the library versions and a SHA-256 of every file. `load_submission` refuses, in one
line, a submission of another artifact or feature-code version, a damaged one (a file missing or
changed), and one made with `submit.refit=false` (stored predictions, no model).
"""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from atec_automl.data.dataset import Dataset
from atec_automl.data.formats import TableFormat, format_of
from atec_automl.data.load import load_event_files
from atec_automl.digest import file_sha256
from atec_automl.errors import AtecError
from atec_automl.features.build import as_spec, compute_features
from atec_automl.features.featureset import FeatureSet
from atec_automl.features.spec import FEATURES_VERSION, FeatureSpec, RawEventFeatures
from atec_automl.models import Model, ModelData, load_model
from atec_automl.models.trainer import TrainerSettings
from atec_automl.ranks import average_ranks

ARTIFACT_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODELS_DIR = "models"
FEATURES_FILE = "features.json"
VOCABULARY_FILE = "vocabulary.json"
NO_MODEL = "made without refit (submit.refit=false); no model to load"
LIBRARIES = ("numpy", "pandas", "pyarrow", "scipy", "catboost", "torch", "lightning", "scikit-learn")


@dataclass
class Member:
    """One refit model of a submission and the feature definition (a config with `_target_`) it reads."""

    entry_id: int
    family: str
    model: Model
    features: dict


def rank_average(predictions: list[np.ndarray]) -> np.ndarray:
    """Mean of each prediction's normalised rank (in (0, 1]); a single prediction passes through."""
    if len(predictions) == 1:
        return predictions[0]
    return np.mean([average_ranks(p) / len(p) for p in predictions], axis=0)


def coded_columns(spec: FeatureSpec) -> list[str]:
    """The categorical fields a feature definition turns into codes numbered by first appearance."""
    if not isinstance(spec, RawEventFeatures):
        return []
    sequence = spec.sequence.categorical if spec.sequence is not None else []
    return list(dict.fromkeys(spec.categorical + sequence))


def training_vocabulary(frame: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """Each column's values in their order of first appearance in `frame` (missing values left out)."""
    return {c: [str(v) for v in pd.factorize(frame[c], use_na_sentinel=True)[1]] for c in columns if c in frame.columns}


def library_versions() -> dict[str, str]:
    """Python's and the installed libraries' versions."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def save_members(folder: Path, members: list[Member], dataset: Dataset, data_format: dict) -> dict:
    """Write every member's model and features, and the vocabulary, into `folder`; return the manifest's `model` section."""
    described = []
    columns: list[str] = []
    for member in members:
        member_dir = folder / MODELS_DIR / f"entry{member.entry_id}"
        member.model.save(member_dir)
        (member_dir / FEATURES_FILE).write_text(json.dumps(member.features, indent=2, sort_keys=True))
        described.append({"entry": member.entry_id, "family": member.family, "dir": f"{MODELS_DIR}/entry{member.entry_id}"})
        columns += coded_columns(as_spec(member.features))
    vocabulary = training_vocabulary(dataset.frame, list(dict.fromkeys(columns)))
    (folder / VOCABULARY_FILE).write_text(json.dumps(vocabulary, ensure_ascii=False))
    return {
        "format_version": ARTIFACT_VERSION,
        "features_version": FEATURES_VERSION,
        "blend": "single" if len(members) == 1 else "rank_average",
        "members": described,
        "vocabulary": VOCABULARY_FILE,
        "data_format": data_format,
        "libraries": library_versions(),
    }


def file_checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` but the manifest, by relative path."""
    return {path.relative_to(folder).as_posix(): file_sha256(path)
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != MANIFEST_FILE}


@dataclass
class SavedSubmission:
    """A loaded submission: its members, the frozen vocabulary and the data format of its events."""

    path: Path
    manifest: dict
    members: list[Member]
    vocabulary: dict[str, pd.Index]
    data_format: dict

    @property
    def name(self) -> str:
        """The submission's name."""
        return str(self.manifest.get("name", self.path.name))

    def file_format(self) -> TableFormat:
        """The format the training files were read with (new events are read the same way)."""
        return format_of(self.data_format)

    def __post_init__(self) -> None:
        self._specs = [as_spec(m.features) for m in self.members]
        self._keys = [spec.fingerprint() for spec in self._specs]

    def specs(self) -> list[FeatureSpec]:
        """Each member's feature definition."""
        return list(self._specs)

    def features(self, dataset: Dataset, vocabulary: dict[str, pd.Index] | None = None) -> list[FeatureSet]:
        """Each member's features of every event of `dataset`, categorical codes frozen to `vocabulary`
        (default: the training vocabulary); members with the same definition share one computation."""
        vocabulary = self.vocabulary if vocabulary is None else vocabulary
        built: dict[str, FeatureSet] = {}
        out = []
        for spec, key in zip(self._specs, self._keys):
            if key not in built:
                built[key] = compute_features(dataset, spec, progress=False, vocabulary=vocabulary)
            out.append(built[key])
        return out

    def score(self, features: list[FeatureSet], rows: np.ndarray) -> np.ndarray:
        """Scores of `rows` from each member's features, blended by the submission's rule."""
        if not len(rows):
            return np.zeros(0, dtype=np.float64)
        return rank_average([m.model.predict(ModelData(fs, rows)) for m, fs in zip(self.members, features)])

    def predict(self, dataset: Dataset, rows: np.ndarray) -> np.ndarray:
        """Scores of `rows` of `dataset`, each from the events strictly before it."""
        return self.score(self.features(dataset), np.asarray(rows))


def training_files(saved: SavedSubmission) -> list[Path]:
    """The files the submission was trained on, oldest first (the default history of new events)."""
    files = [Path(p) for p in saved.manifest.get("data_files", {}).values()]
    if not files:
        raise AtecError(f"submission {saved.path}: the manifest names no data files; give the history files")
    return files


def score_file(saved: SavedSubmission, history: list[Path], events: Path) -> pd.DataFrame:
    """`<id column>,score` of every event of the file `events`, each scored from the history files and
    the file's earlier events only; read and validated as the training files were."""
    dataset = load_event_files(saved.file_format(), history, events)
    rows = dataset.part_rows("test_a")
    scores = saved.predict(dataset, rows)
    return pd.DataFrame({dataset.id_column: dataset.frame["event_id"].to_numpy()[rows], "score": scores})


def load_submission(path: str | Path, trainer: TrainerSettings | None = None) -> SavedSubmission:
    """Read back a submission's models, checking its versions and every file's checksum."""
    folder = Path(path)
    manifest = read_manifest(folder)
    section = manifest.get("model")
    if section is None:
        raise AtecError(f"submission {folder}: {manifest.get('model_note', NO_MODEL)}")
    _check_versions(folder, section)
    _check_files(folder, section.get("checksums", {}))
    members = [Member(m["entry"], m["family"], load_model(folder / m["dir"], trainer=trainer),
                      json.loads((folder / m["dir"] / FEATURES_FILE).read_text())) for m in section["members"]]
    vocabulary = {c: pd.Index(v, dtype="str") for c, v in
                  json.loads((folder / section["vocabulary"]).read_text()).items()}
    return SavedSubmission(folder, manifest, members, vocabulary, section["data_format"])


def read_manifest(folder: Path) -> dict:
    """The submission's manifest, or one line saying why there is none."""
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise AtecError(f"submission {folder}: no such directory")
    if not path.is_file():
        raise AtecError(f"submission {folder}: no {MANIFEST_FILE} (not a submission folder)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AtecError(f"submission {folder}: {MANIFEST_FILE} is damaged (not JSON: {error})") from None
    if not isinstance(manifest, dict):
        raise AtecError(f"submission {folder}: {MANIFEST_FILE} is damaged (not a JSON object)")
    return manifest


def _check_versions(folder: Path, section: dict) -> None:
    """Refuse a submission written by another artifact format or feature code."""
    version = section.get("format_version")
    if version != ARTIFACT_VERSION:
        raise AtecError(f"submission {folder}: saved in artifact format {version}, this code reads format "
                        f"{ARTIFACT_VERSION}; refit it with this code (python run.py task=submit)")
    features = section.get("features_version")
    if features != FEATURES_VERSION:
        raise AtecError(f"submission {folder}: its models read features of version {features}, this code builds "
                        f"version {FEATURES_VERSION}; refit it with this code (python run.py task=submit)")


def _check_files(folder: Path, checksums: dict[str, str]) -> None:
    """Every file the manifest lists is present and unchanged."""
    if not checksums:
        raise AtecError(f"submission {folder}: the manifest lists no file checksums (damaged manifest)")
    for name, digest in checksums.items():
        path = folder / name
        if not path.is_file():
            raise AtecError(f"submission {folder}: file {name} is missing (damaged submission)")
        if file_sha256(path) != digest:
            raise AtecError(f"submission {folder}: file {name} does not match its checksum (damaged submission)")
