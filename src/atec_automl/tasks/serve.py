"""task=serve: the online scoring service of a saved submission (see `atec_automl.service`).

`python run.py task=serve serve.submission=submissions/<name> [serve.host=127.0.0.1 serve.port=8000]
[serve.history=[...]]`: loads the submission, takes its state folder (`serve.state_dir`; one service
at a time), warms the timeline from the history files (by default the files it was trained on),
replays the events accepted before a restart, then serves until stopped. The warm state's objects
(the history's per-key dictionaries: a few per key value) are frozen out of the garbage collector's
passes (`gc.freeze`), so that a full collection during a request does not walk them.
"""
from __future__ import annotations

import gc
import os
from pathlib import Path

from omegaconf import DictConfig

from atec_automl.artifact import load_submission, training_files
from atec_automl.data.load import load_event_files
from atec_automl.errors import AtecError
from atec_automl.reviews import ReviewStore, store_path
from atec_automl.tasks.predict import history_option, required

STATE_ROOT = Path("serve-state")
"""Where each submission's log of accepted events goes (`<root>/<name>/`) when `serve.state_dir` is not set."""


def run(cfg: DictConfig) -> None:
    """Warm the scorer, then run uvicorn on serve.host:serve.port."""
    try:
        import uvicorn

        from atec_automl.service import create_app
        from atec_automl.serving_log import claim_state_dir
    except ImportError as error:
        raise AtecError(f"task=serve needs the serving extra ({error.name} is not installed): "
                        "pip install -e \".[serve]\"") from None
    from atec_automl.serving import OnlineScorer

    options = cfg.serve
    saved = load_submission(required(options, "submission", "serve"))
    history = history_option(options.get("history")) or training_files(saved)
    state_dir = Path(options.state_dir) if options.get("state_dir") else STATE_ROOT / saved.name
    claim = claim_state_dir(state_dir)
    ahead = options.get("max_ahead_hours")
    scorer = OnlineScorer(saved, load_event_files(saved.file_format(), history), log_dir=state_dir,
                          max_ahead_s=None if ahead is None else float(ahead) * 3600)
    replayed = scorer.replay()
    print(f"[serve] {saved.name}: {scorer.size:,} events in the timeline ({replayed:,} replayed from "
          f"{state_dir}); listening on http://{options.host}:{options.port}", flush=True)
    gc.collect()
    gc.freeze()
    app = create_app(scorer, ReviewStore(store_path(cfg.leaderboard.path, cfg.leaderboard.get("reviews"))),
                     int(options.max_batch))
    try:
        uvicorn.run(app, host=str(options.host), port=int(options.port), log_level="warning")
    finally:
        os.close(claim)
