"""Online scoring latency and throughput of `task=serve`, beside the offline batch scoring of the same model.

    python benchmarks/serve.py [--rows 100000] [--events 10000] [--single 1000] [--batch 1000] [--families catboost mlp]
                               [--before REV] [--client plain|httpx]

For each family: fits a small model on synthetic data and writes its refit submission; holds the
last `--events` events of test_b out of the history; starts the service (`python run.py task=serve`,
uvicorn on loopback) on the rest and replays the held-out events through HTTP: the first
`--single` one request per event (p50/p95/p99 latency per event as the client sees it, events/s, and
the service process's CPU time per event with the cores it kept busy, all its threads counted),
the rest in requests of `--batch` events (events/s), and the service's resident memory once warm
and after the replay. Then the offline batch computation of the same submission over the same
timeline (load + features + predict, what task=predict does) in the same run, and the ratio. Each
service starts once this process is idle (`settle`). `--before REV` also replays the same events
through the service of an earlier commit (checked out into a temporary git worktree; it must read
this checkout's submissions), right before this checkout's, and prints the ratios. Prints `uptime`
beside the figures: other jobs on the machine move them.

The requests go through one kept-alive `http.client` connection of the standard library (`--client
plain`): `httpx` spends about 0.6 ms of Python per request on the client side (measured against a
do-nothing FastAPI route on loopback: p50 1.2 ms with httpx, 0.6 ms with `http.client`), which is the
client's latency, not the service's. `--client httpx` measures through httpx instead.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from atec_automl.artifact import load_submission
from atec_automl.data.load import load_event_files
from atec_automl.evaluation import build_entry
from atec_automl.leaderboard import Leaderboard
from atec_automl.pipeline import fit_fold, predict_boards
from atec_automl.submit import SubmitSettings, make_submission, write_submission
from atec_automl.tasks._experiment import entry_recipe, plain, prepare, recipe
from smoke_rate import checkout, remove_checkout

REPO = Path(__file__).resolve().parents[1]
FAMILY_OVERRIDES = {
    "catboost": ["model=catboost", "model.iterations=200", "model.early_stopping_rounds=30", "model.thread_count=1"],
    "mlp": ["model=mlp", "model.epochs=3", "trainer.cpu_threads=1"],
    "cnn_lstm": ["model=cnn_lstm", "model.epochs=2", "trainer.cpu_threads=1"],
}


def make_submission_folder(root: Path, rows: int, family: str) -> tuple[Path, object]:
    """Fit `family` on the last fold of `rows` synthetic rows, record it and write its refit submission."""
    overrides = [f"data.rows={rows}", "features.cache_dir=null", "logger=none", "split.n_folds=1",
                 "leaderboard.bootstrap=0", f"leaderboard.path={root / 'leaderboard.sqlite'}",
                 f"submit.dir={root / 'submissions'}", *FAMILY_OVERRIDES[family]]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    prepared = prepare(cfg)
    fitted = recipe(cfg)
    result, model = fit_fold(fitted, prepared, prepared.folds[-1], root / "work" / family)
    entry = build_entry([result], 0, family=fitted.family, study=family, trial=0, params={},
                        config_yaml=OmegaConf.to_yaml(cfg), data_fingerprint=prepared.dataset.fingerprint,
                        split="last", policy="as_black", test_scores=predict_boards(model, prepared))
    entry_id = Leaderboard(cfg.leaderboard.path).add(entry)
    settings = SubmitSettings(Path(cfg.submit.dir), entry=entry_id, name=family, refit=True)
    submission = make_submission(settings, prepared, Leaderboard(cfg.leaderboard.path), root / "work" / family,
                                 entry_recipe=lambda entry: entry_recipe(cfg, entry))
    return write_submission(submission, prepared, settings, plain(cfg.data.format)), cfg


def hold_out(cfg, root: Path, events: int) -> tuple[list[Path], Path, list[dict]]:
    """History files and the last `events` events of test_b (a CSV file and records)."""
    test_b = pd.read_parquet(cfg.data.test_b)
    test_b = test_b.iloc[np.argsort(test_b["gmt_occur"].to_numpy(), kind="stable")]
    events = min(events, len(test_b) - 1)
    head, tail = root / "test_b_head.parquet", root / "held_out.csv"
    test_b.iloc[:-events].to_parquet(head, index=False)
    test_b.iloc[-events:].to_csv(tail, index=False)
    records = pd.read_csv(tail, dtype=str, keep_default_na=False).to_dict("records")
    return [Path(cfg.data.train).resolve(), Path(cfg.data.test_a).resolve(), head], tail, records


def start_service(submission: Path, history: list[Path], root: Path,
                  code: Path = REPO) -> tuple[subprocess.Popen, httpx.Client]:
    """`python run.py task=serve` of the code at `code` on a free loopback port; returns when /health answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [sys.executable, "run.py", "task=serve", f"serve.submission={submission}", f"serve.port={port}",
            f"serve.history=[{','.join(str(p) for p in history)}]", f"serve.state_dir={root / 'state'}",
            f"hydra.run.dir={root / 'run'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(code / "src")}
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "service.log", "w") as log:
        process = subprocess.Popen(args, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
    for _ in range(1200):
        if process.poll() is not None:
            raise SystemExit(f"the service of {code} exited: {(root / 'service.log').read_text()[-2000:]}")
        try:
            if client.get("/health").status_code == 200:
                return process, client
        except httpx.TransportError:
            time.sleep(0.25)
    raise SystemExit(f"the service of {code} did not answer /health in 300 s")


class PlainClient:
    """POSTs JSON through one kept-alive `http.client` connection: the lightest client the standard library has."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def post(self, path: str, body: object) -> None:
        """POST `body` as JSON; raises on a status other than 200."""
        self.connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        answer = self.connection.getresponse()
        content = answer.read()
        if answer.status != 200:
            raise SystemExit(f"POST {path}: {answer.status} {content[:500]!r}")


class HttpxClient:
    """The same POST through httpx."""

    def __init__(self, client: httpx.Client):
        self.client = client

    def post(self, path: str, body: object) -> None:
        """POST `body` as JSON; raises on a status other than 200."""
        self.client.post(path, json=body).raise_for_status()


def replay(client: PlainClient | HttpxClient, records: list[dict], single: int, batch: int,
           service_cpu: Callable[[], float]) -> dict:
    """Latencies of the single-event requests, the service's CPU seconds (all its threads) over them, and
    throughput of both kinds."""
    latencies = []
    started, cpu_started = time.perf_counter(), service_cpu()
    for record in records[:single]:
        t0 = time.perf_counter()
        client.post("/score", record)
        latencies.append(time.perf_counter() - t0)
    single_seconds, single_cpu = time.perf_counter() - started, service_cpu() - cpu_started
    rest = records[single:]
    started = time.perf_counter()
    for start in range(0, len(rest), batch):
        client.post("/score", rest[start:start + batch])
    batch_seconds = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return {"single": len(latencies), "p50": np.percentile(ms, 50), "p95": np.percentile(ms, 95),
            "p99": np.percentile(ms, 99), "single_eps": len(latencies) / single_seconds,
            "single_cpu_ms": single_cpu * 1000 / len(latencies), "single_cores": single_cpu / single_seconds,
            "batched": len(rest), "batch_eps": len(rest) / batch_seconds if rest else float("nan")}


def offline(submission: Path, history: list[Path], events: Path) -> tuple[int, float]:
    """Events and seconds of task=predict's work: load history + events, features, predict."""
    started = time.perf_counter()
    saved = load_submission(submission)
    dataset = load_event_files(saved.file_format(), history, events)
    rows = dataset.part_rows("test_a")
    saved.predict(dataset, rows)
    return len(rows), time.perf_counter() - started


IDLE_CORES = 0.05
"""Cores a process may keep busy and still count as idle (`settle`)."""


def settle(limit_s: float = 60.0) -> float:
    """Wait (at least a second, at most `limit_s`) until this process is idle, so that none of its threads takes a
    core from the service measured next; returns the cores it kept busy in its last second. Without the wait, the
    second family's first service (right after the first family's offline scoring) measured 1.2-1.3x slower single
    events and 1.7-1.9x slower batches than the same code measured next, in both runs of both families (alone, it
    did not)."""
    me, deadline = psutil.Process(), time.monotonic() + limit_s
    while True:
        before = sum(me.cpu_times()[:2])
        time.sleep(1.0)
        busy = sum(me.cpu_times()[:2]) - before
        if busy < IDLE_CORES or time.monotonic() > deadline:
            return busy


def online_figures(submission: Path, history: list[Path], records: list[dict], root: Path, code: Path,
                   single: int, batch: int, client_kind: str) -> dict:
    """Replay the held-out events through a fresh service of the code at `code`, once this process is idle."""
    busy = settle()
    if busy >= IDLE_CORES:
        print(f"note: this process still kept {busy:.2f} cores busy before the service of {code} started")
    process, client = start_service(submission, history, root, code)
    service = psutil.Process(process.pid)
    try:
        port = client.base_url.port
        warm_mib = service.memory_info().rss / 2**20
        figures = replay(PlainClient(port) if client_kind == "plain" else HttpxClient(client), records, single, batch,
                         lambda: sum(service.cpu_times()[:2]))
        return {**figures, "warm_mib": warm_mib, "replayed_mib": service.memory_info().rss / 2**20}
    finally:
        process.terminate()
        process.wait(timeout=60)


def print_online(family: str, side: str, online: dict, batch: int) -> None:
    """One service's figures, two lines."""
    print(f"{family:9s} {side}online single: {online['single']:,} events, latency per event p50 {online['p50']:.1f} ms, "
          f"p95 {online['p95']:.1f} ms, p99 {online['p99']:.1f} ms, {online['single_eps']:.1f} events/s; service CPU "
          f"{online['single_cpu_ms']:.2f} ms per event, {online['single_cores']:.2f} cores busy")
    print(f"{family:9s} {side}online batches of {batch:,}: {online['batched']:,} events, "
          f"{online['batch_eps']:.1f} events/s; service memory (RSS) {online['warm_mib']:,.0f} MiB warm, "
          f"{online['replayed_mib']:,.0f} MiB after the replay")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=1_000, help="events sent one per request (the rest in batches)")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--families", nargs="+", default=["catboost", "mlp"])
    parser.add_argument("--before", default=None, help="an earlier commit whose service runs beside this one")
    parser.add_argument("--client", default="plain", choices=["plain", "httpx"],
                        help="the HTTP client of the replay: http.client (plain) or httpx")
    args = parser.parse_args()
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"{args.rows:,} synthetic rows; {args.events:,} held-out events: {args.single:,} one per request, "
          f"the rest in requests of {args.batch:,}; client {args.client}")
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        earlier = checkout(args.before, Path(tmp) / "before") if args.before else None
        try:
            for family in args.families:
                bench_family(family, args, Path(tmp) / family, earlier)
        finally:
            if earlier is not None:
                remove_checkout(earlier)
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


def bench_family(family: str, args: argparse.Namespace, root: Path, earlier: Path | None) -> None:
    """One family's submission, its replay through the service (the earlier commit's first) and offline."""
    root.mkdir()
    submission, cfg = make_submission_folder(root, args.rows, family)
    history, events, records = hold_out(cfg, root, args.events)
    if earlier is not None:
        before = online_figures(submission, history, records, root / "before", earlier, args.single, args.batch,
                              args.client)
        print_online(family, f"{args.before} ", before, args.batch)
    online = online_figures(submission, history, records, root / "after", REPO, args.single, args.batch, args.client)
    print_online(family, "", online, args.batch)
    if earlier is not None:
        print(f"{family:9s} this checkout / {args.before}: single events/s {online['single_eps'] / before['single_eps']:.2f}x, "
              f"p99 {online['p99'] / before['p99']:.2f}x, batched events/s {online['batch_eps'] / before['batch_eps']:.2f}x")
    n, seconds = offline(submission, history, events)
    print(f"{family:9s} offline batch (task=predict's load + features + predict over the same timeline): "
          f"{n:,} events in {seconds:.1f} s, {n / seconds:.1f} events/s "
          f"= {n / seconds / online['single_eps']:.1f}x the single-event service")


if __name__ == "__main__":
    main()
