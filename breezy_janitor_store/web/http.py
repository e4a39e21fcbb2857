"""A small request wrapper and router, in the style of ``dulwich.web``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..policy.policies import Environ

__all__ = [
    "ENDPOINT_KEY",
    "STATUS",
    "HTTPError",
    "Released",
    "Request",
    "Router",
    "negotiate",
]

#: environ key where the router names the endpoint it chose (the metrics label).
ENDPOINT_KEY = "breezy_janitor_store.endpoint"

STATUS = {
    200: "OK",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    416: "Range Not Satisfiable",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

Headers = list[tuple[str, str]]


class HTTPError(Exception):
    """A refusal: status code, plain-text reason and extra headers."""

    def __init__(
        self, status: int, reason: str, headers: Headers | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []


class Request:
    """One WSGI request: its environ and a way to start the response."""

    def __init__(self, environ: Environ, start_response: Callable[..., Any]) -> None:
        self.environ = environ
        self._start_response = start_response

    @property
    def method(self) -> str:
        return self.environ["REQUEST_METHOD"]

    @property
    def path(self) -> str:
        return self.environ.get("PATH_INFO", "") or "/"

    def respond(
        self, status: int, content_type: str | None = None, headers: Headers = ()
    ) -> None:
        """Start the response."""
        all_headers = list(headers)
        if content_type:
            all_headers.append(("Content-Type", content_type))
        self._start_response(f"{status} {STATUS[status]}", all_headers)

    def text(self, status: int, text: str, headers: Headers = ()) -> list[bytes]:
        """A complete plain-text response."""
        body = (text.rstrip("\n") + "\n").encode("utf-8")
        self.respond(
            status,
            "text/plain; charset=utf-8",
            [("Content-Length", str(len(body))), *headers],
        )
        return [body]


Handler = Callable[..., Iterable[bytes]]
#: ``(method, regex, endpoint name, handler)``.
RouteEntry = tuple[str, str, str, Handler]


class Router:
    """Routes ``(method, regex, endpoint, handler)``, tried in order.

    A match calls ``handler(req, **groups)`` after naming ``endpoint`` in
    ``environ[ENDPOINT_KEY]``; ``HEAD`` takes the ``GET`` route (the body is
    dropped by the HEAD filter, :func:`breezy_janitor_store.web.filters.head`).
    ``OPTIONS`` of a routed path answers ``200`` with ``Allow``; a path no
    route matches is ``404`` (directory routes take both ``/x`` and ``/x/``,
    so nothing is redirected).
    """

    def __init__(self, routes: Iterable[RouteEntry]) -> None:
        self._routes = [
            (method, re.compile(pattern + r"\Z"), endpoint, handler)
            for method, pattern, endpoint, handler in routes
        ]

    def dispatch(self, req: Request) -> Iterable[bytes]:
        allowed = []
        method = "GET" if req.method == "HEAD" else req.method
        for route_method, regex, endpoint, handler in self._routes:
            match = regex.match(req.path)
            if match is None:
                continue
            if route_method == method:
                req.environ[ENDPOINT_KEY] = endpoint
                return handler(req, **match.groupdict())
            allowed.append(route_method)
        if allowed:
            allow = ", ".join(
                sorted(set(allowed + (["HEAD"] if "GET" in allowed else [])))
            )
            if req.method == "OPTIONS":
                return req.text(200, allow, [("Allow", allow)])
            raise HTTPError(
                405, f"method {req.method} not allowed here", [("Allow", allow)]
            )
        raise HTTPError(404, "not found")


def negotiate(accept: str | None, offers: tuple[str, ...]) -> str | None:
    """The offer ``accept`` prefers (RFC 9110 q-values), ``None`` if none.

    Each offer takes the quality of the most specific range matching it;
    of offers of equal quality, one a client named (``text/html``) wins
    over one it only matched with a wildcard (``application/*``), then the
    earlier offer.
    """
    ranges = []
    for item in (accept or "*/*").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if "/" not in media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), min(max(q, 0.0), 1.0)))
    best, best_key = None, (0.0, 0)
    for offer in offers:
        kind = offer.split("/")[0] + "/*"
        matches = [
            (specificity, q)
            for media, q in ranges
            for specificity, pattern in ((2, offer), (1, kind), (0, "*/*"))
            if media == pattern
        ]
        if not matches:
            continue
        specificity, q = max(matches)
        if q > 0 and (q, specificity) > best_key:
            best, best_key = offer, (q, specificity)
    return best


class Released:
    """A response body calling ``release`` exactly once: when it is done,
    fails, or is closed (also when closed before its first chunk).  What
    a streamed answer holds (a stream-budget slot, a read lock) is given
    back through it."""

    def __init__(self, body: Iterable[bytes], release: Callable[[], None]) -> None:
        self._body = body
        self._release = release
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        finally:
            self.close()

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._release()
