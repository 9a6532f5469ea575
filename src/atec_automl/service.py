"""The HTTP scoring service (FastAPI): `POST /score`, `POST /feedback`, `GET /health`, `GET /metrics`.

`POST /score` takes one event (a JSON object in the semi-final raw schema, the fields a file row
has, the label excepted) or a list of them (at most `max_batch`, scored in time order) and answers
`{"scores": [{"event_id": ..., "score": ...}]}`; `?features=true` adds each event's feature row.
A bad event (not an object, a missing field, an unparseable time, an id seen before, a time older
than the latest accepted one or too far ahead of the machine's clock) gets a 4xx whose `error` is
one line, and changes nothing; a request whose events the event log could not take (a full disk)
gets a 503 with one line and changes nothing either. Requests are handled one at a time, in arrival order (the timeline is a sequence).

`POST /feedback` takes `{"event_ids": [...], "labels": [0|1, ...], "source": "..."}`: confirmed labels
of accepted events, written to the harness's one reviewed-labels store (`reviews.ReviewStore`),
which every later training run reads; a store that cannot take them gets a 503 with one line.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from atec_automl.errors import AtecError
from atec_automl.reviews import ReviewStore
from atec_automl.serving import OnlineScorer, Rejected
from atec_automl.serving_log import EventLogError

LATENCY_WINDOW = 10_000
FLAG_VALUES = {**dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),
               **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False)}
"""The spellings of a boolean query parameter (pydantic's, any case)."""
FEATURES_PARAMETER = {"name": "features", "in": "query", "required": False, "description": "add each event's feature row",
                      "schema": {"type": "boolean", "default": False}}


class Metrics:
    """Counts and per-event latencies of the last `LATENCY_WINDOW` scored events."""

    def __init__(self) -> None:
        self.started = time.time()
        self.counts = {"score_requests": 0, "events_scored": 0, "events_rejected": 0, "feedback_labels": 0}
        self.latency_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def scored(self, events: int, seconds: float) -> None:
        """Record a scored request of `events` events."""
        self.counts["score_requests"] += 1
        self.counts["events_scored"] += events
        self.latency_ms.extend([seconds * 1000 / events] * events)

    def snapshot(self) -> dict:
        """Counts, latency percentiles (ms per event) and uptime."""
        latency = np.asarray(self.latency_ms)
        percentiles = {f"p{q}": float(np.percentile(latency, q)) if len(latency) else None for q in (50, 95, 99)}
        return {**self.counts, "latency_ms_per_event": percentiles, "uptime_s": time.time() - self.started}


def create_app(scorer: OnlineScorer, reviews: ReviewStore, max_batch: int = 1000) -> FastAPI:
    """The service around a warmed scorer."""
    app = FastAPI(title="ATEC scoring service")
    metrics = Metrics()
    lock = threading.Lock()

    def refuse(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": " ".join(message.split())}, status_code=status)

    @app.post("/score", openapi_extra={"parameters": [FEATURES_PARAMETER]})
    async def score(request: Request) -> JSONResponse:
        features = query_flag(request, "features")
        if features is None:
            return refuse(422, f"query parameter features={request.query_params['features']!r} is not true or false")
        try:
            body = await request.json()
        except ValueError:
            return refuse(400, "the body is not JSON")
        records = body if isinstance(body, list) else [body]
        if len(records) > max_batch:
            return refuse(413, f"{len(records)} events in one request; at most {max_batch} (serve.max_batch)")
        started = time.perf_counter()
        try:
            with lock:
                result = scorer.score(records, with_features=features)
        except AtecError as error:
            metrics.counts["events_rejected"] += len(records)
            return refuse(409 if isinstance(error, Rejected) else 503 if isinstance(error, EventLogError) else 422,
                          str(error))
        metrics.scored(len(records), time.perf_counter() - started)
        answer = {"scores": [{"event_id": i, "score": float(s)} for i, s in zip(result.event_ids, result.scores)]}
        if result.features is not None:
            answer["features"] = result.features
        return JSONResponse(answer)

    @app.post("/feedback")
    async def feedback(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return refuse(400, "the body is not JSON")
        problem = feedback_problem(body, scorer)
        if problem:
            return refuse(422, problem)
        try:
            reviews.add([str(i) for i in body["event_ids"]], [int(v) for v in body["labels"]], str(body.get("source", "serve")))
        except AtecError as error:
            return refuse(503, str(error))
        metrics.counts["feedback_labels"] += len(body["labels"])
        return JSONResponse({"recorded": len(body["labels"]), "store": str(reviews.path)})

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "submission": scorer.saved.name, "events": scorer.size,
                "clock": None if scorer.size == 0 else int(scorer.clock)}

    @app.get("/metrics")
    def metrics_view() -> dict:
        return {**metrics.snapshot(), "events_in_state": scorer.size}

    return app


def query_flag(request: Request, name: str) -> bool | None:
    """A boolean query parameter (False when absent), None when its value is not a boolean. Read by hand rather
    than declared as a typed parameter, so that a bad value gets the service's one-line `error` like every other
    refusal (FastAPI's own answer is a list of validation details)."""
    value = request.query_params.get(name)
    return False if value is None else FLAG_VALUES.get(value.lower())


def feedback_problem(body: object, scorer: OnlineScorer) -> str | None:
    """Why a feedback body is refused (one line), or None."""
    if not isinstance(body, dict) or not isinstance(body.get("event_ids"), list) or not isinstance(body.get("labels"), list):
        return "feedback needs {\"event_ids\": [...], \"labels\": [...], \"source\": \"...\"}"
    if len(body["event_ids"]) != len(body["labels"]) or not body["labels"]:
        return f"{len(body['event_ids'])} event_ids for {len(body['labels'])} labels"
    bad = [v for v in body["labels"] if v not in (0, 1) or isinstance(v, bool)]
    if bad:
        return f"label {json.dumps(bad[0])} is not 0 or 1"
    twice = [i for i, n in Counter(map(str, body["event_ids"])).items() if n > 1]
    if twice:
        return f"event_id {twice[0]!r} is given twice (one label per event and request)"
    unknown = [i for i in body["event_ids"] if str(i) not in scorer.ids]
    if unknown:
        return f"event_id {unknown[0]!r} was never scored or loaded by this service"
    return None
