"""Feature definitions, built from `conf/features/*.yaml` (`_target_` names the class; `features.build.as_spec`).

Two formats, two spec classes, picked by the config group: `features=default` (semi-final raw
fields: entity window aggregates, novelty/usual flags, sequences) and `features=prelim`
(preliminary f-columns: raw features, per-row missing count, date features, no sequences).
Each spec checks the columns of the dataset and names the other config when they do not fit.

`cache_dir` and `export` are run options: they are not part of the definition and do not enter
the fingerprint that keys the cache.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from atec_automl.data.calendar import HOLIDAYS
from atec_automl.errors import AtecError

FEATURES_VERSION = 3
RUN_OPTIONS = ("cache_dir", "export")
WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
ALL_HISTORY = "all"
STATS = ("count", "amt_sum", "amt_mean", "amt_max", "amt_std", "amt_vs_mean", "amt_vs_max")


def window_seconds(name: str) -> int | None:
    """`"1h"` -> 3600, `"7d"` -> 604800, `"all"` -> None (all history)."""
    if name == ALL_HISTORY:
        return None
    match = re.fullmatch(r"(\d+)([smhd])", name)
    if not match:
        raise AtecError(f"features: window {name!r} is not like 30m, 1h, 24h, 7d or 'all'")
    return int(match.group(1)) * WINDOW_UNITS[match.group(2)]


@dataclass
class EntitySpec:
    """Aggregates over the strictly-past events sharing `columns` (one column or a pair)."""

    columns: list[str]
    windows: list[str] = field(default_factory=lambda: ["1h", "24h", "7d", ALL_HISTORY])
    stats: list[str] = field(default_factory=lambda: ["count"])
    since_prev: bool = True
    distinct: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.columns, self.windows, self.stats = list(self.columns), list(self.windows), list(self.stats)
        self.distinct = {k: list(v) for k, v in dict(self.distinct).items()}
        unknown = sorted(set(self.stats) - set(STATS))
        if unknown:
            raise AtecError(f"features: unknown stats {unknown}; choose from {list(STATS)}")
        for name in self.windows + [w for ws in self.distinct.values() for w in ws]:
            window_seconds(name)


@dataclass
class SequenceSpec:
    """The N x K past-event index of each user and the per-event step features."""

    length: int = 20
    categorical: list[str] = field(default_factory=list)
    novelty: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.categorical, self.novelty = list(self.categorical), list(self.novelty)
        if self.length < 1:
            raise AtecError(f"features: sequence.length must be >= 1, got {self.length}")


@dataclass
class RawEventFeatures:
    """Semi-final raw fields: strictly-past entity aggregates and user sequences."""

    user: str = "user_id"
    amount: str = "amt"
    entities: dict[str, EntitySpec] = field(default_factory=dict)
    first_seen: dict[str, list[str]] = field(default_factory=dict)
    usual: list[str] = field(default_factory=list)
    mismatches: dict[str, list[str]] = field(default_factory=dict)
    categorical: list[str] = field(default_factory=list)
    holidays: list[list[str]] = field(default_factory=lambda: [list(h) for h in HOLIDAYS])
    sequence: SequenceSpec | None = field(default_factory=SequenceSpec)
    cache_dir: str | None = None
    export: str | None = None

    def __post_init__(self) -> None:
        self.entities = {
            name: spec if isinstance(spec, EntitySpec) else EntitySpec(**spec)
            for name, spec in dict(self.entities).items()
        }
        self.first_seen = {k: list(v) for k, v in dict(self.first_seen).items()}
        self.mismatches = {k: list(v) for k, v in dict(self.mismatches).items()}
        self.usual, self.categorical = list(self.usual), list(self.categorical)
        self.holidays = [list(h) for h in self.holidays]
        if self.sequence is not None and not isinstance(self.sequence, SequenceSpec):
            self.sequence = SequenceSpec(**self.sequence)
        for name, pair in {**self.first_seen, **self.mismatches}.items():
            if len(pair) != 2:
                raise AtecError(f"features: {name!r} needs exactly two columns, got {pair}")

    def check_columns(self, columns: list[str]) -> None:
        """Fail clearly when the dataset is not in the raw format."""
        missing = [c for c in (self.user, self.amount) if c not in columns]
        if missing:
            raise AtecError(f"features: the dataset has no column {missing[0]!r}; for preliminary-format data (f1..f297) use features=prelim")

    def fingerprint(self) -> str:
        """Hash of the resolved definition (run options excluded)."""
        return _definition_hash(self)


@dataclass
class PrelimFeatures:
    """Preliminary f-columns: the raw features, per-row missing count and date features."""

    feature_pattern: str = r"f\d+"
    holidays: list[list[str]] = field(default_factory=lambda: [list(h) for h in HOLIDAYS])
    cache_dir: str | None = None
    export: str | None = None

    def __post_init__(self) -> None:
        self.holidays = [list(h) for h in self.holidays]

    def feature_columns(self, columns: list[str]) -> list[str]:
        """The f-columns of the dataset, in their file order."""
        return [c for c in columns if re.fullmatch(self.feature_pattern, c)]

    def check_columns(self, columns: list[str]) -> None:
        """Fail clearly when the dataset has no f-columns."""
        if not self.feature_columns(columns):
            raise AtecError(f"features: no column matches {self.feature_pattern!r}; for semi-final raw data use features=default")

    def fingerprint(self) -> str:
        """Hash of the resolved definition (run options excluded)."""
        return _definition_hash(self)


FeatureSpec = RawEventFeatures | PrelimFeatures


def _definition_hash(spec: FeatureSpec) -> str:
    """sha256 of the class, code version and every field but the run options."""
    definition = {f.name: getattr(spec, f.name) for f in fields(spec) if f.name not in RUN_OPTIONS}
    payload = {"class": type(spec).__name__, "version": FEATURES_VERSION, "definition": _jsonable(definition)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    """Dataclasses -> dicts, recursively."""
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
