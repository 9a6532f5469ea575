"""Checks of what a model is handed, shared by the families."""
from __future__ import annotations

import numpy as np

from atec_automl.errors import AtecError
from atec_automl.models.base import ModelData


def check_rows(data: ModelData, what: str) -> None:
    """Rows must be 1-D positions inside the FeatureSet's table."""
    rows = np.asarray(data.rows)
    n = len(data.features.table)
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise AtecError(f"{what}: rows must be a 1-D integer array of positions, got {rows.dtype} {rows.shape}")
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise AtecError(f"{what}: row positions must lie in 0..{n - 1}, got {rows.min()}..{rows.max()}")


def check_targets(data: ModelData, what: str, hard: bool) -> np.ndarray:
    """The float64 targets of `data`: one per row, in [0, 1] (exactly 0/1 when `hard`), both classes present."""
    check_rows(data, what)
    if data.target is None:
        raise AtecError(f"{what}: ModelData.target is missing")
    target = np.asarray(data.target, dtype=np.float64)
    if target.shape != (len(data.rows),):
        raise AtecError(f"{what}: {target.shape[0] if target.ndim else 0} targets for {len(data.rows)} rows")
    if np.isnan(target).any() or (target < 0).any() or (target > 1).any():
        raise AtecError(f"{what}: targets must lie in [0, 1] (apply a label policy to grey rows first)")
    if hard and not np.isin(target, (0.0, 1.0)).all():
        raise AtecError(f"{what}: targets must be exactly 0 or 1 on scored rows")
    if not ((target > 0).any() and (target < 1).any()):
        raise AtecError(f"{what}: needs both positive and negative targets, got {len(target)} rows of one class")
    if data.weight is not None and np.shape(data.weight) != target.shape:
        raise AtecError(f"{what}: {np.shape(data.weight)} weights for {len(data.rows)} rows")
    return target


def time_ordered(data: ModelData) -> ModelData:
    """`data` with rows ascending (timeline order = time order), targets and weights moved along."""
    rows = np.asarray(data.rows)
    if len(rows) < 2 or (np.diff(rows) >= 0).all():
        return data
    order = np.argsort(rows, kind="stable")
    pick = (lambda a: None if a is None else np.asarray(a)[order])
    return ModelData(data.features, rows[order], pick(data.target), pick(data.weight))
