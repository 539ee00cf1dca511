"""Prometheus metrics of the service, served at `GET /metrics` (prometheus-client's text format).

| metric | type | labels |
|---|---|---|
| `dfl_http_requests_total` | counter | `route` (the route's path, `/static` or `other`), `method`, `status` |
| `dfl_http_request_duration_seconds` | histogram | `route`: head received -> last answer byte sent |
| `dfl_http_requests_in_progress` | gauge | |
| `dfl_refused_requests_total` | counter | `reason` (`refusals.py`: api_key, body_size, content_type, ...), `status` |
| `dfl_batch_size` | histogram | images per model call of the dynamic batcher (batched mode) |
| `dfl_p_fake` | histogram | `source`: `image` (each image answered), `video` (each video's score) |
| `dfl_verdicts_total` | counter | `source`, `label` (`fake` / `real`) |
| `dfl_score_drift` | gauge | `statistic="psi"`: the drift of image scores from validation (`drift.py`) |
| `dfl_score_drift_scores` | gauge | image scores in the drift window |

Labels take a bounded set of values (the app's routes, seven methods, status codes), so no client can make the
series grow. A status of 499 means the client left before any answer (nginx's convention).

Scores and verdicts are read from the answers as they are sent (`RequestMetrics`), not taken inside the scorer:
what is counted is exactly what clients received, whichever path made it (serial or batched, one face or
several, one model or an ensemble), and a request whose client left is not counted as answered.

Several workers (`workers=N`, `inference/workers.py`) run prometheus-client's multiprocess mode: each process
writes its values to files under `PROMETHEUS_MULTIPROC_DIR` and a scrape, answered by any worker, adds up the
files of all of them. Gauges keep the live processes' values only: `dfl_score_drift` the largest (each worker
has its own window), the others their sum; the files of a worker that died are forgotten at the next scrape.
Counters and histograms keep a dead worker's counts, as a counter must.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any

from fastapi.routing import APIRoute
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepfake_lightning.inference.asgi import HttpMiddleware
from deepfake_lightning.inference.drift import DriftMonitor
from deepfake_lightning.inference.refusals import reason_of

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ANSWERS = {"/v1/predict": "image", "/v1/predict/batch": "image", "/v1/predict/video": "video"}
LABELS = ("fake", "real")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
P_FAKE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
MAX_ANSWER_BYTES = 16 << 20  # an answer larger than this is passed on unread (no score recorded from it)
DISCONNECTED = "499"
LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def _batch_buckets(max_batch_size: int) -> tuple[float, ...]:
    """1, 2, 4, ... up to `max_batch_size` (itself included)."""
    sizes, size = [], 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    return (*sizes, max_batch_size)


class ServiceMetrics:
    """The metrics of one app, in a registry of its own (several apps may live in one test process)."""

    def __init__(self, max_batch_size: int = 16, drift: DriftMonitor | None = None) -> None:
        self.registry = CollectorRegistry()
        self.drift = drift
        r = self.registry
        self.requests = Counter(
            "dfl_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "dfl_http_request_duration_seconds",
            "Time from a request's head to its last answer byte",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "dfl_http_requests_in_progress",
            "Requests being answered",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.refused = Counter(
            "dfl_refused_requests",
            "Requests refused with a 4xx, by the check that refused them",
            ["reason", "status"],
            registry=r,
        )
        self.batch_size = Histogram(
            "dfl_batch_size",
            "Images per model call (dynamic batching)",
            buckets=_batch_buckets(max_batch_size),
            registry=r,
        )
        self.p_fake = Histogram(
            "dfl_p_fake",
            "p_fake answered: each image, each video's score",
            ["source"],
            buckets=P_FAKE_BUCKETS,
            registry=r,
        )
        self.verdicts = Counter("dfl_verdicts", "Labels answered", ["source", "label"], registry=r)
        self.score_drift = Gauge(
            "dfl_score_drift",
            "Drift of the image scores from the validation distribution in the model bundle "
            "(largest over live workers)",
            ["statistic"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.drift_scores = Gauge(
            "dfl_score_drift_scores",
            "Image scores in the drift windows",
            registry=r,
            multiprocess_mode="livesum",
        )
        # known label sets start at 0, so rate() works from the first scrape and a fresh worker's scrape lists
        # them (multiprocess mode shows only the series that exist)
        for source in sorted(set(ANSWERS.values())):
            self.p_fake.labels(source)
            for label in LABELS:
                self.verdicts.labels(source, label)
        self._routes: tuple[frozenset[str], tuple[str, ...]] = (frozenset(), ())

    # --- what the layers and the batcher report -------------------------------------------------------------

    def watch_routes(self, routes: Iterable[BaseRoute]) -> None:
        """The routes whose paths label requests (a mount labels everything under it); any other path is
        `other`. Given by `create_app` once its routes exist (an included router's routes come from the router:
        FastAPI >= 0.16x keeps them inside it)."""
        paths = {r.path for r in routes if isinstance(r, Route | APIRoute)}
        self._routes = frozenset(paths), tuple(r.path for r in routes if isinstance(r, Mount))

    def route_of(self, scope: Scope) -> str:
        """The route's path, a mount's prefix, or `other`: never the raw path (unbounded labels)."""
        paths, mounts = self._routes
        path = scope["path"]
        if path in paths:
            return path
        return next((m for m in mounts if m and path.startswith(m + "/")), "other")

    def answered(self, scope: Scope, route: str, status: int | None, seconds: float) -> None:
        method = scope["method"] if scope["method"] in METHODS else "other"
        code = str(status) if status is not None else DISCONNECTED
        self.requests.labels(route, method, code).inc()
        self.latency.labels(route).observe(seconds)
        if status is not None and 400 <= status < 500:
            self.refused.labels(reason_of(scope, status), code).inc()

    def batch_scored(self, size: int) -> None:
        self.batch_size.observe(size)

    def scored(self, source: str, p_fake: float, label: str) -> None:
        self.p_fake.labels(source).observe(p_fake)
        self.verdicts.labels(source, label).inc()
        if source == "image" and self.drift is not None:
            value = self.drift.add(p_fake)
            self.drift_scores.set(len(self.drift.window))
            if value is not None:
                self.score_drift.labels("psi").set(value)

    def answer_sent(self, route: str, body: bytes) -> None:
        """The p_fake and label of every score in a 200 answer of a prediction route."""
        try:
            answer = json.loads(body)
        except ValueError:
            log.debug("answer of %s is not JSON: no score recorded", route)
            return
        for p_fake, label in _scores(route, answer):
            self.scored(ANSWERS[route], p_fake, label)

    def drift_status(self) -> dict[str, Any] | None:
        return self.drift.status() if self.drift is not None else None

    # --- the scrape -----------------------------------------------------------------------------------------

    def exposition(self) -> Response:
        """The text a scrape gets: this app's registry, or every worker's files in multiprocess mode."""
        folder = multiprocess_dir()
        registry = self.registry
        if folder is not None:
            forget_dead_workers(folder)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=folder)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _scores(route: str, answer: Any) -> Iterable[tuple[float, str]]:
    if not isinstance(answer, dict):
        return
    if route == "/v1/predict/video":
        summary = answer.get("summary") or {}
        score = summary.get("p_fake_video", summary.get("p_fake_mean"))  # the score its label was read from
        items = [{"p_fake": score, "label": summary.get("label")}]
    else:
        items = answer.get("predictions", [answer]) if route == "/v1/predict/batch" else [answer]
    for item in items:
        p_fake, label = item.get("p_fake"), item.get("label")
        if isinstance(p_fake, (int, float)) and isinstance(label, str):  # a batch file with `error` has none
            yield float(p_fake), label


def forget_dead_workers(folder: str) -> None:
    """Drop the live-gauge files of worker processes that no longer exist (uvicorn restarts a dead worker
    under a new pid; gunicorn users call `mark_process_dead` from a hook, uvicorn has none)."""
    pids = {
        int(m.group(1))
        for f in glob.glob(os.path.join(folder, "gauge_live*.db"))
        if (m := LIVE_GAUGE_FILE.search(f))
    }
    for pid in pids:
        if not _alive(pid):
            mark_process_dead(pid, folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RequestMetrics(HttpMiddleware):
    """The outermost layer (`middleware.py`): every request counted with the status it got, 500 and refusals
    included, and the scores of the prediction answers read as they are sent."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.metrics
        route = metrics.route_of(scope)
        reads_answer = route in ANSWERS and scope["method"] == "POST"
        status: int | None = None
        body: list[bytes] = []
        size = 0
        start = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and reads_answer and status == 200:
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= MAX_ANSWER_BYTES:
                    body.append(chunk)
            await send(message)

        metrics.in_progress.inc()
        try:
            await self.app(scope, receive, observed_send)
        finally:
            metrics.in_progress.dec()
            metrics.answered(scope, route, status, time.perf_counter() - start)
        if reads_answer and status == 200 and size <= MAX_ANSWER_BYTES:
            metrics.answer_sent(route, b"".join(body))
