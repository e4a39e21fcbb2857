"""The id of the request being served, for log lines at any layer.

The web layer (:mod:`breezy_janitor_store.web.filters`) sets
:data:`request_id_var` for each request; bzr-side modules (smart, locks)
read it with :func:`current_request_id` without importing the web layer.
"""

from __future__ import annotations

import contextvars
import logging

__all__ = ["RequestIdLogFilter", "current_request_id", "request_id_var"]

#: The id of the request being served by the current thread (or task).
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "breezy_janitor_store_request_id", default="-"
)


def current_request_id() -> str:
    """Id of the request being served here, or ``-`` outside requests."""
    return request_id_var.get()


class RequestIdLogFilter(logging.Filter):
    """Give each record a ``request_id`` attribute (for ``%(request_id)s``).

    Attach it to a handler: ``handler.addFilter(RequestIdLogFilter())``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True
