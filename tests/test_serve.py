"""task=serve: a real uvicorn service on loopback, driven by a real HTTP client.

Parity: the last events of test_b, streamed one by one, get exactly the features and scores the
offline batch computation gives them over the same timeline (history files, then these events),
for each family, at second and at hour resolution; a killed service loses no acknowledged event.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from atec_automl.artifact import load_submission
from atec_automl.data.dataset import Dataset
from atec_automl.data.load import load_event_files
from atec_automl.reviews import ReviewStore
from atec_automl.serving import OnlineScorer
from saved_submissions import prepared_data, refit_submission, small_config

REPO = Path(__file__).resolve().parents[1]
STREAMED = 60


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    """`python run.py task=serve ...` as a subprocess, and an HTTP client for it."""

    def __init__(self, submission: Path, history: list[Path], root: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "run.py", "task=serve", f"serve.submission={submission}",
                     f"serve.history=[{','.join(str(p) for p in history)}]", f"serve.port={self.port}",
                     f"serve.state_dir={root / 'state'}", f"leaderboard.reviews={root / 'reviews.sqlite'}",
                     f"hydra.run.dir={root / 'run'}"]
        self.process: subprocess.Popen | None = None
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def start(self) -> "Service":
        """Start and wait until /health answers."""
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(self.args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited: {self.process.stdout.read().decode()}")
            try:
                if self.client.get("/health").status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("the service did not come up in 120 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop if running."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.client.close()


def split_test_b(cfg, root: Path, streamed: int) -> tuple[list[Path], Path, list[dict]]:
    """History files (train, test_a, test_b without its last events) and those events as a CSV file and as records."""
    test_b = pd.read_parquet(cfg.data.test_b)
    test_b = test_b.iloc[np.argsort(test_b["gmt_occur"].to_numpy(), kind="stable")]
    head = root / "test_b_head.parquet"
    test_b.iloc[:-streamed].to_parquet(head, index=False)
    events = root / "streamed.csv"
    test_b.iloc[-streamed:].to_csv(events, index=False)
    records = pd.read_csv(events, dtype=str, keep_default_na=False).to_dict("records")
    return [Path(cfg.data.train), Path(cfg.data.test_a), head], events, records


def offline(submission: Path, history: list[Path], events: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The batch features and scores of the events file over history + events."""
    saved = load_submission(submission)
    dataset = load_event_files(saved.file_format(), history, events)
    rows = dataset.part_rows("test_a")
    features = saved.features(dataset)
    return features[0].table.iloc[rows].reset_index(drop=True), saved.score(features, rows)


def stream(service: Service, records: list[dict]) -> tuple[list[dict], list[float]]:
    """Score each record alone, with its feature row."""
    rows, scores = [], []
    for record in records:
        answer = service.client.post("/score", params={"features": "true"}, json=record)
        assert answer.status_code == 200, answer.text
        rows += answer.json()["features"]
        scores += [s["score"] for s in answer.json()["scores"]]
    return rows, scores


@pytest.mark.slow
@pytest.mark.parametrize(("family", "resolution"), [
    ("catboost", "second"), ("mlp", "second"), ("cnn_lstm", "second"), ("catboost", "hour"), ("mlp", "hour"),
])
def test_streamed_events_get_the_batch_features_and_scores(tmp_path_factory, family: str, resolution: str) -> None:
    root = tmp_path_factory.mktemp(f"serve-{family}-{resolution}")
    cfg = small_config(root, family, resolution, data_root=tmp_path_factory.getbasetemp())
    _, submission = refit_submission(cfg, prepared_data(cfg), family)
    history, events, records = split_test_b(cfg, root, STREAMED)
    service = Service(submission, history, root).start()
    try:
        half = STREAMED // 2
        first_rows, first_scores = stream(service, records[:half])
        service.kill()
        service.start()
        assert service.client.get("/health").json()["events"] == 40_000 - STREAMED + half
        later_rows, later_scores = stream(service, records[half:])
        metrics = service.client.get("/metrics").json()
    finally:
        service.stop()
    batch_features, batch_scores = offline(submission, history, events)
    online = pd.DataFrame(first_rows + later_rows)[batch_features.columns].to_numpy(dtype=np.float64)
    batch = batch_features.to_numpy(dtype=np.float64)
    assert np.array_equal(np.isnan(online), np.isnan(batch))
    assert np.nanmax(np.abs(online - batch)) <= 1e-6
    online_scores = np.asarray(first_scores + later_scores)
    np.testing.assert_allclose(online_scores, batch_scores, rtol=1e-6, atol=1e-9)
    assert (np.argsort(online_scores, kind="stable") == np.argsort(batch_scores, kind="stable")).all()
    assert metrics["events_scored"] == STREAMED - half and metrics["latency_ms_per_event"]["p99"] > 0


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A CatBoost service on the history, and the records of the events after it."""
    root = tmp_path_factory.mktemp("serve-checks")
    cfg = small_config(root, "catboost", data_root=tmp_path_factory.getbasetemp())
    _, submission = refit_submission(cfg, prepared_data(cfg), "cb")
    history, _, records = split_test_b(cfg, root, 20)
    service = Service(submission, history, root).start()
    yield service, records, root
    service.stop()


@pytest.mark.parametrize(("edit", "status", "message"), [
    (lambda r: {k: v for k, v in r.items() if k != "user_id"}, 422, r"column 'user_id', row 1: missing required field"),
    (lambda r: {**r, "gmt_occur": "2018-02-06 25:00:00"}, 422, r"column 'gmt_occur', row 1: unparseable time"),
    (lambda r: {**r, "gmt_occur": "2017-09-05 00:00:00"}, 409, r"is older than the latest accepted time"),
    (lambda r: {**r, "amt": "ten"}, 422, r"column 'amt', row 1: non-numeric value: 'ten'"),
    (lambda r: {**r, "gmt_occur": "3018-02-10 10:00:00"}, 422,
     r"column 'gmt_occur', row 1: event '.+' at 3018-02-10 10:00:00 is more than 24 h ahead of this machine's clock"),
    (lambda r: [r, {**r, "event_id": "later", "gmt_occur": "2918-02-10 10"}], 422,
     r"column 'gmt_occur', row 2: event 'later' at 2918-02-10 10:00:00 is more than 24 h ahead"),
    (lambda r: None, 422, r"^file POST /score, row 1: an event must be an object of fields, got null$"),
    (lambda r: [1, 2], 422, r"^file POST /score, row 1: an event must be an object of fields, got a number$"),
    (lambda r: [r, "event"], 422, r"^file POST /score, row 2: an event must be an object of fields, got a string$"),
])
def test_a_bad_event_gets_one_line_and_changes_nothing(running, edit, status: int, message: str) -> None:
    service, records, _ = running
    before = service.client.get("/health").json()
    answer = service.client.post("/score", content=json.dumps(edit(records[0])),
                                 headers={"Content-Type": "application/json"})
    assert answer.status_code == status
    error = answer.json()["error"]
    assert "\n" not in error and __import__("re").search(message, error), error
    assert service.client.get("/health").json() == before


def test_an_accepted_id_is_refused_the_second_time_and_feedback_is_recorded(running) -> None:
    service, records, root = running
    assert service.client.post("/score", json=records[1:3]).status_code == 200
    again = service.client.post("/score", json=records[2])
    assert again.status_code == 409 and "already accepted" in again.json()["error"]
    ids = [records[1]["event_id"], records[2]["event_id"]]
    answer = service.client.post("/feedback", json={"event_ids": ids, "labels": [1, 0], "source": "analyst"})
    assert answer.status_code == 200, answer.text
    assert ReviewStore(root / "reviews.sqlite").read() == {ids[0]: 1, ids[1]: 0}
    unknown = service.client.post("/feedback", json={"event_ids": ["nope"], "labels": [1]})
    assert unknown.status_code == 422 and "never scored" in unknown.json()["error"]
    twice = service.client.post("/feedback", json={"event_ids": [ids[0], ids[0]], "labels": [0, 1]})
    assert twice.status_code == 422 and twice.json()["error"] == f"event_id {ids[0]!r} is given twice (one label per event and request)"
    boolean = service.client.post("/feedback", json={"event_ids": [ids[0]], "labels": [True]})
    assert boolean.status_code == 422 and boolean.json()["error"] == "label true is not 0 or 1"
    assert json.loads(service.client.get("/metrics").text)["feedback_labels"] == 2


def test_a_second_service_on_the_same_state_folder_stops_before_loading_anything(running) -> None:
    """Two services appending to one log would interleave their timelines: the second stops in one line."""
    service, _, root = running
    args = [f"serve.port={free_port()}" if a.startswith("serve.port=") else a for a in service.args]
    second = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, second.stdout + second.stderr
    assert second.stderr.strip().splitlines() == [
        f"error: serve.state_dir={root / 'state'}: another service (pid {service.process.pid}) is using it; "
        "give each service its own state_dir"]
    assert "timeline" not in second.stdout and service.client.get("/health").status_code == 200


def test_the_features_flag_reads_as_a_boolean_and_a_bad_value_gets_one_line(running) -> None:
    """`?features=` takes pydantic's boolean spellings, in any case; another value is refused in one line and
    changes nothing; the OpenAPI page still documents the parameter."""
    service, records, _ = running
    before = service.client.get("/health").json()
    bad = service.client.post("/score", params={"features": "maybe"}, json=records[3])
    assert bad.status_code == 422 and bad.json()["error"] == "query parameter features='maybe' is not true or false"
    assert service.client.get("/health").json() == before
    with_rows = service.client.post("/score", params={"features": "1"}, json=records[3])
    without = service.client.post("/score", params={"features": "FALSE"}, json=records[4])
    assert with_rows.status_code == 200 and without.status_code == 200, (with_rows.text, without.text)
    assert len(with_rows.json()["features"]) == 1 and "features" not in without.json()
    parameters = service.client.get("/openapi.json").json()["paths"]["/score"]["post"]["parameters"]
    assert [(p["name"], p["in"], p["schema"]["type"]) for p in parameters] == [("features", "query", "boolean")]


def crafted_events(records: list[dict], history: list[Path]) -> list[dict]:
    """Events of the busiest user over nine days after the history, made to reach every edge of the state:
    whole-hour times followed by events of the same hour to the second (an hour event is inserted after
    them in its groups), ties within a second, a window edge hit exactly (24 h after an hour's end),
    history that falls out of every window, a new device and payee, unseen category values, a missing
    amount and key fields, and a user never seen before."""
    past = pd.concat([pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p) for p in history])
    user = past["user_id"].value_counts().index[0]
    base = pd.Timestamp(past["gmt_occur"].astype(str).str[:10].max()) + pd.Timedelta(days=8)
    day = lambda offset: (base + pd.Timedelta(days=offset)).strftime("%Y-%m-%d")  # noqa: E731
    plan = [  # (time, user, device, payee, pay_scene, amount)
        (f"{day(0)} 10", user, "dev-new", "payee-new", "scene-never-seen", "100"),
        (f"{day(0)} 10:15:00", user, "dev-new", "payee-new", "scene-never-seen", "50.25"),
        (f"{day(0)} 10:15:00", user, "", "payee-new", "", "70"),
        (f"{day(0)} 10:59:59", user, "dev-other", "", "another-new-scene", ""),
        (f"{day(0)} 11:00:00", user, "dev-new", "payee-new", "scene-never-seen", "1e6"),
        (f"{day(0)} 11", user, "dev-new", "payee-new", "scene-never-seen", "3"),
        (f"{day(1)} 11:00:00", user, "dev-new", "payee-new", "scene-never-seen", "4"),
        (f"{day(1)} 11:00:00", "user-never-seen", "dev-new", "payee-new", "scene-never-seen", "5"),
        (f"{day(8)} 10:30:00", user, "dev-new", "payee-new", "another-new-scene", "6"),
        (f"{day(8)} 11:00:01", user, "dev-other", "payee-new", "scene-never-seen", "7"),
    ]
    out = []
    for number, (time_, who, device, payee, scene, amount) in enumerate(plan):
        out.append({**records[0], "event_id": f"crafted-{number}", "gmt_occur": time_, "user_id": who,
                    "device_sign": device, "opposing_id": payee, "pay_scene": scene, "amt": amount}
                   | ({"dt": time_[:10]} if "dt" in records[0] else {}))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", ["catboost", "mlp"])
def test_the_per_entity_state_gives_the_batch_features_at_every_edge(tmp_path_factory, family: str) -> None:
    """The incremental state against the batch features on the crafted events, streamed one by one
    and then (after a restart that replays the log) in one batch."""
    root = tmp_path_factory.mktemp(f"serve-edges-{family}")
    cfg = small_config(root, family, "hour", data_root=tmp_path_factory.getbasetemp())
    _, submission = refit_submission(cfg, prepared_data(cfg), family)
    history, _, records = split_test_b(cfg, root, 5)
    crafted = crafted_events(records, history)
    events = root / "crafted.csv"
    pd.DataFrame(crafted).to_csv(events, index=False)
    service = Service(submission, history, root).start()
    try:
        first_rows, first_scores = stream(service, crafted[:6])
        service.kill()
        service.start()
        answer = service.client.post("/score", params={"features": "true"}, json=crafted[6:])
        assert answer.status_code == 200, answer.text
    finally:
        service.stop()
    batch_features, batch_scores = offline(submission, history, events)
    rows = first_rows + answer.json()["features"]
    online = pd.DataFrame(rows)[batch_features.columns].to_numpy(dtype=np.float64)
    batch = batch_features.to_numpy(dtype=np.float64)
    assert np.array_equal(np.isnan(online), np.isnan(batch)), list(batch_features.columns[(np.isnan(online) != np.isnan(batch)).any(0)])
    difference = np.nan_to_num(np.abs(online - batch))
    assert difference.max() <= 1e-6, list(batch_features.columns[difference.max(0) > 1e-6])
    scores = np.asarray(first_scores + [s["score"] for s in answer.json()["scores"]])
    np.testing.assert_allclose(scores, batch_scores, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_a_batch_in_one_post_gets_what_the_same_events_get_one_by_one(tmp_path_factory) -> None:
    """The vectorised batch path against the one-event path: the last real events and the crafted ones (one
    busy user's events inside the batch, ties within a second, hour-written times among same-hour seconds,
    exact window edges, unseen values, missing fields), posted to one service one by one and to another
    in one request, get identical feature rows and scores, which are the offline batch ones."""
    root = tmp_path_factory.mktemp("serve-batch-vs-single")
    cfg = small_config(root, "catboost", "hour", data_root=tmp_path_factory.getbasetemp())
    _, submission = refit_submission(cfg, prepared_data(cfg), "catboost")
    history, _, records = split_test_b(cfg, root, 20)
    events = records + crafted_events(records, history)
    pd.DataFrame(events).to_csv(root / "events.csv", index=False)
    (root / "single").mkdir()
    (root / "batch").mkdir()
    one_by_one = Service(submission, history, root / "single").start()
    batched = Service(submission, history, root / "batch").start()
    try:
        single_rows, single_scores = stream(one_by_one, events)
        answer = batched.client.post("/score", params={"features": "true"}, json=events)
        assert answer.status_code == 200, answer.text
    finally:
        one_by_one.stop()
        batched.stop()
    columns = list(single_rows[0])
    single = pd.DataFrame(single_rows)[columns].to_numpy(dtype=np.float64)
    batch = pd.DataFrame(answer.json()["features"])[columns].to_numpy(dtype=np.float64)
    assert np.array_equal(single, batch, equal_nan=True), [c for c, same in zip(columns, (
        (single == batch) | (np.isnan(single) & np.isnan(batch))).all(0)) if not same]
    assert [s["score"] for s in answer.json()["scores"]] == single_scores
    batch_features, batch_scores = offline(submission, history, root / "events.csv")
    assert np.nanmax(np.abs(batch - batch_features[columns].to_numpy(dtype=np.float64))) <= 1e-6
    np.testing.assert_allclose(single_scores, batch_scores, rtol=1e-6, atol=1e-9)


def logged_scorer(root: Path, tmp_path_factory, streamed: int) -> tuple[OnlineScorer, Dataset, list[dict]]:
    """A CatBoost submission's scorer logging under `root / "state"`, its timeline (the history files, test_b
    less its last `streamed` events) and those events."""
    cfg = small_config(root, "catboost", data_root=tmp_path_factory.getbasetemp())
    _, submission = refit_submission(cfg, prepared_data(cfg), "catboost")
    history, _, records = split_test_b(cfg, root, streamed)
    saved = load_submission(submission)
    timeline = load_event_files(saved.file_format(), history)
    return OnlineScorer(saved, timeline, log_dir=root / "state"), timeline, records


@pytest.mark.slow
def test_a_batch_posted_out_of_time_order_is_logged_in_time_order_and_replayed(tmp_path_factory) -> None:
    """The log holds the events in the order they joined the timeline, so a replay in chunks that cut a
    request in two accepts them all (logged as posted, the chunk after the cut was older than the clock)."""
    scorer, timeline, records = logged_scorer(tmp_path_factory.mktemp("serve-log-order"), tmp_path_factory, 5)
    scorer.score(records[:1])
    scorer.score(records[:0:-1])
    restarted = OnlineScorer(scorer.saved, timeline, log_dir=scorer.log.path.parent)
    assert restarted.replay(chunk=3) == 5
    assert (restarted.size, restarted.clock, restarted.ids) == (scorer.size, scorer.clock, scorer.ids)
