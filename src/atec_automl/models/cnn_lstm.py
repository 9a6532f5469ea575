"""CNN-LSTM after seed 002: Conv1d layers read the event's past sequence (plus the event itself),
an LSTM reads the convolved steps, and a head joins its last state with the tabular features.

Sequences are gathered per batch on the device from `FeatureSet.seq_index` (the K previous
events of the same user) and `FeatureSet.steps` (per-event step features): the store keeps only
the step rows the set's sequences touch, never N x K x S. Each step carries a presence flag;
padding comes first and the event itself is the last step. Shift augmentation (seed 002's
"drop the user's most recent n actions"): with probability `shift_prob` a training sequence loses
its 1..`max_shift` most recent past events.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from atec_automl.errors import AtecError
from atec_automl.features.featureset import FeatureSet
from atec_automl.features.sequences import shift_sequences
from atec_automl.models.base import ModelData
from atec_automl.models.layers import LogitLayer, TabularEncoder, activation, dense_stack
from atec_automl.models.neural import NeuralModel, NeuralParams, TabularStore
from atec_automl.models.preprocess import NumericScaler, TabularPreprocessor
from atec_automl.models.tabular_inputs import fit_table_inputs, tabular_store


@dataclass
class CNNLSTMParams(NeuralParams):
    """Shared training parameters plus convolution, LSTM, head and augmentation settings."""

    conv_layers: int = 2
    conv_channels: int = 32
    kernel_size: int = 3
    lstm_hidden: int = 64
    lstm_layers: int = 1
    tabular_units: int = 64
    head_layers: int = 1
    head_units: int = 64
    shift_prob: float = 0.0
    max_shift: int = 2


def right_aligned(seq: np.ndarray) -> np.ndarray:
    """Each row's -1 padding moved to the front, the real positions keeping their order."""
    order = np.argsort(seq >= 0, axis=1, kind="stable")
    return np.take_along_axis(seq, order, axis=1)


@dataclass
class SequenceStore(TabularStore):
    """A TabularStore plus the step rows its sequences touch and each row's local sequence."""

    steps: torch.Tensor = field(default=None)
    sequence: torch.Tensor = field(default=None)
    event: torch.Tensor = field(default=None)
    shift_prob: float = 0.0
    max_shift: int = 0
    generator: torch.Generator | None = None

    def gather(self, index: torch.Tensor, training: bool) -> dict[str, torch.Tensor]:
        """Tabular batch plus `sequence`: B x (K + 1) x (S + 1), presence flag last."""
        batch = super().gather(index, training)
        past = self.sequence.index_select(0, index)
        if training and self.shift_prob > 0:
            past = self._shifted(past)
        present = (past >= 0).unsqueeze(-1)
        gathered = self.steps.index_select(0, past.clamp(min=0).flatten()).view(*past.shape, -1)
        past_steps = torch.cat([gathered * present, present.to(self.steps.dtype)], dim=-1)
        now = self.steps.index_select(0, self.event.index_select(0, index))
        now_step = torch.cat([now, torch.ones_like(now[:, :1])], dim=-1).unsqueeze(1)
        batch["sequence"] = torch.cat([past_steps, now_step], dim=1)
        return batch

    def _shifted(self, past: torch.Tensor) -> torch.Tensor:
        """Drop each chosen sequence's n most recent events (n uniform in 1..max_shift), padding the front."""
        rows = past.shape[0]
        draw = torch.rand(rows, generator=self.generator, device=past.device) < self.shift_prob
        n = torch.randint(1, self.max_shift + 1, (rows,), generator=self.generator, device=past.device) * draw
        return shift_sequences(past, n)


class CNNLSTMNet(nn.Module):
    """Conv1d stack -> LSTM over the sequence; MLP over the tabular features; head over both."""

    def __init__(self, encoder: TabularEncoder, step_inputs: int, p: CNNLSTMParams):
        super().__init__()
        self.encoder = encoder
        convs: list[nn.Module] = []
        channels = step_inputs
        for _ in range(p.conv_layers):
            conv = nn.Conv1d(channels, p.conv_channels, p.kernel_size, padding=p.kernel_size // 2)
            convs += [conv, activation(p.activation)]
            channels = p.conv_channels
        self.conv = nn.Sequential(*convs)
        self.lstm = nn.LSTM(channels, p.lstm_hidden, num_layers=p.lstm_layers, batch_first=True,
                            dropout=p.dropout if p.lstm_layers > 1 else 0.0)
        self.tabular = dense_stack(encoder.width, 1, p.tabular_units, p.activation, p.dropout)
        self.head = dense_stack(p.lstm_hidden + p.tabular_units, p.head_layers, p.head_units, p.activation, p.dropout)
        self.out = LogitLayer(p.head_units if p.head_layers else p.lstm_hidden + p.tabular_units, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B,)."""
        steps = self.conv(batch["sequence"].transpose(1, 2)).transpose(1, 2)
        _, (last, _) = self.recurrent(steps)
        tabular = self.tabular(self.encoder(batch["numeric"], batch["categorical"]))
        return self.out(self.head(torch.cat([last[-1], tabular], dim=1))).squeeze(-1)

    def recurrent(self, steps: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The LSTM over the convolved steps; in float32 with autocast off on CUDA, and on a CPU whose
        oneDNN has no LSTM in autocast's dtype.

        CUDA autocast hands cuDNN's RNNs float16 whatever autocast's dtype, and bf16-mixed scales no
        loss, so gradients below float16's range would vanish. On CPU bf16 autocast reaches oneDNN's
        LSTM in bf16 (1.4-1.7x faster epochs with AMX, see the README); a CPU without bf16 instructions
        (AVX2 only: most laptops) has no such kernel, and the LSTM took a bf16 fallback 6-8x slower
        than float32.
        """
        device = steps.device.type
        no_cpu_kernel = (device == "cpu" and torch.is_autocast_enabled("cpu")
                         and not lstm_kernel_on_cpu(torch.get_autocast_dtype("cpu")))
        if device == "cuda" or no_cpu_kernel:
            with torch.autocast(device_type=device, enabled=False):
                return self.lstm(steps.float())
        return self.lstm(steps)


@functools.cache
def lstm_kernel_on_cpu(dtype: torch.dtype) -> bool:
    """Whether an LSTM runs forward and backward under CPU autocast to `dtype` on this machine (asked once;
    the callers' random streams and grad mode stay as they were)."""
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
        probe = nn.LSTM(2, 2, batch_first=True)
        try:
            with torch.autocast(device_type="cpu", dtype=dtype):
                output, _ = probe(torch.zeros(1, 2, 2, requires_grad=True))
            output.float().sum().backward()
        except RuntimeError:
            return False
    return True


class CNNLSTMModel(NeuralModel):
    """The CNN-LSTM family; needs `FeatureSet.seq_index` and `steps`."""

    family = "cnn_lstm"
    params_class = CNNLSTMParams

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.params.conv_layers < 1 or self.params.lstm_layers < 1 or self.params.max_shift < 0:
            raise AtecError("model=cnn_lstm: conv_layers and lstm_layers must be >= 1, max_shift >= 0")
        self.preprocessor: TabularPreprocessor | None = None
        self.step_scaler: NumericScaler | None = None

    def fit_inputs(self, train: ModelData) -> None:
        steps = sequence_inputs(train.features)[1]
        self.preprocessor = fit_table_inputs(train, self.params, self.seed)
        self.step_scaler = NumericScaler.fit(steps[np.asarray(train.rows)], self.params.scaling, self.seed)

    def input_store(self, data: ModelData, target: np.ndarray | None) -> SequenceStore:
        device = self.trainer.device
        base = tabular_store(self.preprocessor, data, target, device)
        seq_index, steps = sequence_inputs(data.features)
        rows = np.asarray(data.rows)
        past = right_aligned(seq_index[rows].astype(np.int64))
        needed = np.unique(np.concatenate([rows, past[past >= 0]]))
        local_past = np.where(past >= 0, np.searchsorted(needed, past), -1)
        generator = torch.Generator(device=device).manual_seed(self.seed) if target is not None else None
        return SequenceStore(base.numeric, base.categorical, base.target, base.weight,
                             steps=torch.as_tensor(np.ascontiguousarray(self.step_scaler.transform(steps[needed])), device=device),
                             sequence=torch.as_tensor(local_past, device=device),
                             event=torch.as_tensor(np.searchsorted(needed, rows), device=device),
                             shift_prob=self.params.shift_prob, max_shift=self.params.max_shift, generator=generator)

    def build_net(self) -> nn.Module:
        encoder = TabularEncoder(self.preprocessor.n_inputs, self.preprocessor.cardinalities, self.params.embedding_dim)
        return CNNLSTMNet(encoder, self.step_scaler.n_columns + 1, self.params)

    def _inputs_state(self) -> dict:
        return {"table": self.preprocessor.state(), "steps_scaling": self.step_scaler.method,
                "steps_scaler": {k: v.tolist() for k, v in self.step_scaler.params.items()}}

    def _load_inputs_state(self, state: dict) -> None:
        self.preprocessor = TabularPreprocessor.from_state(state["table"])
        self.step_scaler = NumericScaler(state["steps_scaling"],
                                         {k: np.asarray(v, dtype=np.float64) for k, v in state["steps_scaler"].items()})


def sequence_inputs(features: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """(seq_index, steps) of a FeatureSet, checked for presence and shape."""
    seq_index, steps = features.seq_index, features.steps
    if seq_index is None or steps is None:
        raise AtecError("model=cnn_lstm: the FeatureSet has no seq_index/steps (this data format has no users); "
                        "use model=mlp or model=catboost")
    n = len(features.table)
    if seq_index.ndim != 2 or steps.ndim != 2 or len(seq_index) != n or len(steps) != n:
        raise AtecError(f"model=cnn_lstm: seq_index {seq_index.shape} and steps {steps.shape} must be N x K and "
                        f"N x S with N = {n} table rows")
    return seq_index, steps
