"""The scoring service's event log holds exactly the accepted events, whatever fails in a request.

A request's lines are written before the model scores it (their fsync runs meanwhile), so a request
that fails after the write must take its lines back: a failing model, and a write the disk cut short
(a real file-size limit, `RLIMIT_FSIZE`, makes the kernel write part of the lines and then refuse).
Through a real uvicorn service on loopback, such a request gets a 503 with one line; so does feedback that
the review store cannot take.
"""
from __future__ import annotations

import resource
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from atec_automl.reviews import ReviewStore
from atec_automl.service import create_app
from atec_automl.serving import OnlineScorer
from atec_automl.serving_log import EventLog, EventLogError, encode_lines
from test_serve import free_port, logged_scorer


@contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """This process may not grow a file past `size` bytes (writes beyond fail with EFBIG, not SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_request_that_fails_after_its_log_write_leaves_the_log_as_it_was(tmp_path_factory, monkeypatch) -> None:
    """A write cut short by the disk, and a model that fails after the lines were written, leave the log
    byte for byte as it was and the state unchanged; the same events are accepted once the fault is gone,
    and a restart replays exactly the accepted events."""
    scorer, timeline, records = logged_scorer(tmp_path_factory.mktemp("serve-log-faults"), tmp_path_factory, 4)
    saved, log = scorer.saved, scorer.log.path
    scorer.score(records[:1])
    accepted, state = log.read_bytes(), (scorer.size, scorer.clock, set(scorer.ids))
    with file_size_limit(len(accepted) + 10), pytest.raises(EventLogError, match="could not be written .File too large"):
        scorer.score(records[1:3])
    assert log.read_bytes() == accepted
    assert (scorer.size, scorer.clock, scorer.ids) == state

    def failing_model(*_) -> None:
        assert log.stat().st_size > len(accepted), "the lines are written before the model scores"
        raise RuntimeError("model failed")

    monkeypatch.setattr(saved, "score", failing_model)
    with pytest.raises(RuntimeError, match="model failed"):
        scorer.score(records[1:3])
    monkeypatch.undo()
    assert log.read_bytes() == accepted
    assert (scorer.size, scorer.clock, scorer.ids) == state

    scorer.score(records[1:3])
    scorer.score(records[3:])
    restarted = OnlineScorer(saved, timeline, log_dir=log.parent)
    assert restarted.replay() == 4
    assert (restarted.size, restarted.clock, restarted.ids) == (scorer.size, scorer.clock, scorer.ids)


@contextmanager
def served(scorer: OnlineScorer, reviews: ReviewStore) -> Iterator[httpx.Client]:
    """The service of `scorer` run by uvicorn on a loopback port in a thread of this process; a client for it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(scorer, reviews), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_a_request_the_log_cannot_take_gets_a_503_in_one_line_and_changes_nothing(tmp_path_factory) -> None:
    """A full disk (here a file-size limit on this process, where the service runs) makes `POST /score` answer 503
    with a one-line error; the log and the timeline are unchanged, and the same events are accepted once the disk
    has room again."""
    root = tmp_path_factory.mktemp("serve-log-503")
    scorer, _, records = logged_scorer(root, tmp_path_factory, 3)
    with served(scorer, ReviewStore(root / "reviews.sqlite")) as client:
        assert client.post("/score", json=records[0]).status_code == 200
        accepted, events = scorer.log.path.read_bytes(), client.get("/health").json()["events"]
        with file_size_limit(len(accepted) + 10):
            answer = client.post("/score", json=records[1:])
        assert answer.status_code == 503, answer.text
        assert "could not be written (File too large)" in answer.json()["error"]
        assert "\n" not in answer.json()["error"]
        assert scorer.log.path.read_bytes() == accepted
        assert client.get("/health").json()["events"] == events
        retried = client.post("/score", json=records[1:])
        assert retried.status_code == 200, retried.text
        assert [s["event_id"] for s in retried.json()["scores"]] == [r["event_id"] for r in records[1:]]


def test_feedback_the_review_store_cannot_take_gets_a_503_in_one_line(tmp_path_factory) -> None:
    """A review store that cannot be written (here a file that is not a database) makes `POST /feedback` answer
    503 with one line naming the file, counts no label, and the same feedback is recorded once the store is
    usable again."""
    root = tmp_path_factory.mktemp("serve-feedback-503")
    scorer, _, records = logged_scorer(root, tmp_path_factory, 1)
    store = root / "reviews.sqlite"
    store.write_bytes(b"not a database, " * 100)
    with served(scorer, ReviewStore(store)) as client:
        event_id = client.post("/score", json=records[0]).json()["scores"][0]["event_id"]
        feedback = {"event_ids": [event_id], "labels": [1], "source": "analyst"}
        answer = client.post("/feedback", json=feedback)
        assert answer.status_code == 503, answer.text
        assert str(store) in answer.json()["error"] and "\n" not in answer.json()["error"]
        assert client.get("/metrics").json()["feedback_labels"] == 0
        store.unlink()
        assert client.post("/feedback", json=feedback).status_code == 200
        assert ReviewStore(store).read() == {event_id: 1}


def test_the_log_gives_back_every_value_as_the_request_held_it(tmp_path) -> None:
    """orjson writes the usual lines; values it would change (NaN and infinities become null, integers beyond
    64 bits) or refuse send the request through `json.dumps`, so a replay reads back exactly what was sent."""
    usual = [{"event_id": f"e{i}", "amt": 12.5 + i, "city": "杭州", "n": i, "flag": True, "gap": None}
             for i in range(3)]
    unusual = [[{"event_id": "x", "amt": float("nan")}], [{"event_id": "y", "amt": float("-inf")}],
               [{"event_id": "z", "n": 10 ** 30}], [{"event_id": "w", "parts": [1.0, float("nan")]}]]
    log = EventLog(tmp_path / "events.jsonl")
    for records in [usual, *unusual]:
        log.wait(log.append(records))
    sent = [r for records in [usual, *unusual] for r in records]
    assert repr(log.read()) == repr(sent)
    assert b"NaN" not in encode_lines(usual) and encode_lines(usual).count(b"\n") == 3
    assert encode_lines(unusual[0]) == b'{"event_id": "x", "amt": NaN}\n'
