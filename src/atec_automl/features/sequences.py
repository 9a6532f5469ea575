"""Past-event sequences for the CNN-LSTM: an N x K index into one per-event step table.

`seq_index[i]` holds the timeline row positions of the K latest events of event i's user in its past
(surely earlier, see `windows.py`), the last to become visible last, -1 padded at the front. A model gathers
`steps[seq_index]` per batch (padding rows masked); N x K x S is never materialised here.
`shift_sequences` implements the "shifting" augmentation of seed 002 (drop the
user's latest n behaviours) on the index, for numpy arrays and torch tensors alike.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from atec_automl.features.windows import KeyIndex

CHUNK_ROWS = 1 << 14  # the chunk's N x K temporaries stay in the CPU cache (a 1 M-row chunk page-faulted 160 MB each)


def sequence_index(users: KeyIndex, n_rows: int, length: int) -> np.ndarray:
    """N x `length` int32 row positions of each event's previous events of the same user."""
    out = np.full((n_rows, length), -1, dtype=np.int32)
    steps = np.arange(length, dtype=np.int64) - length
    for start in range(0, users.size, CHUNK_ROWS):
        hi = users.hi[start : start + CHUNK_ROWS, None]
        positions = hi + steps
        valid = positions >= users.group_start[start : start + CHUNK_ROWS, None]
        rows = users.order[np.where(valid, positions, 0)]
        out[users.order[start : start + CHUNK_ROWS]] = np.where(valid, rows, -1)
    return out


def step_table(columns: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Stack per-event step features into an N x S float32 table, NaN replaced by 0."""
    names = list(columns)
    table = np.column_stack([np.nan_to_num(columns[c].astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0) for c in names])
    return table.astype(np.float32), names


def shift_sequences(seq_index: Any, shift: Any) -> Any:
    """Drop each row's `shift` most recent past events (an int, or one int per row), -1 padding in front.

    Works on a numpy array or a torch tensor (on any device) and returns the same kind.
    """
    if _is_tensor(seq_index):
        return _shift_tensor(seq_index, shift)
    length = seq_index.shape[1]
    shift = np.asarray(shift)
    source = np.broadcast_to(np.arange(length)[None, :] - shift.reshape(-1, 1), seq_index.shape)
    gathered = np.take_along_axis(seq_index, np.clip(source, 0, length - 1), axis=1)
    return np.where(source >= 0, gathered, -1).astype(seq_index.dtype)


def _is_tensor(value: Any) -> bool:
    """Whether `value` is a torch tensor (without importing torch for numpy callers)."""
    return type(value).__module__.startswith("torch")


def _shift_tensor(seq_index: Any, shift: Any) -> Any:
    """`shift_sequences` for a torch tensor."""
    import torch

    length = seq_index.shape[1]
    shift = torch.as_tensor(shift, device=seq_index.device).reshape(-1, 1)
    source = torch.arange(length, device=seq_index.device).reshape(1, -1) - shift
    source = source.expand(seq_index.shape[0], length)
    gathered = torch.gather(seq_index, 1, source.clamp(0, length - 1))
    return torch.where(source >= 0, gathered, torch.full_like(gathered, -1))
