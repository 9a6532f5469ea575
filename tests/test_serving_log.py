"""The scoring service's event log holds exactly the accepted events, whatever fails in a request.

A request's lines are written before the model scores it (their fsync runs meanwhile), so a request
that fails after the write must take its lines back: a failing model, and a write the disk cut short
(a real file-size limit, `RLIMIT_FSIZE`, makes the kernel write part of the lines and then refuse).
"""
from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from atec_automl.serving import OnlineScorer
from test_serve import logged_scorer


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
    with file_size_limit(len(accepted) + 10), pytest.raises(OSError):
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
