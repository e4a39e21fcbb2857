"""The janitor's PostgreSQL database: which codebases exist, who may push.

:class:`Database` wraps a ``psycopg_pool`` connection pool with short
timeouts; :class:`PostgresCodebases` (a codebase policy) and
:class:`PostgresWorkers` (a credential check for
:class:`~breezy_janitor_store.policy.auth.BasicAuth`) query it, remembering answers
briefly because a smart-protocol conversation makes many HTTP requests:

* a codebase found in ``codebase`` is remembered for :data:`CODEBASE_TTL`
  seconds (so a deleted codebase stops being served within that time), one
  not found for :data:`MISSING_CODEBASE_TTL` seconds;
* a worker's successful login is remembered for
  :data:`~breezy_janitor_store.policy.auth.WORKER_TTL` seconds; a failed one is
  never remembered.

While the database does not answer, a lookup that is not remembered raises
:class:`~breezy_janitor_store.policy.policies.PolicyUnavailable` (``503``) within
:data:`DEFAULT_TIMEOUT` seconds (plus one at most); the pool reconnects by itself in the
background, so service resumes within seconds of the database's return.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo as _conninfo
from psycopg_pool import ConnectionPool

from ..store.layout import is_valid_name
from .auth import WORKER_TTL, SuccessCache, TTLCache, plausible
from .config import ConfigError
from .policies import PolicyUnavailable

__all__ = [
    "CODEBASE_TTL",
    "DEFAULT_TIMEOUT",
    "MISSING_CODEBASE_TTL",
    "Database",
    "PostgresCodebases",
    "PostgresWorkers",
]

logger = logging.getLogger(__name__)

#: Seconds to wait for a connection, and for a statement to run.
DEFAULT_TIMEOUT = 3.0
#: Seconds a codebase found in the database is remembered.
CODEBASE_TTL = 60.0
#: Seconds a codebase missing from the database is remembered.
MISSING_CODEBASE_TTL = 10.0
#: Seconds the pool keeps retrying a lost connection in the background
#: (with backoff: 1 s, then 2 s, ...) before leaving it to the next request.
RECONNECT_TIMEOUT = 5.0

T = TypeVar("T")


def _with_defaults(conninfo: str, timeout: float) -> str:
    """``conninfo`` with short timeouts, unless it sets its own.

    :raises ConfigError: ``conninfo`` is not a PostgreSQL URL or conninfo.
    """
    try:
        given = _conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error:
        # (psycopg's message would quote the URL, password included)
        raise ConfigError(
            "invalid database URL: expected postgresql://... or a conninfo string"
        ) from None
    seconds = max(2, round(timeout))  # libpq's minimum connect_timeout is 2
    defaults: dict[str, Any] = {
        "connect_timeout": seconds,
        "application_name": "breezy-janitor-store",
        # a server gone without a word (TCP only; ignored on Unix sockets)
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        "tcp_user_timeout": seconds * 1000,
    }
    extra = {k: v for k, v in defaults.items() if k not in given}
    options = given.get("options") or ""
    if "statement_timeout" not in options:
        extra["options"] = (
            f"{options} -c statement_timeout={int(timeout * 1000)}".strip()
        )
    return _conninfo.make_conninfo(conninfo, **extra)


class Database:
    """A connection pool to the janitor's database, with short timeouts.

    :param source: a PostgreSQL URL or conninfo string, or an open
        ``psycopg_pool.ConnectionPool`` to share (then this object neither
        configures nor closes it).
    :param timeout: seconds to wait for a connection and, for pools made
        here, for connecting and for each statement.  A query is abandoned
        (``503``) after at most this plus one second.
    :param max_size: most connections of a pool made here.
    """

    def __init__(
        self,
        source: str | ConnectionPool,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_size: int = 4,
    ) -> None:
        self.timeout = timeout
        self._down = False
        if isinstance(source, ConnectionPool):
            self.pool, self._owned = source, False
            return
        self.pool = ConnectionPool(
            _with_defaults(source, timeout),
            kwargs={"autocommit": True},
            min_size=1,
            max_size=max_size,
            open=False,
            check=ConnectionPool.check_connection,
            timeout=timeout,
            max_waiting=64,
            reconnect_timeout=RECONNECT_TIMEOUT,
            name="janitor-store",
        )
        self._owned = True
        # Connect in the background: the store starts even if the database
        # is down, answering 503 until it is back.
        self.pool.open(wait=False)

    def query_one(self, sql: str, params: tuple = ()) -> tuple | None:
        """The first row of a query (or None).

        :raises PolicyUnavailable: the database cannot answer now.
        :raises psycopg.DataError: the database refused the parameters.
        """

        def run() -> tuple | None:
            with self.pool.connection(timeout=self.timeout) as conn:
                row = conn.execute(sql, params).fetchone()
                if not conn.autocommit:  # a shared pool's connection
                    conn.rollback()
                return row

        return self._bounded(run)

    def check_ready(self) -> None:
        """:raises PolicyUnavailable: the database does not answer."""
        self.query_one("SELECT 1")

    def close(self) -> None:
        """Close the pool, if this object made it."""
        if self._owned:
            self.pool.close()

    def _bounded(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a helper thread, given up after a deadline.

        The statement timeout is enforced by the server; a server that stops
        answering altogether (frozen, network gone) would leave a query
        blocked, so the caller never waits for more than the deadline.
        """
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box["error"] = e
            finally:
                done.set()

        threading.Thread(target=target, name="janitor-store-db", daemon=True).start()
        if not done.wait(self.timeout + 1):
            self._unavailable("no answer within the deadline")
        error = box.get("error")
        if error is None:
            if self._down:
                self._down = False
                logger.warning("database available again")
            return box["value"]
        if isinstance(error, psycopg.DataError):
            raise error
        if isinstance(error, psycopg.Error):
            self._unavailable(str(error).strip() or type(error).__name__)
        raise error

    def _unavailable(self, why: str) -> None:
        if not self._down:
            self._down = True
            logger.warning("database unavailable: %s", why)
        else:
            logger.debug("database unavailable: %s", why)
        raise PolicyUnavailable("database unavailable")


class PostgresCodebases:
    """Codebase policy: a codebase exists if it has a row in ``codebase``.

    :param database: a :class:`Database` (shared with other policies).
    :param ttl: seconds a found codebase is remembered.
    :param missing_ttl: seconds a missing codebase is remembered.
    """

    def __init__(
        self,
        database: Database,
        *,
        ttl: float = CODEBASE_TTL,
        missing_ttl: float = MISSING_CODEBASE_TTL,
    ) -> None:
        self.database = database
        self.ttl = ttl
        self.missing_ttl = missing_ttl
        self._cache = TTLCache()

    def codebase_exists(self, name: str) -> bool:
        if not is_valid_name(name):
            return False
        known = self._cache.get(name)
        if known is not None:
            return known
        row = self.database.query_one("SELECT 1 FROM codebase WHERE name = %s", (name,))
        exists = row is not None
        self._cache.put(name, exists, self.ttl if exists else self.missing_ttl)
        return exists

    def check_ready(self) -> None:
        """:raises PolicyUnavailable: the database does not answer."""
        self.database.check_ready()


class PostgresWorkers:
    """Credential check against the ``worker`` table's ``crypt()`` hashes.

    :param database: a :class:`Database` (shared with other policies).
    :param ttl: seconds a successful check is remembered (a worker removed
        from the table keeps write access at most this long).
    """

    def __init__(self, database: Database, *, ttl: float = WORKER_TTL) -> None:
        self.database = database
        self._successes = SuccessCache(ttl)

    def check(self, username: str, password: str) -> bool:
        if not plausible(username, password):
            return False
        if self._successes.known(username, password):
            return True
        try:
            row = self.database.query_one(
                "SELECT 1 FROM worker WHERE name = %s AND password = crypt(%s, password)",
                (username, password),
            )
        except psycopg.DataError as e:  # e.g. a stored hash crypt() cannot read
            logger.error("cannot check the password of worker %r: %s", username, e)
            return False
        if row is None:
            return False
        self._successes.remember(username, password)
        return True

    def check_ready(self) -> None:
        """:raises PolicyUnavailable: the database does not answer."""
        self.database.check_ready()
