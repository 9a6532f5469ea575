"""Training throughput of the models on CPU (or the GPU with --device cuda).

For the MLP and the CNN-LSTM, one epoch of the same network, loss and optimizer is timed two ways
in the same run: the harness's batching (inputs held as tensors on the device, batches gathered by
index, sequences gathered from seq_index + steps per batch) against a plain
`DataLoader(TensorDataset(...), shuffle=True)` loop (for the CNN-LSTM over the materialised
N x (K + 1) x (S + 1) sequence tensor, the naive alternative). A full Lightning `fit` of one epoch
is timed too. CatBoost: fit seconds for --catboost-rows rows and --catboost-iterations trees.

With --threads 1 2, instead: one epoch of each network (harness batching) and one CatBoost fit at
each thread count, the counts interleaved over --rounds rounds (best of each kept), with the ratios.

With --loop, instead: how close the whole training loop gets to the arithmetic. For the MLP, the
samples/s of a real `fit`'s epochs (Lightning; fits of 1 and 1 + `--epochs` epochs, the
difference, so that input preparation and set-up are reported apart) against a plain
`DataLoader(TensorDataset)` loop with torch's default Adam, and against this checkout's index
batching, net and optimizer in a loop without Lightning; and its achieved GFLOP/s (the forward and
backward matrix products of its Linear layers: 6 x batch x inputs x outputs per layer) against a
loop of nothing but those matrix products, same shapes, one thread. For the CNN-LSTM,
sequences/s of a real `fit`'s epochs. With --old-src (the `src/` of another checkout, e.g.
`git archive <commit> src | tar -x -C /tmp/oldmain`) the fits also run with that code, each fit in
a fresh process, old and new alternating over --rounds rounds (best kept), side by side.

    python benchmarks/train.py [--rows 100000] [--batch-size 1024] [--catboost-rows 500000] [--catboost-iterations 300]
    python benchmarks/train.py --threads 1 2 [--rounds 3]
    python benchmarks/train.py --loop [--old-src /tmp/oldmain/src] [--rows 100000] [--epochs 3] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
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
from atec_automl.models.threads import set_torch_threads, usable_cores
from atec_automl.models.trainer import TrainerSettings
from atec_automl.testing import ToyData, make_toy
from child import last_line


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
    model.fit_inputs(data)
    store = model.input_store(data, data.target)
    everything = store.gather(torch.arange(len(rows), device=device), training=False)
    materialised = {k: v.cpu() for k, v in everything.items() if k != "weight"}
    mib = sum(v.numel() * v.element_size() for v in materialised.values()) / 2 ** 20
    figures = {}
    for label, batches in (("index batching", lambda: IndexBatches(store, batch_size, device, shuffle=True)),
                           ("DataLoader(TensorDataset)", lambda: dataloader_batches(materialised, batch_size, device))):
        net = model.build_net().to(device)
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
    model.fit_inputs(data)
    store = model.input_store(data, data.target)
    best = {n: float("inf") for n in counts}
    for _ in range(rounds):
        for n in counts:
            set_torch_threads(n)
            net = model.build_net()
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


def toy_for(args: argparse.Namespace) -> ToyData:
    """The toy timeline every mode trains on."""
    return make_toy(n_rows=args.rows, n_users=max(args.rows // 20, 1), n_numeric=args.numeric, seq_len=args.seq_len,
                    n_steps=args.steps, seed=0)


def fit_rate(family: str, args: argparse.Namespace) -> dict:
    """Training samples/s of `fit` on one thread (no validation), the fixed seconds per fit, the MLP's layer shapes.

    Two fits, of 1 and 1 + `--epochs` epochs: the rate is the extra epochs' rows over the extra
    seconds, the fixed part (input preparation, Lightning's set-up) what the 1-epoch fit spent beyond its epoch.
    Lightning is imported first: `fit` imports it on first use, and those seconds (about 4) would otherwise
    fall on the 1-epoch fit alone and make the difference of the two fits meaningless.
    """
    import lightning.pytorch  # noqa: F401

    set_torch_threads(1)
    toy = toy_for(args)
    rows = np.arange(args.rows)
    data = ModelData(toy.features, rows, toy.true_label[rows].astype(np.float64))
    model_class = MLPModel if family == "mlp" else CNNLSTMModel
    seconds = {}
    for epochs in (1, 1 + args.epochs):
        model = model_class(trainer=TrainerSettings(), epochs=epochs, batch_size=args.batch_size)
        start = time.perf_counter()
        model.fit(data)
        seconds[epochs] = time.perf_counter() - start
    rate = args.epochs * args.rows / (seconds[1 + args.epochs] - seconds[1])
    linear = [[m.in_features, m.out_features] for m in model.net.modules() if isinstance(m, torch.nn.Linear)]
    return {"samples_per_s": rate, "fixed_s": seconds[1] - args.rows / rate, "linear": linear}


def fit_rate_in_child(family: str, args: argparse.Namespace, src: Path) -> dict:
    """`fit_rate` in a fresh process importing `atec_automl` from `src`."""
    command = ["--child-fit", family, "--rows", str(args.rows), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size), "--numeric", str(args.numeric), "--seq-len", str(args.seq_len),
               "--steps", str(args.steps)]
    return json.loads(last_line(__file__, command, src))


def flops_per_sample(linear: list[list[int]]) -> float:
    """Forward and backward multiply-adds of the Linear layers per sample, as FLOPs (3 products x 2 per layer)."""
    return float(sum(6 * fan_in * fan_out for fan_in, fan_out in linear))


def matmul_loop_rate(linear: list[list[int]], batch_size: int, batches: int) -> float:
    """Samples/s of a loop of only the Linear layers' forward and backward products (one thread)."""
    set_torch_threads(1)
    weights = [torch.randn(fan_out, fan_in) for fan_in, fan_out in linear]
    inputs = [torch.randn(batch_size, fan_in) for fan_in, _ in linear]
    grads = [torch.randn(batch_size, fan_out) for _, fan_out in linear]
    outputs = [torch.empty(batch_size, fan_out) for _, fan_out in linear]
    grad_inputs = [torch.empty(batch_size, fan_in) for fan_in, _ in linear]
    grad_weights = [torch.empty(fan_out, fan_in) for fan_in, fan_out in linear]

    def one_pass() -> None:
        for w, x, g, y, gx, gw in zip(weights, inputs, grads, outputs, grad_inputs, grad_weights):
            torch.mm(x, w.t(), out=y)
            torch.mm(g, w, out=gx)
            torch.mm(g.t(), x, out=gw)

    for _ in range(5):
        one_pass()
    start = time.perf_counter()
    for _ in range(batches):
        one_pass()
    return batches * batch_size / (time.perf_counter() - start)


def mlp_inputs(args: argparse.Namespace) -> tuple[MLPModel, ModelData, object]:
    """One thread, the toy rows, an MLP with fitted inputs and their store: what both loop references start from."""
    set_torch_threads(1)
    toy = toy_for(args)
    rows = np.arange(args.rows)
    data = ModelData(toy.features, rows, toy.true_label[rows].astype(np.float64))
    model = MLPModel(trainer=TrainerSettings(), batch_size=args.batch_size)
    model.fit_inputs(data)
    return model, data, model.input_store(data, data.target)


def dataloader_loop_rate(args: argparse.Namespace) -> float:
    """Samples/s of one MLP epoch fed by DataLoader(TensorDataset) with torch's default (per-tensor) Adam."""
    model, data, store = mlp_inputs(args)
    tensors = {k: v for k, v in store.gather(torch.arange(args.rows), training=False).items() if k != "weight"}
    net = model.build_net()
    initialise(net, model.params.weight_init)
    optimizer = torch.optim.Adam(net.parameters(), lr=model.params.learning_rate)
    net.train()
    start = time.perf_counter()
    for batch in dataloader_batches(tensors, args.batch_size, torch.device("cpu")):
        optimizer.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(net(batch), batch["target"]).backward()
        optimizer.step()
    return args.rows / (time.perf_counter() - start)


def plain_loop_rate(args: argparse.Namespace) -> float:
    """Samples/s of one MLP epoch of this checkout's batching, net and optimizer without Lightning."""
    model, data, store = mlp_inputs(args)
    net = model.build_net()
    initialise(net, model.params.weight_init)
    return args.rows / timed_epoch(net, model, IndexBatches(store, args.batch_size, torch.device("cpu"), shuffle=True))


def loop_efficiency(args: argparse.Namespace) -> None:
    """Print the MLP's fit against the DataLoader loop and the matmul loop, and CNN-LSTM sequences/s; old beside new."""
    sources = {"new": Path(__file__).resolve().parents[1] / "src"} | ({"old": args.old_src} if args.old_src else {})
    best: dict[str, dict[str, float]] = {family: {} for family in ("mlp", "cnn_lstm")}
    linear: list[list[int]] = []
    fixed: dict[str, dict[str, float]] = {family: {} for family in best}
    reference = {"DataLoader": 0.0, "matmul": 0.0, "plain": 0.0}
    for _ in range(args.rounds):
        for family in best:
            for name, src in sources.items():
                figures = fit_rate_in_child(family, args, src)
                best[family][name] = max(best[family].get(name, 0.0), figures["samples_per_s"])
                fixed[family][name] = min(fixed[family].get(name, np.inf), figures["fixed_s"])
                linear = figures["linear"] if family == "mlp" and name == "new" else linear
        reference["DataLoader"] = max(reference["DataLoader"], dataloader_loop_rate(args))
        reference["plain"] = max(reference["plain"], plain_loop_rate(args))
        reference["matmul"] = max(reference["matmul"], matmul_loop_rate(linear, args.batch_size, args.rows // args.batch_size))
    flops = flops_per_sample(linear)
    print(f"training loop, {args.rows:,} toy rows, batch {args.batch_size}, {args.epochs} epochs per fit, 1 thread, "
          f"best of {args.rounds} alternating rounds (load average {os.getloadavg()[0]:.1f})")
    print(f"mlp: Linear layers {linear}, {flops / 1e6:.2f} MFLOP per sample (forward + backward products)")
    print(f"  {'plain matmul loop, same shapes':<40} {reference['matmul']:>10,.0f} samples/s {reference['matmul'] * flops / 1e9:6.1f} GFLOP/s")
    print(f"  {'DataLoader(TensorDataset) + default Adam':<40} {reference['DataLoader']:>10,.0f} samples/s {reference['DataLoader'] * flops / 1e9:6.1f} GFLOP/s")
    print(f"  {'index batching loop, no Lightning (new)':<40} {reference['plain']:>10,.0f} samples/s {reference['plain'] * flops / 1e9:6.1f} GFLOP/s")
    for name, rate in best["mlp"].items():
        print(f"  {'fit epochs (' + name + ')':<40} {rate:>10,.0f} samples/s {rate * flops / 1e9:6.1f} GFLOP/s = "
              f"{rate / reference['matmul']:.2f} of the matmul loop, {rate / reference['DataLoader']:.1f}x the DataLoader loop; "
              f"+{fixed['mlp'][name]:.2f} s per fit")
    print("cnn_lstm:")
    for name, rate in best["cnn_lstm"].items():
        print(f"  {'fit epochs (' + name + ')':<40} {rate:>10,.0f} sequences/s; +{fixed['cnn_lstm'][name]:.2f} s per fit")
    if args.old_src:
        for family, rates in best.items():
            print(f"  {family}: new/old {rates['new'] / rates['old']:.2f}x")


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
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of --threads or --loop")
    parser.add_argument("--loop", action="store_true", help="the fit against a DataLoader loop and a matmul loop")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit with --loop")
    parser.add_argument("--old-src", type=Path, help="with --loop: the src/ directory of the code to compare against")
    parser.add_argument("--child-fit", choices=["mlp", "cnn_lstm"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_fit:
        print(json.dumps(fit_rate(args.child_fit, args)))
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.loop:
        loop_efficiency(args)
        return
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
