"""Lock leases: a lock the store took for a client is held while it is used.

A branch lock (``Branch.lock_write``) outlives the request that took it: the
client holds it by its token until ``Branch.unlock``.  A client that walks
away leaves it held on disk.  With a lease of ``lease`` seconds, such a lock
(one the store took for a client: its record names the request, see
:mod:`breezy_janitor_store.store.holders`) is held while its holder uses it, and
broken by the next writer that would wait for it once the holder has been
silent for the lease (:func:`breezy_janitor_store.store.locks.before_write`).

The holder's last use is the modification time of the lock's record
(``held/info``): on disk, so every process serving the storage directory
sees it, renewed with one ``utime`` (:func:`breezy_janitor_store.store.locks.touch`),
and only the store moves it (clients never write inside a control
directory).  A smart request (:class:`RequestLeases`, entered for each one
on a writable face) uses:

* the branch lock of its location when it presents the lock's token (the
  holding's nonce) as an argument (``Branch.set_last_revision_info``,
  ``Branch.unlock``, a ``Branch.lock_write`` with tokens, ...);
* for an insert stream, the branch lock of its location when the same
  worker, from the same address, holds it (a push sends its revisions with
  the branch locked, but the stream carries no branch token);
* every lock taken while it runs (the branch lock of ``Branch.lock_write``;
  the repository's lock while the store records new packs).

The locks a request uses are renewed when it starts using them, every
quarter of the lease while it runs (a process-wide thread), and when it
ends, so the lease counts from the end of the holder's last request.  While
the request's body is being read, a renewal needs some of its bytes to have
arrived since the last one: a long insert stream whose bytes keep arriving
is activity, a client gone silent mid-body (its host dead, no reset ever
coming, under a server without read timeouts) is not.  Once the body is in,
the store is working for the holder (recording packs, say) until it answers.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from typing import BinaryIO, Self

from breezy import errors
from breezy.lock import Lock, LockResult
from breezy.lockdir import LockHeldInfo

from ..store import layout, locks
from ..store.holders import CLIENT, holder_fields
from ..store.storage import Storage
from .verbs import INSERT_STREAM_VERBS

__all__ = [
    "BODY_STEP",
    "DEFAULT_LEASE",
    "RequestLeases",
    "install_hooks",
    "parse_lease",
]

logger = logging.getLogger(__name__)

#: Default lease, in seconds (``--lock-lease``).
DEFAULT_LEASE = 120.0
#: Bounds of the interval at which running requests renew their locks.
MIN_RENEWAL = 0.1
MAX_RENEWAL = 30.0
#: Bytes of a request body read at a time while the request uses a lock.
BODY_STEP = 8 * 1024
#: A holding's nonce as breezy's ``LockDir`` makes it (``rand_chars(20)``).
_NONCE = re.compile(rb"[0-9a-z]{20}")

_current: contextvars.ContextVar[RequestLeases | None] = contextvars.ContextVar(
    "breezy_janitor_store_leases", default=None
)


def parse_lease(raw: str | float | None) -> float | None:
    """A lease setting: seconds, or ``0``/``off`` for none.

    :raises ValueError: not a number of seconds, or negative.
    """
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw.strip().lower() == "off":
            return None
        raw = float(raw)
    seconds = float(raw)
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"invalid lease: {raw!r}")
    return seconds or None


class RequestLeases:
    """The locks one smart request uses, renewed while it runs.

    :param storage: the storage directory.
    :param location: where the request was sent.
    :param lease: the lease, in seconds.
    :param worker: the authenticated worker, if any.
    :param client: the client's address.
    """

    def __init__(
        self,
        storage: Storage,
        location: layout.Location,
        lease: float,
        worker: str | None,
        client: str | None,
    ) -> None:
        self.storage = storage
        self.location = location
        self.worker = worker
        self.client = client
        self.interval = min(MAX_RENEWAL, max(MIN_RENEWAL, lease / 4))
        self._used: dict[str, bytes] = {}  # lock URL: nonce
        self._mutex = threading.Lock()
        self._token: contextvars.Token | None = None
        self._renewed = False  # registered with the renewing thread
        self._length = 0  # of the request body
        self._received = self._seen = 0  # body bytes read; at the last renewal

    def __enter__(self) -> Self:
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        _current.reset(self._token)
        if self._renewed:
            _RENEWER.discard(self)
            if exc_type is None:  # (not a client gone, or silent, mid-body)
                self.renew()

    def watch(self, body: BinaryIO, length: int) -> BinaryIO:
        """The request ``body`` of ``length`` bytes, read so that the bytes
        arriving are seen: while it is read, the locks are renewed only
        when some arrived since the last renewal."""
        self._length = length
        return _Watched(body, self)

    def _tick(self) -> None:
        """The renewing thread's turn: renew, unless the body stalled."""
        received = self._received
        if received < self._length and received == self._seen:
            return  # nothing arrived: the holder is silent
        self._seen = received
        self.renew()

    def admit(self, verb: bytes | None, args: Iterable[object]) -> None:
        """Before ``verb`` runs: use the branch lock of the request's
        location if the request presents its token, or is an insert stream
        of its holder.

        (Clients hold no repository lock between requests: a 2a repository
        gives them no token; the store holds it only while it records packs,
        in the request doing so.)
        """
        if self.location.campaign is None:
            return
        insert = verb in INSERT_STREAM_VERBS
        nonces = {
            a
            for a in args
            if isinstance(a, bytes) and len(a) == 20 and _NONCE.fullmatch(a)
        }
        if not nonces and not insert:
            return
        url = locks.lock_url(self.location)
        raw = locks.read_raw_record(self.storage, url)
        nonce = locks.record_nonce(raw)
        if nonce is not None and (nonce in nonces or (insert and self._holds(raw))):
            self.use(url, nonce)

    def _holds(self, raw: bytes) -> bool:
        """Whether this request's client took the lock of record ``raw``."""
        if self.client is None:
            return False
        # the lines the store stamps (holders.stamp), as it writes them
        lines = raw.splitlines()
        if _line(CLIENT, self.client) in lines and (
            self.worker is None or _line("user", self.worker) in lines
        ):
            return True
        try:  # a record stamped through YAML
            fields = holder_fields(LockHeldInfo.from_info_file_bytes(raw))
        except errors.LockCorrupt:
            return False
        if fields[CLIENT] != self.client:
            return False
        return self.worker is None or fields["user"] == self.worker

    def use(self, url: str, nonce: bytes) -> None:
        """The request uses the lock at ``url`` held by ``nonce``: renew it
        now and while the request runs."""
        locks.touch(self.storage, url, nonce)
        self._acquired(url, nonce)

    def _acquired(self, url: str, nonce: bytes | None) -> None:
        if not nonce:
            return
        with self._mutex:
            self._used[url] = nonce
            renewed, self._renewed = self._renewed, True
        if not renewed:
            _RENEWER.add(self)

    def _released(self, url: str) -> None:
        with self._mutex:
            self._used.pop(url, None)

    def renew(self) -> None:
        """Renew the lease of every lock the request uses."""
        with self._mutex:
            used = list(self._used.items())
        for url, nonce in used:
            try:
                locks.touch(self.storage, url, nonce)
            except Exception:  # the next renewal tries again
                logger.exception("cannot renew the lease of %s", url)


class _Watched:
    """A request body whose reads note the bytes arriving (in steps of
    :data:`BODY_STEP`, so a read waiting for a large chunk shows progress)."""

    __slots__ = ("_body", "_request")

    def __init__(self, body: BinaryIO, request: RequestLeases) -> None:
        self._body = body
        self._request = request

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size <= BODY_STEP:
            data = self._body.read(size)
            self._request._received += len(data)
            return data
        parts = []
        remaining = size
        while remaining:
            data = self._body.read(min(BODY_STEP, remaining))
            if not data:
                break
            self._request._received += len(data)
            remaining -= len(data)
            parts.append(data)
        return b"".join(parts)

    def __getattr__(self, name: str):
        return getattr(self._body, name)


def _line(field: str, value: str) -> bytes:
    """A record's line for ``field``, as :func:`holders.stamp` writes it."""
    return f"{field}: {json.dumps(value)}".encode()


class _Renewer:
    """A process-wide thread renewing the locks of the running requests
    that use some, each every ``interval`` of its own."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._requests: set[RequestLeases] = set()
        self._thread: threading.Thread | None = None

    def add(self, request: RequestLeases) -> None:
        with self._cond:
            idle = not self._requests
            self._requests.add(request)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="lock-leases", daemon=True
                )
                self._thread.start()
            elif idle:
                self._cond.notify()  # the thread waits for a first request

    def discard(self, request: RequestLeases) -> None:
        with self._cond:
            self._requests.discard(request)

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._requests:
                    cond.wait()
                cond.wait(min(r.interval for r in self._requests))
                running = list(self._requests)
            for request in running:
                request._tick()


_RENEWER = _Renewer()


def _acquired(result: LockResult) -> None:
    request = _current.get()
    if request is not None:
        request._acquired(result.lock_url, result.details)


def _released(result: LockResult) -> None:
    request = _current.get()
    if request is not None:
        request._released(result.lock_url)


_installed = threading.Lock()
_hooks_installed = False


def install_hooks() -> None:
    """Have locks taken during a request count as used by it (breezy's lock
    hooks; once per process)."""
    global _hooks_installed
    with _installed:
        if _hooks_installed:
            return
        _hooks_installed = True
    hooks = Lock.hooks
    hooks.install_named_hook("lock_acquired", _acquired, "store lock leases")
    hooks.install_named_hook("lock_released", _released, "store lock leases")
    hooks.install_named_hook("lock_broken", _released, "store lock leases")
