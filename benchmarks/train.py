"""Training throughput of the models on CPU (or the GPU with --device cuda).

For the MLP and the CNN-LSTM, one epoch of the same network, loss and optimizer is timed two ways
in the same run: the harness's batching (inputs held as tensors on the device, batches gathered by
index, sequences gathered from seq_index + steps per batch) against a plain
`DataLoader(TensorDataset(...), shuffle=True)` loop (for the CNN-LSTM over the materialised
N x (K + 1) x (S + 1) sequence tensor, the naive alternative). A full Lightning `fit` of one epoch
is timed too. CatBoost: fit seconds for --catboost-rows rows and --catboost-iterations trees.

With --threads 1 2, instead: one epoch of each network (harness batching) and one CatBoost fit at
each thread count, the counts interleaved over --rounds rounds (best of each kept), with the ratios.

    python benchmarks/train.py [--rows 100000] [--batch-size 1024] [--catboost-rows 500000] [--catboost-iterations 300]
    python benchmarks/train.py --threads 1 2 [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from atec_automl.models.base import ModelData
from atec_automl.models.catboost_model import CatBoostModel
from atec_automl.models.cnn_lstm import CNNLSTMModel
from atec_automl.models.layers import initialise
from atec_automl.models.mlp import MLPModel
from atec_automl.models.neural import IndexBatches, NeuralModel, make_optimizer
from atec_automl.models.toy import ToyData, make_toy
from atec_automl.models.threads import set_torch_threads, usable_cores
from atec_automl.models.trainer import TrainerSettings


def timed_epoch(net: torch.nn.Module, model: NeuralModel, batches: Iterable[dict[str, torch.Tensor]]) -> float:
    """Seconds for one pass of forward, BCE, backward and optimizer step over `batches`."""
    optimizer = make_optimizer(net.parameters(), model.params)
    net.train()
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        with model.trainer.autocast():
            logits = net(batch).float()
        loss = F.binary_cross_entropy_with_logits(logits, batch["target"])
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def dataloader_batches(tensors: dict[str, torch.Tensor], batch_size: int,
                       device: torch.device) -> Iterable[dict[str, torch.Tensor]]:
    """The plain reference: DataLoader(TensorDataset) over CPU tensors with shuffling, each batch moved to `device`."""
    names = list(tensors)
    loader = DataLoader(TensorDataset(*tensors.values()), batch_size=batch_size, shuffle=True)
    return ({name: value.to(device) for name, value in zip(names, batch)} for batch in loader)


def compare(name: str, make: Callable[[], NeuralModel], toy: ToyData, rows: np.ndarray, batch_size: int,
            device: torch.device) -> None:
    """Print samples/s of the harness batching, the DataLoader reference and a Lightning fit of one epoch."""
    data = ModelData(toy.features, rows, toy.true_label[rows].astype(np.float64))
    model = make()
    model._fit_inputs(data)
    store = model._store(data, data.target)
    everything = store.gather(torch.arange(len(rows), device=device), training=False)
    materialised = {k: v.cpu() for k, v in everything.items() if k != "weight"}
    mib = sum(v.numel() * v.element_size() for v in materialised.values()) / 2 ** 20
    figures = {}
    for label, batches in (("index batching", lambda: IndexBatches(store, batch_size, device, shuffle=True)),
                           ("DataLoader(TensorDataset)", lambda: dataloader_batches(materialised, batch_size, device))):
        net = model._build_net().to(device)
        initialise(net, model.params.weight_init)
        timed_epoch(net, model, _take(batches(), 3))
        figures[label] = len(rows) / timed_epoch(net, model, batches())
    start = time.perf_counter()
    make().fit(data)
    figures["Lightning fit, 1 epoch (incl. input prep)"] = len(rows) / (time.perf_counter() - start)
    print(f"{name}: {len(rows):,} rows, batch {batch_size}, DataLoader inputs materialised: {mib:,.0f} MiB")
    for label, rate in figures.items():
        print(f"  {label:<42} {rate:>12,.0f} samples/s")
    print(f"  speed-up of index batching over DataLoader: {figures['index batching'] / figures['DataLoader(TensorDataset)']:.1f}x")


def epoch_seconds_by_threads(make: Callable[[], NeuralModel], toy: ToyData, rows: np.ndarray, batch_size: int,
                             counts: list[int], rounds: int) -> dict[int, float]:
    """Best seconds of one training epoch (harness batching) at each torch thread count, interleaved."""
    data = ModelData(toy.features, rows, toy.true_label[rows].astype(np.float64))
    model = make()
    model._fit_inputs(data)
    store = model._store(data, data.target)
    best = {n: float("inf") for n in counts}
    for _ in range(rounds):
        for n in counts:
            set_torch_threads(n)
            net = model._build_net()
            initialise(net, model.params.weight_init)
            timed_epoch(net, model, _take(IndexBatches(store, batch_size, torch.device("cpu"), shuffle=True), 3))
            best[n] = min(best[n], timed_epoch(net, model, IndexBatches(store, batch_size, torch.device("cpu"), shuffle=True)))
    return best


def catboost_seconds_by_threads(rows: int, iterations: int, counts: list[int], rounds: int) -> dict[int, float]:
    """Best CatBoost fit seconds at each `thread_count`, interleaved."""
    toy = make_toy(n_rows=rows, n_users=max(rows // 10, 1), n_numeric=40, seed=1)
    data = ModelData(toy.features, np.arange(rows), toy.true_label.astype(np.float64))
    best = {n: float("inf") for n in counts}
    for _ in range(rounds):
        for n in counts:
            start = time.perf_counter()
            CatBoostModel(iterations=iterations, thread_count=n).fit(data)
            best[n] = min(best[n], time.perf_counter() - start)
    return best


def print_by_threads(name: str, seconds: dict[int, float], unit: str) -> None:
    """One line: seconds at each thread count and each count's speed-up over the first."""
    first = next(iter(seconds))
    cells = " | ".join(f"{n} threads {s:6.2f} s ({seconds[first] / s:4.2f}x)" for n, s in seconds.items())
    print(f"  {name:<9} {unit:<32} {cells}")


def thread_scaling(args: argparse.Namespace) -> None:
    """Print training seconds of the MLP, the CNN-LSTM and CatBoost at each of `args.threads`."""
    toy = make_toy(n_rows=args.rows, n_users=max(args.rows // 20, 1), n_numeric=args.numeric, seq_len=args.seq_len,
                   n_steps=args.steps, seed=0)
    rows = np.arange(args.rows)
    cpu = TrainerSettings()
    print(f"thread counts {args.threads}, best of {args.rounds} interleaved rounds; "
          f"usable cores by affinity and cgroup quota: {usable_cores()}")
    for name, make in (("mlp", lambda: MLPModel(trainer=cpu, batch_size=args.batch_size)),
                       ("cnn_lstm", lambda: CNNLSTMModel(trainer=cpu, batch_size=args.batch_size))):
        seconds = epoch_seconds_by_threads(make, toy, rows, args.batch_size, args.threads, args.rounds)
        print_by_threads(name, seconds, f"1 epoch of {args.rows:,} rows:")
    if args.catboost_rows:
        seconds = catboost_seconds_by_threads(args.catboost_rows, args.catboost_iterations, args.threads, args.rounds)
        print_by_threads("catboost", seconds, f"fit {args.catboost_rows:,} rows, {args.catboost_iterations} trees:")


def _take(batches: Iterable, n: int) -> list:
    """The first `n` batches (warm-up)."""
    out = []
    for batch in batches:
        out.append(batch)
        if len(out) == n:
            break
    return out


def catboost_seconds(rows: int, iterations: int, threads: int) -> None:
    """Print CatBoost's fit seconds on `rows` toy rows."""
    toy = make_toy(n_rows=rows, n_users=max(rows // 10, 1), n_numeric=40, seed=1)
    data = ModelData(toy.features, np.arange(rows), toy.true_label.astype(np.float64))
    model = CatBoostModel(iterations=iterations, thread_count=threads)
    start = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - start
    print(f"catboost: {rows:,} rows x {toy.features.table.shape[1]} columns (2 categorical), {iterations} trees "
          f"depth 6, {threads} threads: fit {seconds:.1f} s ({iterations / seconds:.1f} trees/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--numeric", type=int, default=40)
    parser.add_argument("--seq-len", type=int, default=20)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--catboost-rows", type=int, default=500_000, help="0 skips CatBoost")
    parser.add_argument("--catboost-iterations", type=int, default=300)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, nargs="+", help="compare these thread counts on CPU instead")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of --threads")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.threads:
        thread_scaling(args)
        return
    device = torch.device(args.device)
    trainer = TrainerSettings(accelerator="gpu" if args.device == "cuda" else "cpu",
                              precision="bf16-mixed" if args.device == "cuda" else "32-true")
    set_torch_threads(trainer.torch_threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads (the trainer's), device {device}")
    toy = make_toy(n_rows=args.rows, n_users=max(args.rows // 20, 1), n_numeric=args.numeric, seq_len=args.seq_len,
                   n_steps=args.steps, seed=0)
    rows = np.arange(args.rows)
    compare("mlp", lambda: MLPModel(trainer=trainer, epochs=1, batch_size=args.batch_size), toy, rows,
            args.batch_size, device)
    compare("cnn_lstm", lambda: CNNLSTMModel(trainer=trainer, epochs=1, batch_size=args.batch_size), toy, rows,
            args.batch_size, device)
    if args.catboost_rows:
        catboost_seconds(args.catboost_rows, args.catboost_iterations, threads=trainer.usable_cores())


if __name__ == "__main__":
    main()
