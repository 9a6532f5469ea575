"""The one-event fast paths of task=serve against the general ones they stand in for.

A one-event request is validated by `data/one_event.PlainEvents` (plain Python) instead of Arrow,
and its features travel to the model as `BlockFeatures` (two arrays) instead of a frame. Each
must give exactly what the general path gives: the same converted row (or leave the decision to
the general path), the same model inputs and scores, the same features and scores per event.
"""
from __future__ import annotations

import pandas as pd
import pytest

from atec_automl.artifact import load_submission
from atec_automl.data.formats import RawEventFormat
from atec_automl.data.load import event_table_from_records, load_event_files
from atec_automl.data.one_event import PlainEvents
from atec_automl.errors import AtecError
from atec_automl.features.featureset import FeatureSet
from atec_automl.models.base import ModelData
from atec_automl.serving import OnlineScorer
from saved_submissions import prepared_data, refit_submission, small_config
from test_serve import crafted_events, split_test_b

EVENT = {"event_id": "e1", "user_id": "u1", "gmt_occur": "2017-09-05 13:04:05", "client_ip": "ip1",
         "pay_scene": "站内即时到账", "amt": "10.5", "is_one_people": "1", "is_peer_pay": "0", "dt": "2017-09-05"}
PLAIN = [  # events the fast path reads itself
    {}, {"gmt_occur": "2017-09-05 13"}, {"gmt_occur": "2017-09-05 13:04"}, {"gmt_occur": "2016-02-29 23:59:59"},
    {"amt": "1e6"}, {"amt": "-1"}, {"amt": "-1.0"}, {"amt": ""}, {"amt": None}, {"amt": 12}, {"amt": 0.1 + 0.2},
    {"amt": "3.4e38"}, {"amt": "-0"}, {"client_ip": "-1"}, {"client_ip": ""}, {"client_ip": 17}, {"event_id": 5},
    {"pay_scene": " spaced "}, {"is_fraud": "1"}, {"unknown_field": [1]}, {"amt": "007.50"},
]
GENERAL = [  # events left to the general path (refused there, or read in a form the fast path does not handle)
    {"gmt_occur": "2017-02-30 10:00:00"}, {"gmt_occur": "2017-09-05 10:00:60"}, {"gmt_occur": "2017-09-05 25"},
    {"gmt_occur": "2017-09-05T10:00:00"}, {"gmt_occur": "2017-9-5 10"}, {"gmt_occur": 20170905},
    {"amt": "ten"}, {"amt": "nan"}, {"amt": "inf"}, {"amt": "1e39"}, {"amt": ".5"}, {"amt": "+5"}, {"amt": " 5"},
    {"amt": True}, {"amt": [1]}, {"amt": float("nan")}, {"event_id": "-1"}, {"event_id": ""}, {"user_id": None},
    {"client_ip": {"a": 1}},
]


@pytest.mark.parametrize("edit", PLAIN + GENERAL, ids=repr)
def test_the_plain_reading_of_one_event_is_the_general_one(edit: dict) -> None:
    """Read by the fast path, an event is the general path's row; otherwise the general path decides."""
    file_format = RawEventFormat()
    plain = PlainEvents(file_format, file_format.kinds([[]]))
    record = {**EVENT, **edit}
    row = plain.row(record)
    assert (row is not None) == (edit in PLAIN)
    try:
        general = event_table_from_records([record], file_format, "POST /score").to_pylist()[0]
    except AtecError:
        assert row is None
        return
    if row is not None:
        assert row == general and list(row) == list(general)
        assert all(type(row[c]) is type(general[c]) for c in row)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["catboost", "mlp"])
def test_one_event_requests_get_the_general_paths_features_and_scores(tmp_path_factory, family: str) -> None:
    """The same events streamed one by one through a scorer on the fast paths and through one held to the
    general ones (Arrow validation, a feature frame) get identical feature rows and scores; and a model
    scores `BlockFeatures` exactly as the frame built from them."""
    root = tmp_path_factory.mktemp(f"serve-fast-{family}")
    cfg = small_config(root, family, "hour", data_root=tmp_path_factory.getbasetemp())
    _, submission = refit_submission(cfg, prepared_data(cfg), family)
    history, _, records = split_test_b(cfg, root, 20)
    events = records + crafted_events(records, history)
    saved = load_submission(submission)
    timeline = load_event_files(saved.file_format(), history)
    fast, general = OnlineScorer(saved, timeline), OnlineScorer(saved, timeline)
    general.plain = None
    model = saved.members[0].model
    for event in events:
        blocks, rows, undo = fast.source.features(fast.parse([event]))
        undo()
        table = FeatureSet(table=blocks.table, categorical=list(blocks.categorical))
        assert model.predict(ModelData(blocks, rows)).tolist() == model.predict(ModelData(table, rows)).tolist()
        quick, slow = fast.score([event], with_features=True), general.score([event], with_features=True)
        assert quick.scores.tolist() == slow.scores.tolist()
        assert pd.DataFrame(quick.features).equals(pd.DataFrame(slow.features))
    assert (fast.size, fast.clock, fast.ids) == (general.size, general.clock, general.ids)



@pytest.mark.slow
def test_a_batch_taken_back_leaves_the_state_as_it_was(tmp_path_factory) -> None:
    """A request whose scoring fails after its features were read (the model, the log) takes its events back:
    a scorer that read a batch's features and undid them then scores batches and single events exactly as a
    scorer that never saw that batch, groups read before the undo included."""
    root = tmp_path_factory.mktemp("serve-undo")
    cfg = small_config(root, "catboost", "hour", data_root=tmp_path_factory.getbasetemp())
    _, submission = refit_submission(cfg, prepared_data(cfg), "catboost")
    history, _, records = split_test_b(cfg, root, 20)
    events = records + crafted_events(records, history)
    saved = load_submission(submission)
    timeline = load_event_files(saved.file_format(), history)
    undone, fresh = OnlineScorer(saved, timeline), OnlineScorer(saved, timeline)
    for scorer in (undone, fresh):
        scorer.score(events[:3])  # single events: the groups of their keys are built
    others = [{**e, "event_id": f"undone-{e['event_id']}", "amt": "999", "device_sign": "dev-undone"} for e in events]
    for request in (others[3:], others[-10:-6]):  # a batch; a few events of one user, each read after the last joined
        _, _, undo = undone.source.features(undone.parse(request))
        undo()
    for batch in [events[3:12], events[12:20], *([event] for event in events[20:])]:
        taken, never = undone.score(batch, with_features=True), fresh.score(batch, with_features=True)
        assert taken.scores.tolist() == never.scores.tolist()
        assert pd.DataFrame(taken.features).equals(pd.DataFrame(never.features))
