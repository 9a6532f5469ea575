"""Chaos: sweep workers SIGKILLed at random moments, then a rerun; checks that nothing is lost or left silent.

    python benchmarks/chaos.py [--rounds 5] [--kills 10] [--workers 2] [--seed 0] [--keep]

In a temp dir, small synthetic data (one fold, CatBoost with few iterations, short heartbeats):
round after round, `--workers` real `python run.py task=sweep` processes share one SQLite study
storage and one leaderboard (`sweep.submit=false`), each round raising the study budget by
`--trials-per-round`. At a random moment (uniform up to `--max-delay` seconds after the previous
start or kill) a random live worker's process group gets SIGKILL, and a fresh worker takes its
place, until the round's share of the `--kills` is done; kills that find no live worker move to
the next round (rounds are added until every kill is done), and when a round's workers all end
before its kill, later kills come up to 0.8 times as long as they lasted (a fast machine finishes a
round's trials before a delay drawn up to `--max-delay`). Then, after the heartbeat grace
period, one worker reruns the sweep to completion and `task=submit` writes the A/B files.

It prints the kills, the trials by state per study and these checks, one line each:
- no trial is left RUNNING, and no queued retry is left WAITING;
- every FAIL trial was killed (no error recorded) and a later trial of its retry chain (Optuna's
  `failed_trial`), with the same parameters, is COMPLETE;
- confirmed leaderboard entries = COMPLETE trials (by study and trial number, the trial's
  `entry_id`), none twice, none whose trial is not COMPLETE (orphans);
- unconfirmed entries (trials killed after their entry was added) are never ranked;
- no staging leftovers (`atec_automl.staging.STAGING_NAME`) anywhere under the temp dir;
- the submission loads (`load_submission`: versions, checksums), its files pass
  `submission_frame` on the data and it is the best ranked entry's.
Exit status 0 when every check passes, 1 otherwise.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from atec_automl.artifact import load_submission  # noqa: E402
from atec_automl.tasks._experiment import load_data  # noqa: E402
from atec_automl.leaderboard import Leaderboard  # noqa: E402
from atec_automl.search.study import quiet_optuna  # noqa: E402
from atec_automl.staging import STAGING_NAME  # noqa: E402
from atec_automl.submit import BOARDS, submission_frame  # noqa: E402

HEARTBEAT_S = 1
GRACE_S = 3


@dataclass
class Kill:
    """One SIGKILL: when (seconds since the chaos started), which worker, and the trials it was running."""

    at: float
    pid: int
    running: list[str]


@dataclass
class Chaos:
    """The run's settings and what happened."""

    root: Path
    args: argparse.Namespace
    rng: random.Random
    kills: list[Kill] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    spawned: int = 0
    delay_cap: float = 0.0

    def __post_init__(self) -> None:
        self.delay_cap = self.args.max_delay

    def shorten_delays(self, lifetime: float) -> None:
        """The workers all ended `lifetime` seconds after the last start or kill, before the kill came: later
        kills come up to 0.8 of that after a start or kill, so that a fast machine still gets its kills."""
        self.delay_cap = max(1.0, min(self.delay_cap, 0.8 * lifetime))
        print(f"  the workers ended {lifetime:.0f} s after the last start or kill, before the kill: "
              f"kills now come up to {self.delay_cap:.1f} s after one", flush=True)

    @property
    def storage(self) -> str:
        return f"sqlite:///{self.root}/optuna.sqlite"

    def overrides(self) -> list[str]:
        """The settings every command shares: tiny data, one fold, CatBoost, short heartbeats."""
        root = self.root
        return ["experiment=smoke", f"data.rows={self.args.rows}", "sweep.models=[catboost]", "split.n_folds=1",
                "sweep.search_labels=false", "sweep.submit=false", "logger=none",
                f"trainer.workers_per_host={self.args.workers}",
                "sweep.family_overrides.catboost=['model.iterations=100','model.early_stopping_rounds=30','search.params.depth.high=6']",
                f"study.heartbeat_interval={HEARTBEAT_S}", f"study.grace_period={GRACE_S}", "study.max_retry=100",
                f"data.dir={root}/data", f"features.cache_dir={root}/features", f"leaderboard.path={root}/leaderboard.sqlite",
                f"study.storage={self.storage}", f"submit.dir={root}/submissions", f"seed={self.args.seed}",
                "data.seed=0"]  # the same data for every --seed (its early-stopping day holds frauds)

    def spawn(self, task: str, budget: int) -> subprocess.Popen:
        """A `python run.py task=<task>` process in its own process group, output to its own log."""
        self.spawned += 1
        name = f"{self.spawned:03d}-{task}"
        log = (self.root / "logs" / f"{name}.log").open("w")
        command = [sys.executable, "run.py", f"task={task}", *self.overrides(), f"study.n_trials={budget}",
                   f"hydra.run.dir={self.root}/runs/{name}"]
        env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO / "src")}
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def run_to_end(self, task: str, budget: int) -> None:
        """Run one process to its end; stop the chaos with its log's tail if it fails."""
        process = self.spawn(task, budget)
        if process.wait(timeout=1800) != 0:
            log = sorted((self.root / "logs").iterdir())[-1]
            sys.exit(f"chaos: {task} failed (exit {process.returncode}); {log}:\n{log.read_text()[-3000:]}")

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def running_trials(storage_file: Path, pid: int) -> list[str]:
    """`study/trial` of the RUNNING trials whose worker attribute names this process."""
    try:
        with sqlite3.connect(f"file:{storage_file}?mode=ro", uri=True, timeout=30) as connection:
            rows = connection.execute(
                "SELECT s.study_name, t.number FROM trials t JOIN studies s ON s.study_id = t.study_id "
                "JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'worker' "
                "WHERE t.state = 'RUNNING' AND a.value_json LIKE ?", (f'%:{pid}"',)).fetchall()
    except sqlite3.OperationalError:  # no storage or tables yet
        return []
    return [f"{study}/{number}" for study, number in rows]


def kill(chaos: Chaos, worker: subprocess.Popen) -> None:
    """SIGKILL the worker's whole process group and record what it was running."""
    running = running_trials(chaos.root / "optuna.sqlite", worker.pid)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    chaos.kills.append(Kill(chaos.elapsed(), worker.pid, running))
    where = f"running {', '.join(running)}" if running else "outside a trial"
    print(f"kill {len(chaos.kills)}: worker {worker.pid} at {chaos.elapsed():.0f} s, {where}", flush=True)


def chaos_round(chaos: Chaos, budget: int, kills_wanted: int) -> None:
    """Workers on `budget`; kill a random live one at random moments until `kills_wanted` kills or all have ended."""
    workers = [chaos.spawn("sweep", budget) for _ in range(chaos.args.workers)]
    done, since = 0, time.monotonic()
    while done < kills_wanted:
        deadline = since + chaos.rng.uniform(0.5, chaos.delay_cap)
        while time.monotonic() < deadline and any(w.poll() is None for w in workers):
            time.sleep(0.1)
        live = [w for w in workers if w.poll() is None]
        if not live:
            chaos.shorten_delays(time.monotonic() - since)
            break
        victim = chaos.rng.choice(live)
        kill(chaos, victim)
        done, since = done + 1, time.monotonic()
        workers[workers.index(victim)] = chaos.spawn("sweep", budget)
    for worker in workers:
        worker.wait(timeout=1800)
    failed = [f"{w.args[-1]} (exit {w.returncode})" for w in workers if w.returncode != 0]
    if failed:
        sys.exit(f"chaos: workers failed: {', '.join(failed)}; see the logs in {chaos.root / 'logs'}")


def run_chaos(chaos: Chaos) -> int:
    """Prepare the features, run the rounds until every kill is done, rerun to the end and submit; the final budget."""
    args = chaos.args
    (chaos.root / "logs").mkdir(parents=True)
    chaos.run_to_end("features", 1)
    budget, round_number = 0, 0
    while len(chaos.kills) < args.kills and round_number < args.rounds + args.kills:
        round_number += 1
        budget += args.trials_per_round
        rounds_left = max(1, args.rounds - round_number + 1)
        wanted = math.ceil((args.kills - len(chaos.kills)) / rounds_left)
        print(f"round {round_number}: budget {budget}, {wanted} kill(s) wanted", flush=True)
        chaos_round(chaos, budget, wanted)
    time.sleep(GRACE_S + 2 * HEARTBEAT_S)  # the last killed trials' heartbeats go stale
    chaos.run_to_end("sweep", budget)
    chaos.run_to_end("submit", budget)
    return round_number


def compose_config(chaos: Chaos):
    """The config the workers ran with (to load the same data)."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=chaos.overrides())


def trial_checks(studies: dict[str, optuna.Study]) -> tuple[list[str], list[str]]:
    """Per-study state counts, and the failures of the trial checks."""
    lines, failures = [], []
    for name, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        states = collections.Counter(t.state.name for t in trials)
        lines.append(f"study {name}: " + ", ".join(f"{s.name} {states.get(s.name, 0)}" for s in optuna.trial.TrialState))
        left = [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING
                or (t.state == optuna.trial.TrialState.WAITING and "failed_trial" in t.system_attrs)]
        if left:
            failures.append(f"{name}: trials left RUNNING or queued retries left WAITING: {left}")
        by_root = collections.defaultdict(list)
        for t in trials:
            by_root[t.system_attrs.get("failed_trial", t.number)].append(t)
        failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
        retried = 0
        for t in failed:
            if "fail_reason" in t.user_attrs:
                failures.append(f"{name}: trial {t.number} failed with an error: {t.user_attrs['fail_reason']}")
            chain = by_root[t.system_attrs.get("failed_trial", t.number)]
            if any(c.state == optuna.trial.TrialState.COMPLETE and c.number > t.number
                   and t.params.items() <= c.params.items() for c in chain):  # those sampled before the kill
                retried += 1
            else:
                failures.append(f"{name}: FAIL trial {t.number} has no COMPLETE retry "
                                f"(chain {[(c.number, c.state.name) for c in chain]})")
        lines.append(f"  FAIL trials {len(failed)}: {retried} retried with the same parameters to COMPLETE; "
                     f"RUNNING or queued retries left: {len(left)}")
    return lines, failures


def entry_checks(studies: dict[str, optuna.Study], board: Leaderboard) -> tuple[list[str], list[str]]:
    """Confirmed entries against COMPLETE trials: equal sets, no duplicates, no orphans; unconfirmed never ranked."""
    ranked = board.ranked()
    unconfirmed = [e for name in studies for e in board.unconfirmed(name)]
    complete = {(name, t.number): t.user_attrs.get("entry_id") for name, study in studies.items()
                for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    confirmed = collections.Counter((e.study, e.trial) for e in ranked)
    failures = []
    duplicates = [key for key, n in collections.Counter([*confirmed.elements(), *((e.study, e.trial) for e in unconfirmed)]).items() if n > 1]
    if duplicates:
        failures.append(f"entries recorded more than once: {duplicates}")
    orphans = sorted(key for key in confirmed if key not in complete)
    if orphans:
        failures.append(f"orphans (confirmed entries whose trial is not COMPLETE): {orphans}")
    missing = sorted(key for key, entry_id in complete.items() if key not in confirmed)
    if missing:
        failures.append(f"COMPLETE trials without a confirmed entry: {missing}")
    wrong_id = sorted((e.study, e.trial) for e in ranked if (e.study, e.trial) in complete and complete[e.study, e.trial] != e.id)
    if wrong_id:
        failures.append(f"confirmed entries that are not their trial's entry_id: {wrong_id}")
    ranked_unconfirmed = sorted({e.id for e in ranked} & {e.id for e in unconfirmed})
    if ranked_unconfirmed:
        failures.append(f"unconfirmed entries ranked: {ranked_unconfirmed}")
    completed_unconfirmed = sorted((e.study, e.trial) for e in unconfirmed if (e.study, e.trial) in complete)
    if completed_unconfirmed:
        failures.append(f"entries of COMPLETE trials left unconfirmed: {completed_unconfirmed}")
    lines = [f"entries: {len(ranked)} confirmed (ranked) = {len(complete)} COMPLETE trials; "
             f"{len(unconfirmed)} unconfirmed (killed after recording, never ranked); "
             f"duplicates {len(duplicates)}, orphans {len(orphans)}"]
    return lines, failures


def leftovers(root: Path) -> list[Path]:
    """Staging folders and temp files (`.<name>.<8 characters>[.tmp]`) anywhere under `root`."""
    return sorted(Path(folder) / name for folder, dirs, files in os.walk(root) for name in [*dirs, *files]
                  if STAGING_NAME.match(name))


def submission_checks(chaos: Chaos, board: Leaderboard) -> tuple[list[str], list[str]]:
    """The one submission loads, its files pass the writer's validation on the data, and it is the best entry's."""
    folders = sorted((chaos.root / "submissions").iterdir()) if (chaos.root / "submissions").is_dir() else []
    if len(folders) != 1:
        return [], [f"expected one submission folder, found {[f.name for f in folders]}"]
    folder = folders[0]
    failures = []
    try:
        saved = load_submission(folder)
        dataset = load_data(compose_config(chaos).data)
        for name in BOARDS:
            written = pd.read_csv(folder / f"{name}.csv", dtype={dataset.id_column: str})
            frame = submission_frame(dataset, name, written["score"].to_numpy())
            if list(frame[dataset.id_column].astype(str)) != list(written[dataset.id_column]):
                failures.append(f"submission {name}.csv: ids differ from the data's {name} rows")
        best = board.ranked(data=dataset.fingerprint)[0]
        chosen = [e["id"] for e in saved.manifest["entries"]]
        if chosen != [best.id]:
            failures.append(f"submission made of entries {chosen}, the best ranked entry is {best.id}")
    except Exception as error:  # the validators' own message is the finding
        failures.append(f"submission {folder.name}: {type(error).__name__}: {error}")
    rows = ", ".join(f"{b} {json.loads((folder / 'manifest.json').read_text())['files'][b]['rows']} rows" for b in BOARDS)
    return [f"submission {folder.name}: {rows}"], failures


def check(chaos: Chaos) -> list[str]:
    """Print the counts; the failed checks, one line each."""
    quiet_optuna()
    studies = {s.study_name: optuna.load_study(study_name=s.study_name, storage=chaos.storage)
               for s in optuna.get_all_study_summaries(chaos.storage)}
    board = Leaderboard(chaos.root / "leaderboard.sqlite")
    failures = []
    for lines, found in (trial_checks(studies), entry_checks(studies, board), submission_checks(chaos, board)):
        for line in lines:
            print(line)
        failures += found
    left = leftovers(chaos.root)
    print(f"staging leftovers: {len(left)}")
    if left:
        failures.append(f"staging leftovers: {[str(p) for p in left]}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of workers (more if kills are still to do)")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs in total")
    parser.add_argument("--workers", type=int, default=2, help="sweep workers running at once")
    parser.add_argument("--trials-per-round", type=int, default=4, help="the study budget grows by this each round")
    parser.add_argument("--max-delay", type=float, default=30.0, help="a kill comes up to this many seconds after the last start or kill")
    parser.add_argument("--rows", type=int, default=80000, help="synthetic data rows")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kills' moments and victims, and the sweep")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed) for inspection")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="atec-chaos-"))
    chaos = Chaos(root, args, random.Random(args.seed))
    try:
        rounds = run_chaos(chaos)
        in_trial = sum(bool(k.running) for k in chaos.kills)
        print(f"chaos: {rounds} rounds, {len(chaos.kills)} kills ({in_trial} during a trial, "
              f"{len(chaos.kills) - in_trial} outside a trial: starting up or between trials), {args.workers} workers, seed {args.seed}, "
              f"{chaos.elapsed():.0f} s")
        failures = check(chaos)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    for failure in failures:
        print(f"FAILED: {failure}")
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
