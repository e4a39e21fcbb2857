"""Prometheus metrics of the store, collected by a WSGI filter.

Every request through either face is counted by the filter
(:func:`metrics_filter`, installed by ``filters.wrap``): requests and their
latency by endpoint and status, bytes received and sent, smart-protocol
calls by verb, and errors (5xx answers and responses cut off by an
exception).  ``GET /metrics`` on the admin face exposes them, with the
number of codebases present counted at scrape time.

Several worker processes: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory, writable by every worker, *before* the processes start (it must
be in the environment when ``prometheus_client`` is imported).  Each process
then keeps its values in files there and ``/metrics``, in whichever process
answers it, adds up all of them (``prometheus_client``'s multiprocess
mode).  Empty the directory when the service (re)starts, and with gunicorn
call ``prometheus_client.multiprocess.mark_process_dead(worker.pid)`` from
its ``child_exit`` hook.  ``/metrics`` also shows process metrics and
in-flight gauges, and adds the directories of ``BZR_STORE_METRICS_DIRS``
(the other face's gunicorn instance): see :mod:`.opsmetrics`.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily

from ..smart.registry import verb_category
from ..store import budget
from .http import ENDPOINT_KEY
from .opsmetrics import add_collectors

if TYPE_CHECKING:
    from ..policy.policies import Environ
    from ..store.storage import Storage
    from .face import Face
    from .http import Request

__all__ = [
    "ENDPOINT_KEY",
    "MULTIPROC_ENV",
    "REGISTRY",
    "SMART_VERB_KEY",
    "metrics_filter",
    "scrape",
]

#: environ key where the smart handler leaves the verb it ran (bytes).
SMART_VERB_KEY = "breezy_janitor_store.smart_verb"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})

#: The store's own metrics (not prometheus_client's global registry, so an
#: embedding application's registry is left alone).
REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "bzr_store_http_requests",
    "HTTP requests answered, by face, endpoint, method and status.",
    ["face", "endpoint", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "bzr_store_http_request_duration_seconds",
    "Time from receiving a request to the end of its response body.",
    ["face", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
SMART_CALLS = Counter(
    "bzr_store_smart_calls",
    "bzr smart-protocol calls, by face and verb.",
    ["face", "verb"],
    registry=REGISTRY,
)
RECEIVED = Counter(
    "bzr_store_http_received_bytes",
    "Request body bytes read, by face.",
    ["face"],
    registry=REGISTRY,
)
SENT = Counter(
    "bzr_store_http_sent_bytes",
    "Response body bytes sent, by face.",
    ["face"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "bzr_store_errors",
    "Server errors: 5xx answers ('status') and responses cut off by an "
    "exception ('aborted').",
    ["face", "endpoint", "kind"],
    registry=REGISTRY,
)

# -- the stream budget (see breezy_janitor_store.store.budget) --
# Labelled by the kind of slot only (writer, reader): never by identity, so
# the number of series is fixed whatever the number of workers.

STREAM_SLOTS = Gauge(
    "bzr_store_stream_slots_in_use",
    "Heavy-stream slots held, by kind (writer, reader).",
    ["kind"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
STREAM_WAITERS = Gauge(
    "bzr_store_stream_waiters",
    "Requests queued for a heavy-stream slot, by kind.",
    ["kind"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
STREAM_HOLDERS = Gauge(
    "bzr_store_stream_holders",
    "Distinct identities (workers; anonymous clients as one) holding a "
    "heavy-stream slot, by kind.",
    ["kind"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
STREAM_MOST_HELD = Gauge(
    "bzr_store_stream_most_held_by_one",
    "Most heavy-stream slots of a kind one identity holds.",
    ["kind"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
STREAM_QUEUED = Counter(
    "bzr_store_stream_queued",
    "Requests that queued for a heavy-stream slot (fair queueing), by kind.",
    ["kind"],
    registry=REGISTRY,
)
STREAM_REFUSED = Counter(
    "bzr_store_stream_refused",
    "Requests refused (503) after waiting for a heavy-stream slot, by kind.",
    ["kind"],
    registry=REGISTRY,
)
STREAM_CUT = Counter(
    "bzr_store_stream_cut",
    "Heavy streams cut for moving fewer bytes than the minimum rate, by kind.",
    ["kind"],
    registry=REGISTRY,
)


class _BudgetMetrics:
    """Keeps the stream-budget metrics (a :class:`budget.BudgetObserver`)."""

    def taken(self, kind: str, new_holder: bool, waited: bool) -> None:
        _child(STREAM_SLOTS, kind).inc()
        if new_holder:
            _child(STREAM_HOLDERS, kind).inc()
        if waited:
            _child(STREAM_QUEUED, kind).inc()

    def released(self, kind: str, last_of_holder: bool) -> None:
        _child(STREAM_SLOTS, kind).dec()
        if last_of_holder:
            _child(STREAM_HOLDERS, kind).dec()

    def waiting(self, kind: str, by: int) -> None:
        _child(STREAM_WAITERS, kind).inc(by)

    def refused(self, kind: str) -> None:
        _child(STREAM_REFUSED, kind).inc()

    def cut(self, kind: str) -> None:
        _child(STREAM_CUT, kind).inc()

    def most_held(self, kind: str, count: int) -> None:
        _child(STREAM_MOST_HELD, kind).set(count)


budget.OBSERVERS.append(_BudgetMetrics())


class _CodebasesCollector:
    """``bzr_store_codebases``: codebases on disk, counted at scrape time."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def collect(self):
        yield GaugeMetricFamily(
            "bzr_store_codebases",
            "Codebases with a repository in the storage directory.",
            value=len(self._storage.codebases()),
        )


def multiprocess() -> bool:
    """Whether prometheus_client runs in multiprocess mode."""
    return bool(os.environ.get(MULTIPROC_ENV))


def scrape(storage: Storage, accept: str | None) -> tuple[bytes, str]:
    """The exposition of every metric: body and content type."""
    registry = CollectorRegistry(auto_describe=False)
    if not multiprocess():
        registry.register(_Forward(REGISTRY))
    add_collectors(registry, multiprocess())  # merged files, process_*
    registry.register(_CodebasesCollector(storage))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class _Forward:
    """Collector yielding another registry's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self):
        return self._registry.collect()


def handler(face: Face, req: Request) -> list[bytes]:
    """``GET /metrics``."""
    body, content_type = scrape(face.storage, req.environ.get("HTTP_ACCEPT"))
    req.respond(200, content_type, [("Content-Length", str(len(body)))])
    return [body]


# -- the filter --


def _endpoint(environ: Environ) -> str:
    name = environ.get(ENDPOINT_KEY)
    if name:
        return name
    path = environ.get("PATH_INFO", "")
    if path.endswith("/.bzr/smart"):
        return "smart"
    if path == "/health":
        return "health"
    return "other"


def _verb(verb: bytes | None) -> str:
    """The label of a verb: breezy's verbs only (bounded label values).

    Anything else, and a request in an older protocol (a client's first
    ``hello`` probe is in version 2, whose verb is not recorded), is
    ``unknown``.
    """
    if verb is None or verb_category(verb) is None:
        return "unknown"
    return verb.decode("ascii", "replace")


@functools.lru_cache(maxsize=4096)
def _child(metric, *labels: str):
    """``metric.labels(*labels)``, kept: ``labels()`` validates and locks on
    every call, and label values come from small fixed sets (faces,
    endpoints, methods, status codes, breezy's verbs)."""
    return metric.labels(*labels)


class _Observation:
    """What the filter learns about one request until its body is done."""

    __slots__ = ("environ", "error", "face", "received", "sent", "start", "status")

    def __init__(self, face: str, environ: Environ) -> None:
        self.face = face
        self.environ = environ
        self.start = time.perf_counter()
        self.status = "500"
        self.sent = 0
        self.received = 0
        self.error: str | None = None

    def finish(self) -> None:
        env = self.environ
        endpoint = _endpoint(env)
        method = env.get("REQUEST_METHOD", "")
        method = method if method in _METHODS else "other"
        face = self.face
        _child(LATENCY, face, endpoint).observe(time.perf_counter() - self.start)
        if self.received:
            _child(RECEIVED, face).inc(self.received)
        if self.sent:
            _child(SENT, face).inc(self.sent)
        if SMART_VERB_KEY in env:  # the request reached the smart protocol
            _child(SMART_CALLS, face, _verb(env[SMART_VERB_KEY])).inc()
        if self.status.startswith("5"):
            _child(ERRORS, face, endpoint, "status").inc()
        if self.error is not None:
            _child(ERRORS, face, endpoint, "aborted").inc()
        # last: once a request is counted, all its other metrics are in
        _child(REQUESTS, face, endpoint, method, self.status).inc()


class _CountingInput:
    """``wsgi.input`` counting the bytes the application reads."""

    def __init__(self, stream, observation: _Observation) -> None:
        self._stream = stream
        self._observation = observation

    def _count(self, data):
        self._observation.received += len(data)
        return data

    def read(self, *args):
        return self._count(self._stream.read(*args))

    def readline(self, *args):
        return self._count(self._stream.readline(*args))

    def readlines(self, *args):
        lines = self._stream.readlines(*args)
        self._observation.received += sum(len(line) for line in lines)
        return lines

    def __iter__(self):
        return (self._count(line) for line in self._stream)


class _ObservedBody:
    """The response body, counted; the observation ends when it is closed."""

    def __init__(self, body: Iterable[bytes], observation: _Observation) -> None:
        self._body = body
        self._observation = observation
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._body:
                self._observation.sent += len(chunk)
                yield chunk
        except BaseException as e:
            self._observation.error = type(e).__name__
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if not self._done:
                self._done = True
                self._observation.finish()


def metrics_filter(wsgi: Callable, face: str) -> Callable:
    """``wsgi``, serving ``face``, with every request observed for the metrics."""

    def observed(environ: Environ, start_response: Callable[..., Any]):
        observation = _Observation(face, environ)
        if "wsgi.input" in environ:
            environ["wsgi.input"] = _CountingInput(environ["wsgi.input"], observation)

        def counting_start_response(status, headers, exc_info=None):
            observation.status = status.split(" ", 1)[0]
            write = start_response(status, headers, exc_info)

            def counting_write(data: bytes):
                observation.sent += len(data)
                return write(data)

            return counting_write

        try:
            body = wsgi(environ, counting_start_response)
        except BaseException as e:
            observation.error = type(e).__name__
            observation.finish()
            raise
        return _ObservedBody(body, observation)

    return observed
