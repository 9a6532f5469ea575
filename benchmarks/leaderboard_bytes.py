"""Bytes per leaderboard entry at ~450 k scored rows: the previous score blob beside today's, side by side.

Writes N entries of the same scored rows (3 folds, ~1 % frauds, 32-character event ids) to a
temporary SQLite leaderboard, twice: with CatBoost-like float64 scores (sums of 300 trees' leaf
values, so rounding to float32 merges a few thousand distinct values) and with float32 scores (what
the neural families output). For each it prints the previous format's score blob (float64,
compressed npz, as format 3 stored it), today's (byte-shuffled float32 plus the rows kept exact),
the shared row set (stored once for all N entries), and the file's bytes per entry; and it checks
that the stored scores give the same ATEC score and ranks as the originals.

    python benchmarks/leaderboard_bytes.py [--rows 450000] [--entries 5]
"""
from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import numpy as np
import sqlalchemy
from scipy.stats import rankdata

from atec_automl.evaluation import FoldResult, build_entry
from atec_automl.leaderboard import Leaderboard, Predictions
from atec_automl.metric import atec_score


def previous_score_blob(predictions: Predictions) -> int:
    """Bytes of the scores as format 3 stored them: one float64 array in a compressed npz."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, score=predictions.score.astype(np.float64))
    return len(buffer.getvalue())


def tree_like_scores(rng: np.random.Generator, rows: int, trees: int = 300, leaves: int = 64) -> np.ndarray:
    """Probabilities from sums of `trees` leaf values: boosted-tree-like, float64, few exact ties."""
    values = rng.normal(0.0, 0.05, (trees, leaves))
    logit = np.full(rows, -4.0)
    for tree in range(trees):
        logit += values[tree, rng.integers(0, leaves, rows)]
    return 1.0 / (1.0 + np.exp(-logit))


def entries(rows: int, count: int, float32: bool, seed: int = 0) -> list:
    """`count` entries on one row set (3 folds), each with its own scores."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"{value:032x}" for value in rng.integers(0, 2 ** 63, rows)])
    label = (rng.random(rows) < 0.01).astype(np.int8)
    bounds = np.linspace(0, rows, 4).astype(int)
    made = []
    for trial in range(count):
        score = tree_like_scores(rng, rows) + 0.02 * label
        if float32:
            score = score.astype(np.float32)
        folds = [FoldResult.of_scores(f"fold{k}", (17_500 + 3 * k, 17_502 + 3 * k), ids[a:b], label[a:b], score[a:b])
                 for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
        made.append(build_entry(folds, 0, family="catboost", study="bench", trial=trial, params={}, config_yaml="",
                                data_fingerprint="f" * 64, split="bench", fit_seconds=1.0, predict_seconds=1.0))
    return made


def measure(rows: int, count: int, float32: bool) -> None:
    """Write the entries to a fresh board and print the bytes per entry, previous and today's."""
    made = entries(rows, count, float32)
    with tempfile.TemporaryDirectory() as folder:
        board = Leaderboard(Path(folder) / "leaderboard.sqlite")
        for entry in made:
            stored = board.predictions(board.add(entry))
            assert atec_score(stored.label, stored.score) == atec_score(entry.predictions.label, entry.predictions.score)
            assert np.array_equal(rankdata(stored.score), rankdata(entry.predictions.score))
        engine = sqlalchemy.create_engine(board.url)
        with engine.connect() as connection:
            score_bytes = connection.execute(sqlalchemy.text(
                "SELECT avg(length(score_npz)), avg(length(coalesce(test_npz, ''))) FROM leaderboard_predictions")).one()
            row_set_bytes, row_sets = connection.execute(sqlalchemy.text(
                "SELECT sum(length(npz)), count(*) FROM leaderboard_row_sets")).one()
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        file_bytes = board.path.stat().st_size
    previous = np.mean([previous_score_blob(entry.predictions) for entry in made])
    kind = "float32 scores (neural)" if float32 else "float64 scores (tree-like)"
    print(f"{kind}: {rows:,} rows, {count} entries")
    print(f"  score blob per entry: previous (float64 npz) {previous:,.0f} B, now {score_bytes[0]:,.0f} B "
          f"({previous / score_bytes[0]:.2f}x smaller)")
    print(f"  shared row set: {row_sets} stored for {count} entries, {row_set_bytes:,} B "
          f"({row_set_bytes / count:,.0f} B per entry amortised)")
    print(f"  SQLite file: {file_bytes:,} B = {file_bytes / count:,.0f} B per entry (row set included); "
          f"previous scores would add {count * (previous - score_bytes[0]):,.0f} B")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=450_000)
    parser.add_argument("--entries", type=int, default=5)
    args = parser.parse_args()
    for float32 in (False, True):
        measure(args.rows, args.entries, float32)


if __name__ == "__main__":
    main()
