"""Message framing a server must not guess at.

* Requests: a ``Content-Length`` given more than once, or not as plain
  decimal digits, is refused (``400``, the connection closed), in the
  embedded server and in :class:`StoreApp` for WSGI servers that pass such
  a header on (joined with commas, or as sent).  Two servers that read
  such a request differently (one the first length, the other the last, or
  ``+46`` as 46 or as an error) disagree on where the next request starts.
* Responses (:func:`hold_to_length`): a body never goes past the
  ``Content-Length`` its response declared.  Bytes past it would be read,
  on a kept-alive connection, as the next response: a view that yields
  more than it declared is cut there and the error logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .http import Request

__all__ = ["content_length_problem", "hold_to_length", "refuse_odd_lengths"]

logger = logging.getLogger(__name__)

_DIGITS = re.compile(r"[0-9]{1,18}")


def content_length_problem(values: list[str]) -> str | None:
    """Why the ``Content-Length`` header ``values`` (each as received) make
    the request's length ambiguous, or ``None`` when they do not."""
    if len(values) > 1:
        return "more than one Content-Length"
    if values and not _DIGITS.fullmatch(values[0].strip()):
        return "invalid Content-Length"
    return None


def refuse_odd_lengths(wsgi: Callable) -> Callable:
    """``wsgi``, answering ``400`` with ``Connection: close`` to a request
    whose ``CONTENT_LENGTH`` is not one plain decimal number."""

    def filtered(environ: dict, start_response: Callable) -> Iterable[bytes]:
        value = environ.get("CONTENT_LENGTH")
        problem = content_length_problem(value.split(",")) if value else None
        if problem is not None:
            return Request(environ, start_response).text(
                400, problem, [("Connection", "close")]
            )
        return wsgi(environ, start_response)

    return filtered


def hold_to_length(wsgi: Callable) -> Callable:
    """``wsgi``, whose response bodies stop at the ``Content-Length`` their
    response declared."""

    def filtered(environ: dict, start_response: Callable) -> Iterable[bytes]:
        declared: list[int] = []

        def start(status: str, headers: list, exc_info: Any = None) -> Callable:
            declared.clear()
            for name, value in headers:
                if name.lower() == "content-length" and _DIGITS.fullmatch(value):
                    declared.append(int(value))
            return start_response(status, headers, exc_info)

        body = wsgi(environ, start)
        if isinstance(body, list) and declared and sum(map(len, body)) <= declared[0]:
            return body  # the common case: whole, and within its length
        return _Held(body, declared)

    return filtered


class _Held:
    """A response body cut at its declared length (``declared`` is filled
    once the response starts)."""

    def __init__(self, body: Iterable[bytes], declared: list[int]) -> None:
        self._body = body
        self._declared = declared

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self._body:
            if self._declared:
                left = self._declared[0] - sent
                if len(chunk) > left:
                    logger.error(
                        "a response body went past its Content-Length of %d "
                        "bytes: cut there",
                        self._declared[0],
                    )
                    if left > 0:
                        yield chunk[:left]
                    return
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
