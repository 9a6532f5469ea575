"""The tabular inputs both neural families read: a preprocessor fitted on the training rows, and
the scaled rows of a data set as tensors on the training device."""
from __future__ import annotations

import numpy as np
import torch

from atec_automl.features.featureset import BlockFeatures
from atec_automl.models.base import ModelData
from atec_automl.models.neural import NeuralParams, TabularStore
from atec_automl.models.preprocess import TabularPreprocessor


def fit_table_inputs(train: ModelData, params: NeuralParams, seed: int) -> TabularPreprocessor:
    """The tabular preprocessor of `params` fitted on the training rows."""
    fs = train.features
    return TabularPreprocessor.fit(fs.table, fs.categorical, np.asarray(train.rows), params.scaling,
                                   params.max_categories, params.min_category_count, seed)


def tabular_store(preprocessor: TabularPreprocessor, data: ModelData, target: np.ndarray | None,
                  device: torch.device) -> TabularStore:
    """Scaled inputs of `data`'s rows, with targets and weights, as tensors on `device`.

    Row-major: a batch is a gather of whole rows (the table's column-major block made every batch
    gather 80 strided columns, 100x slower).
    """
    features, rows = data.features, np.asarray(data.rows)
    numeric, categorical = preprocessor.transform_blocks(features, rows) if isinstance(features, BlockFeatures) \
        else preprocessor.transform(features.table, rows)
    as_tensor = (lambda a: None if a is None else torch.as_tensor(np.asarray(a, dtype=np.float32), device=device))
    return TabularStore(torch.as_tensor(np.ascontiguousarray(numeric), device=device),
                        torch.as_tensor(np.ascontiguousarray(categorical), device=device),
                        as_tensor(target), None if target is None else as_tensor(data.weight))
