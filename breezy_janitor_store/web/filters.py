"""Cross-cutting concerns as WSGI filters around StoreApp's dispatcher.

* **Client address.**  From a trusted reverse proxy (``trusted_proxies``,
  :mod:`breezy_janitor_store.policy.proxy`), ``REMOTE_ADDR`` becomes the client it
  forwards for, and its valid ``X-Request-Id`` is the request's id; from
  anyone else those headers are dropped unread.
* **Request ids.**  Every request gets an id (a fresh one unless a trusted
  proxy gave one), returned in the
  ``X-Request-Id`` response header (next to ``X-Content-Type-Options:
  nosniff``, sent with every response) and kept in ``environ[REQUEST_ID_KEY]``.
  While the application and its response body run, :data:`request_id_var`
  holds it too, so :func:`current_request_id` names the request in any log
  line (the store's own error lines include it; :class:`RequestIdLogFilter`
  gives every log record a ``request_id`` attribute for handler formats).
* **Path escapes.**  A request whose target, as sent (``REQUEST_URI`` or
  ``RAW_URI`` when the server provides it) or as decoded (``PATH_INFO``),
  has a dot or empty segment, an encoded slash, dot, backslash or NUL, a backslash
  or a control character is refused with ``400`` before any route sees it:
  servers decode and normalise paths (``/a/%2e%2e/b`` reaches the
  application as ``/b``), and no store URL needs any of these.
* **Response framing.**  A body never goes past its declared
  ``Content-Length`` (:func:`.framing.hold_to_length`).
* **HEAD.**  A ``HEAD`` request is answered as its ``GET`` would be, with
  the same headers and no body (the body is closed unread).
* **Access log.**  One line per request in the common log format
  (``host ident user [time] "request" status bytes``) followed by
  ``rt=SECONDS rid=REQUEST_ID``, on the ``breezy_janitor_store.access``
  logger at INFO, ``user`` being ``environ["REMOTE_USER"]`` (the
  authenticated worker) or ``-``; the record's ``access`` attribute holds
  the same fields as a dict, for structured formats.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from ..policy.proxy import NO_PROXIES, TRUSTED_REQUEST_ID_KEY, TrustedProxies
from ..store.context import RequestIdLogFilter, current_request_id, request_id_var
from .framing import hold_to_length, refuse_odd_lengths
from .http import Request
from .logs import ACCESS_KEY
from .metrics import metrics_filter
from .opsmetrics import IN_FLIGHT

__all__ = [
    "NOSNIFF",
    "REQUEST_ID_HEADER",
    "REQUEST_ID_KEY",
    "RequestIdLogFilter",
    "access_line",
    "current_request_id",
    "head",
    "request_id_var",
    "wrap",
]

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("breezy_janitor_store.access")

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_KEY = "breezy_janitor_store.request_id"
#: Sent with every response: no browser takes a plain-text refusal echoing
#: its input (or a file of a branch) for HTML.
NOSNIFF = ("X-Content-Type-Options", "nosniff")
_OWN_HEADERS = frozenset({REQUEST_ID_HEADER.lower(), NOSNIFF[0].lower()})


def wrap(wsgi: Callable, face: str, proxies: TrustedProxies | None = None) -> Callable:
    """``wsgi``, serving ``face``, wrapped in the store's filters; the
    forwarding headers of ``proxies`` are believed (default: nobody's)."""
    return _with_request_id(
        head(
            hold_to_length(
                _refuse_path_escapes(refuse_odd_lengths(metrics_filter(wsgi, face)))
            )
        ),
        proxies or NO_PROXIES,
        face,
    )


def head(wsgi: Callable) -> Callable:
    """``wsgi`` answering ``HEAD`` requests with headers only.

    The application answers ``HEAD`` as ``GET``; its body is closed unread
    (iterated only as far as needed for it to start the response).
    """

    def filtered(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "HEAD":
            return wsgi(environ, start_response)
        started = []

        def start(status: str, headers: list, exc_info: Any = None) -> Callable:
            started.append(True)
            start_response(status, headers, exc_info)
            return _discard

        body = wsgi(environ, start)
        try:
            if not started:
                for _ in body:
                    if started:
                        break
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return []

    return filtered


def _discard(data: bytes) -> None:
    """The ``write`` of a HEAD response: its body is not sent."""


#: What no store URL has: dot segments, encoded "." "/" "\" NUL, "\",
#: control characters (in the path; the query string is not judged).
_PATH_ESCAPE = re.compile(
    r"%(?:2e|2f|5c|00)|\\|//|(?:^|/)\.\.?(?:/|$)|[\x00-\x1f\x7f]", re.IGNORECASE
)


def _escapes(path: str) -> bool:
    """Whether :data:`_PATH_ESCAPE` finds anything in ``path``.

    Its search is run only on a path holding one of the characters it looks
    for besides "/" and "." (rare); without them, only a dot segment can
    match, which splitting finds for less.
    """
    if "%" in path or "\\" in path or "//" in path or not path.isprintable():
        return _PATH_ESCAPE.search(path) is not None
    segments = path.split("/")
    return "." in segments or ".." in segments


def _refuse_path_escapes(wsgi: Callable) -> Callable:
    """Answer ``400`` to requests whose path tries to escape (see above)."""

    def filtered(environ: dict, start_response: Callable) -> Iterable[bytes]:
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
        raw = raw.split("?", 1)[0].split("#", 1)[0]
        if raw.startswith(("http://", "https://")):  # absolute-form target
            raw = "/" + raw.split("/", 3)[-1] if raw.count("/") >= 3 else "/"
        if _escapes(raw) or _escapes(environ.get("PATH_INFO", "")):
            return Request(environ, start_response).text(
                400, "path escapes are not allowed"
            )
        return wsgi(environ, start_response)

    return filtered


def _with_request_id(
    wsgi: Callable, proxies: TrustedProxies, face: str = "-"
) -> Callable:
    """Client address, request id, access log and the in-flight gauge around
    ``wsgi`` (the outermost filter)."""
    in_flight = IN_FLIGHT.labels(face)
    # written now, so every live process has its series (and its pid is
    # seen in multiprocess mode) before it serves anything
    in_flight.inc(0)

    def filtered(environ: dict, start_response: Callable) -> Iterable[bytes]:
        proxies.apply(environ)
        rid = environ.get(TRUSTED_REQUEST_ID_KEY) or secrets.token_hex(16)
        environ[REQUEST_ID_KEY] = rid
        record = _Exchange(environ, in_flight)

        def start(status: str, headers: list, exc_info: Any = None) -> Callable:
            record.status = status.split(" ", 1)[0]
            headers = [h for h in headers if h[0].lower() not in _OWN_HEADERS]
            headers += [(REQUEST_ID_HEADER, rid), NOSNIFF]
            write = start_response(status, headers, exc_info)

            def counting_write(data: bytes) -> None:
                record.sent += len(data)
                write(data)

            return counting_write

        token = request_id_var.set(rid)
        try:
            body = wsgi(environ, start)
        except BaseException:
            record.log()
            raise
        finally:
            request_id_var.reset(token)
        return _Body(body, record, rid)

    return filtered


class _Exchange:
    """What the access log needs to know about one request."""

    def __init__(self, environ: dict, in_flight=None) -> None:
        self.environ = environ
        self.started = time.time()
        self.clock = time.perf_counter()
        self.status = "-"
        self.sent = 0
        self.logged = False
        self.in_flight = in_flight
        if in_flight is not None:
            in_flight.inc()

    def log(self) -> None:
        if not self.logged:
            self.logged = True
            if self.in_flight is not None:
                self.in_flight.dec()
            if access_logger.isEnabledFor(logging.INFO):
                duration = time.perf_counter() - self.clock
                access_logger.info(
                    "%s",
                    access_line(
                        self.environ, self.status, self.sent, self.started, duration
                    ),
                    extra={
                        ACCESS_KEY: self.fields(duration),
                        "request_id": self.environ.get(REQUEST_ID_KEY, "-"),
                    },
                )

    def fields(self, duration: float) -> dict:
        """The line's fields, for structured (JSON) log formats."""
        env = self.environ
        return {
            "client": env.get("REMOTE_ADDR") or None,
            "user": env.get("REMOTE_USER") or None,
            "method": env.get("REQUEST_METHOD"),
            "path": _request_path(env),
            "protocol": env.get("SERVER_PROTOCOL"),
            "status": int(self.status) if self.status.isdigit() else None,
            "bytes": self.sent,
            "duration": round(duration, 6),
            "request_id": env.get(REQUEST_ID_KEY),
        }


class _Body:
    """The response body: counted, run with the request id set, then logged."""

    def __init__(self, body: Iterable[bytes], record: _Exchange, rid: str) -> None:
        self._body = body
        self._record = record
        self._rid = rid

    def __iter__(self) -> Iterator[bytes]:
        token = request_id_var.set(self._rid)
        try:
            iterator = iter(self._body)
        finally:
            request_id_var.reset(token)
        while True:
            token = request_id_var.set(self._rid)
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except Exception:
                # Headers are out: all the client can see is a cut response.
                logger.exception(
                    "error producing the response to %s %s (request %s)",
                    self._record.environ.get("REQUEST_METHOD"),
                    _request_path(self._record.environ),
                    self._rid,
                )
                return
            finally:
                request_id_var.reset(token)
            self._record.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        token = request_id_var.set(self._rid)
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            request_id_var.reset(token)
            self._record.log()


def _request_path(environ: dict) -> str:
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        return raw
    path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    query = environ.get("QUERY_STRING")
    return path + ("?" + query if query else "")


#: Text a log field takes as it is: printable ASCII but quotes and backslashes.
_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f-\U0010ffff]*')


def _escape(text: str) -> str:
    """``text`` safe inside a quoted log field: no quotes or control chars."""
    if _PLAIN.fullmatch(text):
        return text
    out = []
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable() and ch.isascii():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


#: Month names of the common log format (``%b`` would follow the locale).
_MONTHS = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def access_line(
    environ: dict, status: str, sent: int, when: float, duration: float | None = None
) -> str:
    """A common-log-format line for one request, followed by its duration
    in seconds (``rt=``) and its request id (``rid=``)."""
    user = environ.get("REMOTE_USER") or "-"
    request = " ".join(
        (
            environ.get("REQUEST_METHOD", "-"),
            _request_path(environ),
            environ.get("SERVER_PROTOCOL", "HTTP/1.0"),
        )
    )
    local = time.localtime(when)
    stamp = time.strftime(f"%d/{_MONTHS[local.tm_mon - 1]}/%Y:%H:%M:%S %z", local)
    return '{} - {} [{}] "{}" {} {} rt={} rid={}'.format(
        _escape(environ.get("REMOTE_ADDR") or "-").replace(" ", "\\x20"),
        _escape(user).replace(" ", "\\x20") or "-",
        stamp,
        _escape(request),
        status,
        sent or "-",
        "-" if duration is None else f"{duration:.3f}",
        environ.get(REQUEST_ID_KEY) or "-",
    )
