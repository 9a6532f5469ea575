"""The reviewed-labels store and the review-file reader: one store, safe for several processes,
and a filled review file refused in one line for unknown ids, duplicate ids or labels other than 0/1."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from atec_automl.errors import AtecError
from atec_automl.reviews import ReviewStore, read_review_file, reviewed_labels, store_path

TRAINING_IDS = ["e1", "e2", "e3", "e4"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_store_keeps_the_latest_label_of_each_event(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "lb" / "reviews.sqlite")
    assert store.read() == {} and not store.path.exists()
    assert store.add(["e1", "e2"], [1, 0], source="batch1.csv") == 2
    store.add(["e2", "e3"], [1, 0], source="feedback")
    assert store.read() == {"e1": 1, "e2": 1, "e3": 0}


def test_store_refuses_a_label_outside_0_1_and_writes_nothing(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "reviews.sqlite")
    with pytest.raises(AtecError, match="label 2 is not 0 or 1"):
        store.add(["e1", "e2"], [1, 2], source="x")
    assert store.read() == {}


def add_batch(folder: str, worker: int, start_together: "multiprocessing.synchronize.Barrier") -> None:
    """One process's reviews: for each of `NEW_STORES` new store files, one review, added at the
    same moment as the other processes (the barrier), then 10 more reviews in the last store."""
    for store_number in range(NEW_STORES):
        start_together.wait(timeout=20)
        ReviewStore(Path(folder) / f"{store_number}.sqlite").add([f"w{worker}"], [worker % 2], source=f"worker{worker}")
    store = ReviewStore(Path(folder) / f"{NEW_STORES - 1}.sqlite")
    for i in range(10):
        store.add([f"w{worker}-{i}"], [i % 2], source=f"worker{worker}")


NEW_STORES = 30
WORKERS = 6


def test_several_processes_add_at_once_and_nothing_is_lost(tmp_path: Path) -> None:
    """Processes that open a new store file at the same moment all get in (SQLite refuses the
    switch to WAL at once, without its busy wait, while others open the file: about 1 start in 10
    failed before the store retried it), and every review of every process is kept."""
    context = multiprocessing.get_context("spawn")
    start_together = context.Barrier(WORKERS)
    workers = [context.Process(target=add_batch, args=(str(tmp_path), w, start_together)) for w in range(WORKERS)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    assert [p.exitcode for p in workers] == [0] * WORKERS
    for store_number in range(NEW_STORES - 1):
        assert ReviewStore(tmp_path / f"{store_number}.sqlite").read() == {f"w{w}": w % 2 for w in range(WORKERS)}
    last = ReviewStore(tmp_path / f"{NEW_STORES - 1}.sqlite").read()
    assert len(last) == WORKERS * 11 and last["w3-7"] == 1 and last["w0-4"] == 0


def test_store_path_is_beside_the_leaderboard_unless_given() -> None:
    assert store_path("lb/leaderboard.sqlite") == Path("lb/reviews.sqlite")
    assert store_path("lb/leaderboard.sqlite", "/data/r.sqlite") == Path("/data/r.sqlite")


def test_a_filled_file_reads_its_labels_and_skips_empty_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "event_id,label,score,reason\ne1,1,0.4,x\ne2,,0.3,y\ne3,0,0.2,\"a, b\"\n")
    assert read_review_file(path, TRAINING_IDS) == (["e1", "e3"], [1, 0])


@pytest.mark.parametrize(("text", "message"), [
    ("event_id,label\ne1,1\nzz,0\n", "line 3: event_id 'zz' is not a training row"),
    ("event_id,label\ne1,1\ne2,0\ne1,1\n", "line 4: event_id 'e1' is listed twice \\(first on line 2\\)"),
    ("event_id,label\ne1,2\n", "line 2, column 'label': '2' is not 0 or 1"),
    ("event_id,label\ne1,yes\n", "line 2, column 'label': 'yes' is not 0 or 1"),
    ("event_id,verdict\ne1,1\n", "no column 'label'"),
])
def test_bad_review_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(AtecError, match=f"labels.reviews={path}: {message}"):
        read_review_file(path, TRAINING_IDS)


def test_reviewed_labels_align_with_training_rows_only() -> None:
    ids = np.array(["e1", "e2", "t1", "e3"])
    train = np.array([True, True, False, True])
    out = reviewed_labels({"e2": 1, "t1": 0, "e3": 0}, ids, train)
    np.testing.assert_array_equal(out, [np.nan, 1.0, np.nan, 0.0])
