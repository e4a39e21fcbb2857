"""Request framing a server must not guess at: a ``Content-Length`` given
more than once, or not as plain decimal digits, is refused (``400``, the
connection closed), in the embedded server and in :class:`StoreApp` for
WSGI servers that pass such a header on (joined with commas, or as sent).

Two servers that read such a request differently (one the first length,
the other the last, or ``+46`` as 46 or as an error) disagree on where the
next request starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .http import Request

__all__ = ["content_length_problem", "refuse_odd_lengths"]

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
