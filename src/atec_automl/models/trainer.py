"""Where and how models train: the `conf/trainer/*.yaml` settings shared by all families.

torch is imported where a setting is used, not at the top: every task builds these settings, and
the ones that train no neural net (check-data, leaderboard, a CatBoost submission's predict or
serve) would otherwise pay torch's second or more of start-up.
"""
from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from atec_automl.errors import AtecError
from atec_automl.models.threads import set_torch_threads, usable_cores

if TYPE_CHECKING:
    import torch

ACCELERATORS = ("cpu", "gpu")
PRECISIONS = ("32-true", "bf16-mixed")


@dataclass(frozen=True)
class TrainerSettings:
    """Device, precision and output place for one training run.

    `cpu_threads` sets torch's threads while a neural model trains or predicts. The default 1 is
    what measured fastest on a shared 2-core machine (at 2 threads an epoch took 5-16x longer while
    other jobs ran: benchmarks/train.py --threads 1 2); None means the usable cores (see
    `models.threads`), which the `workers_per_host` workers started on one host share. CatBoost's
    `thread_count` defaults to the usable cores (its fits lost nothing at 2 threads). `root_dir` receives
    everything a library writes while training (Lightning's `default_root_dir`, CatBoost's
    `train_dir`); None means a private temporary directory. `compile` runs the training and
    validation steps through `torch.compile`: off by default, because on CPU it did not pay (an MLP
    epoch of 100 k rows: 0.60 s eager, 0.83 s compiled, after 62 s of compiling).
    """

    accelerator: str = "cpu"
    precision: str = "32-true"
    deterministic: bool = True
    catboost_task_type: str = "CPU"
    catboost_devices: str | None = None
    enable_progress_bar: bool = False
    cpu_threads: int | None = 1
    workers_per_host: int = 1
    root_dir: str | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        if self.accelerator not in ACCELERATORS:
            raise AtecError(f"trainer.accelerator: {self.accelerator!r} is not one of {ACCELERATORS}")
        if self.precision not in PRECISIONS:
            raise AtecError(f"trainer.precision: {self.precision!r} is not one of {PRECISIONS}")
        if self.catboost_task_type not in ("CPU", "GPU"):
            raise AtecError(f"trainer.catboost_task_type: {self.catboost_task_type!r} is not CPU or GPU")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise AtecError(f"trainer.cpu_threads: {self.cpu_threads} is not >= 1 (null: the usable cores)")
        if self.workers_per_host < 1:
            raise AtecError(f"trainer.workers_per_host: {self.workers_per_host} is not >= 1")
        if self.accelerator == "gpu" and not _cuda_available():
            raise AtecError("trainer.accelerator=gpu but torch sees no CUDA device; use trainer=cpu")

    @property
    def device(self) -> torch.device:
        """The torch device that holds the model and the training tensors."""
        import torch

        return torch.device("cuda", 0) if self.accelerator == "gpu" else torch.device("cpu")

    @property
    def bf16(self) -> bool:
        """Whether forward passes run under bf16 autocast."""
        return self.precision == "bf16-mixed"

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on the device when configured, else a no-op context."""
        if self.bf16:
            import torch

            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def usable_cores(self) -> int:
        """This worker's share of the cores the process may use (see `models.threads.usable_cores`)."""
        return usable_cores(self.workers_per_host)

    @property
    def torch_threads(self) -> int:
        """Torch's thread count: `cpu_threads` when set, else the usable cores."""
        return self.cpu_threads if self.cpu_threads is not None else self.usable_cores()

    @contextlib.contextmanager
    def threads(self) -> Iterator[None]:
        """Run the block with torch at `torch_threads` threads (intra-op count restored afterwards)."""
        import torch

        before = torch.get_num_threads()
        set_torch_threads(self.torch_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    @contextlib.contextmanager
    def workspace(self, name: str) -> Iterator[Path]:
        """A directory for a library's training files: `root_dir/name`, or a temporary one."""
        if self.root_dir is not None:
            path = Path(self.root_dir) / name
            path.mkdir(parents=True, exist_ok=True)
            yield path
            return
        with tempfile.TemporaryDirectory(prefix=f"atec-{name}-") as tmp:
            yield Path(tmp)


def _cuda_available() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()
