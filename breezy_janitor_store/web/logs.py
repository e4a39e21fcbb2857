"""One log format for everything a store process logs.

``serve`` and the WSGI entry send every logger of the process through one
handler on the root logger, in one format: the store's messages and access
lines, breezy's own (``brz``: notes and warnings, such as a write waiting
for a lock), the libraries' (``psycopg``, ``psycopg_pool``, Python's
warnings) and, under gunicorn, gunicorn's own in its workers.

* ``text`` (the default): ``TIME LEVEL [REQUEST_ID] LOGGER: MESSAGE``, one
  record a line; the further lines of a record (a multi-line message, a
  traceback) are indented by two spaces;
* ``json``: one JSON object a line, with ``time`` (UTC, ISO 8601),
  ``level``, ``logger``, ``message``, ``request_id`` (``null`` outside
  requests), ``pid``, ``exception`` (a traceback, if any) and, for access
  lines, ``http``: ``client``, ``user``, ``method``, ``path``,
  ``protocol``, ``status``, ``bytes``, ``duration`` (seconds) and
  ``request_id``.

Chosen by ``--log-format`` (``BZR_STORE_LOG_FORMAT``).
"""

from __future__ import annotations

import json
import logging
import time

from ..store.context import RequestIdLogFilter, current_request_id

__all__ = [
    "FORMATS",
    "LOG_FORMAT_ENV",
    "TEXT_FORMAT",
    "JsonFormatter",
    "TextFormatter",
    "check_format",
    "flush_all",
    "formatter",
    "route_all",
]

FORMATS = ("text", "json")
LOG_FORMAT_ENV = "BZR_STORE_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
#: Attribute of an access record holding its fields (see ``filters``).
ACCESS_KEY = "access"
#: Loggers of libraries a store process uses, at INFO and above.
_LIBRARIES = ("brz", "psycopg", "psycopg_pool", "py.warnings")
#: Marks the handler :func:`route_all` installed.
_MARK = "_breezy_janitor_store_handler"


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        # a line not starting with a time continues the one before
        return "\n  ".join(super().format(record).rstrip("\n").split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module's description)."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or current_request_id()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if rid == "-" else rid,
            "pid": record.process,
        }
        access = getattr(record, ACCESS_KEY, None)
        if isinstance(access, dict):
            out["http"] = access
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, default=str)


def check_format(name: str) -> str:
    """``name`` if it is a log format.

    :raises ValueError: naming the formats.
    """
    if name not in FORMATS:
        raise ValueError(
            f"log format must be one of {', '.join(FORMATS)}, not {name!r}"
        )
    return name


def formatter(name: str) -> logging.Formatter:
    return JsonFormatter() if check_format(name) == "json" else TextFormatter()


def route_all(handler: logging.Handler, level: int) -> bool:
    """Send every logger of the process through ``handler`` (once).

    The root logger gets ``handler`` at WARNING; the store's package and
    the libraries' loggers log from ``level`` (the store's) or INFO.
    breezy's ``brz`` logger keeps its file (``~/.brz.log`` or ``BRZ_LOG``)
    but its bare standard-error handler is replaced; gunicorn's handlers,
    when it runs this process, take the same format.  Returns False if it
    was done already.
    """
    root = logging.getLogger()
    if any(getattr(h, _MARK, False) for h in root.handlers):
        return False
    setattr(handler, _MARK, True)
    handler.addFilter(RequestIdLogFilter())
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger(__package__.rpartition(".")[0]).setLevel(level)
    for name in _LIBRARIES:
        library = logging.getLogger(name)
        if library.level == logging.NOTSET or library.level > logging.INFO:
            library.setLevel(logging.INFO)
    logging.captureWarnings(True)
    # breezy's own handlers: its file (kept, with its debug records) and a
    # bare one on standard error (replaced by ours, from INFO)
    brz = logging.getLogger("brz")
    for h in list(brz.handlers):
        if type(h) is logging.StreamHandler:
            brz.removeHandler(h)
    brz.addHandler(_Above(handler, logging.INFO))
    brz.propagate = False
    for h in logging.getLogger("gunicorn.error").handlers:
        h.setFormatter(handler.formatter)
        h.addFilter(RequestIdLogFilter())
    return True


def flush_all() -> None:
    """Write what every handler of the process holds (before ``os._exit``)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            try:
                handler.flush()
            except Exception:  # noqa: BLE001, S112 - best effort at exit
                continue


class _Above(logging.Handler):
    """``target`` for records at ``level`` and above only (breezy's logger
    logs its debug records to its file)."""

    def __init__(self, target: logging.Handler, level: int) -> None:
        super().__init__(level)
        self._target = target

    def handle(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        return self._target.handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        self._target.handle(record)
