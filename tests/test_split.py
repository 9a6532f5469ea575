"""Every training event of a fold is strictly earlier than every scored event of that fold."""
import numpy as np
import pandas as pd
import pytest

from atec_automl.data.dataset import SECONDS_PER_DAY, Dataset
from atec_automl.errors import AtecError
from atec_automl.split import TimeSplit, few_frauds_warning, last_days_rows

START = pd.Timestamp("2017-09-05").value // 10**9


def timeline(days: int = 62, rows: int = 6000, hour_resolution: bool = False, seed: int = 0) -> Dataset:
    """A labelled train period of `days` days plus a later unlabelled test part."""
    rng = np.random.default_rng(seed)
    ts = np.sort(START + rng.integers(0, days * SECONDS_PER_DAY, rows))
    if hour_resolution:
        ts -= ts % 3600
    test_ts = np.sort(ts[-1] + 30 * SECONDS_PER_DAY + rng.integers(0, 10 * SECONDS_PER_DAY, rows // 4))
    label = rng.choice([0.0, 1.0, -1.0], size=rows, p=[0.94, 0.05, 0.01]).astype(np.float32)
    frame = pd.DataFrame({
        "event_id": [f"e{i}" for i in range(rows + len(test_ts))],
        "ts": np.concatenate([ts, test_ts]),
        "label": np.concatenate([label, np.full(len(test_ts), np.nan, np.float32)]),
        "part": pd.Categorical(["train"] * rows + ["test_a"] * len(test_ts), categories=["train", "test_a", "test_b"]),
    })
    return Dataset(frame=frame, fingerprint="test", id_column="event_id")


@pytest.mark.parametrize("hour_resolution", [False, True])
@pytest.mark.parametrize("stop", [0, 1, 2])
@pytest.mark.parametrize(("scored", "gap", "folds", "step"), [(3, 0, 1, None), (3, 1, 3, 3), (2, 5, 4, 7), (1, 0, 5, 1)])
def test_training_then_early_stopping_then_scoring(hour_resolution: bool, stop: int, scored: int, gap: int, folds: int,
                                                   step: int | None) -> None:
    dataset = timeline(hour_resolution=hour_resolution)
    ts, label, days = dataset.frame["ts"].to_numpy(), dataset.frame["label"].to_numpy(), dataset.day()
    result = TimeSplit(scored_days=scored, gap_days=gap, n_folds=folds, step_days=step,
                       early_stopping_days=stop).folds(dataset)
    assert len(result) == folds
    for fold in result:
        assert ts[fold.train].max() < ts[fold.scored].min()
        assert days[fold.scored].min() - days[fold.train].max() == gap + stop + 1
        assert len(np.unique(days[fold.scored])) == scored
        assert set(np.unique(label[fold.scored])) == {0.0, 1.0}
        assert set(np.unique(label[fold.train])) <= {0.0, 1.0, -1.0}
        assert len(np.unique(days[fold.early_stop])) == stop
        if stop:
            assert ts[fold.train].max() < ts[fold.early_stop].min() and ts[fold.early_stop].max() < ts[fold.scored].min()
            assert days[fold.scored].min() - days[fold.early_stop].max() == gap + 1
            assert set(np.unique(label[fold.early_stop])) == {0.0, 1.0}
        assert not set(fold.train) & set(fold.early_stop) and not set(fold.early_stop) & set(fold.scored)
        assert (dataset.frame["part"].to_numpy()[fold.train] == "train").all()
    assert [f.last_scored_day for f in result] == sorted(f.last_scored_day for f in result)


def test_default_is_three_folds_with_an_early_stopping_day() -> None:
    folds = TimeSplit().folds(timeline())
    assert len(folds) == 3
    assert [f.last_scored_day for f in folds] == [folds[-1].last_scored_day - 6, folds[-1].last_scored_day - 3,
                                                  folds[-1].last_scored_day]
    assert all(len(f.early_stop) > 0 for f in folds)


def test_few_frauds_warns_in_one_line() -> None:
    dataset = timeline()
    label = dataset.frame["label"].to_numpy()
    folds = TimeSplit().folds(dataset)
    counts = [int((label[f.scored] == 1).sum()) for f in folds]
    assert few_frauds_warning(folds, label, min(counts)) is None
    warning = few_frauds_warning(folds, label, min(counts) + 1)
    assert warning.startswith("warning:") and "\n" not in warning and f"1/{min(counts)}" in warning


def test_last_fold_scores_the_last_labelled_days() -> None:
    dataset = timeline()
    fold = TimeSplit().folds(dataset)[-1]
    train_days = dataset.day()[dataset.part_rows("train")]
    assert fold.last_scored_day == train_days.max()
    assert fold.first_scored_day == train_days.max() - 2
    window = dataset.part_rows("train")[train_days >= train_days.max() - 2]
    grey = dataset.frame["label"].to_numpy()[window] == -1
    assert len(fold.scored) == len(window) - grey.sum()
    assert "2017-11-03..2017-11-05" in fold.describe()


def test_too_many_folds_is_a_clear_error() -> None:
    with pytest.raises(AtecError, match="min_train_days"):
        TimeSplit(scored_days=3, n_folds=30).folds(timeline())


def test_fold_without_positives_is_a_clear_error() -> None:
    dataset = timeline()
    dataset.frame.loc[dataset.frame["label"] == 1, "label"] = 0.0
    with pytest.raises(AtecError, match="0 positives"):
        TimeSplit().folds(dataset)


def test_last_days_rows() -> None:
    days = np.array([0, 0, 1, 2, 3, 3, 4])
    assert last_days_rows(days, np.arange(7), 2).tolist() == [4, 5, 6]
    assert last_days_rows(days, np.array([0, 2, 3]), 1).tolist() == [3]
