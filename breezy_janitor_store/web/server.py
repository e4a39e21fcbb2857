"""Embedded HTTP serving of the store's faces (paste's httpserver).

Small smart calls over a kept-alive HTTP/1.1 connection used to stall for
~40 ms each: paste writes the response headers and the body in two
``send()`` calls, Nagle's algorithm holds the second until the first is
acknowledged, and the client, well into the connection, delays that ACK.
Setting ``TCP_NODELAY`` on every accepted socket removes the stall, so the
server keeps HTTP/1.1 keep-alive (no new connection per smart call).

Hostile clients (see docs/security.md, "Anonymous exhaustion"):

* every connection has its own thread, so a slow client (one byte a
  second, or silent) holds only its own thread and never delays others;
  a connection that makes no progress for :data:`SOCKET_TIMEOUT` seconds
  (reading the request or writing the response) is dropped.  There is no
  overall deadline: on the internet, put the public face behind a reverse
  proxy that buffers requests;
* each server (face) holds at most ``max_connections`` connections (by
  default a share of the process's file-descriptor limit, see
  :func:`default_max_connections`), so filling one face never takes the
  file descriptors the other needs.  At its cap a server stops accepting
  (new connections wait in the kernel's backlog) until one closes; out of
  file descriptors anyway, it pauses :data:`ACCEPT_PAUSE` seconds between
  attempts instead of spinning;
* a request line longer than :data:`MAX_REQUEST_LINE` bytes gets ``414``
  without being held in memory (headers are bounded by ``http.server``);
* a connection whose request body was not read to its end (a refusal
  before the body, a smart message shorter than its body) or that sent a
  ``Transfer-Encoding`` body (unsupported) is closed after the response,
  so leftover bytes are never taken for a further request.

Stopping (SIGTERM, SIGINT) drains: the servers stop accepting at once, the
requests in flight finish, and the process waits up to ``drain_timeout``
seconds until no write lock taken through it is held any more (counted by
breezy's lock hooks, :class:`HeldLocks`), so a push in progress on a
kept-alive connection completes.  A second signal stops at once.
"""

from __future__ import annotations

import errno
import logging
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable

from breezy.lock import Lock, LockResult
from paste import httpserver

from .connguard import HEAD_TIMEOUT, HEADS, AddressCounts, per_address_cap
from .connguard import refuse as refuse_connection
from .framing import content_length_problem

__all__ = [
    "DRAIN_TIMEOUT",
    "HELD_LOCKS",
    "SOCKET_TIMEOUT",
    "HeldLocks",
    "default_max_connections",
    "drain",
    "make_server",
    "serve_forever",
    "server_url",
]

logger = logging.getLogger(__name__)

#: Seconds a connection may wait for one read or write before it is dropped.
SOCKET_TIMEOUT = 120
#: Longest request line read (``http.server``'s own limit).
MAX_REQUEST_LINE = 65536
#: File descriptors left to everything but connections (packs, indexes,
#: logs, database connections) by :func:`default_max_connections`.
FD_RESERVE = 256
#: Most connections per face by default, whatever the file limit.
MAX_CONNECTIONS_CEILING = 1000
#: Seconds the accept loop waits, at its cap or out of file descriptors,
#: before it looks again (a connection closing ends the wait at once).
ACCEPT_PAUSE = 0.25
#: Seconds a stopping server waits for requests and write locks.
DRAIN_TIMEOUT = 30.0
#: Seconds without a request or lock after which a drain is over (a client
#: often asks one more thing right after unlocking).
DRAIN_QUIET = 0.5
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def default_max_connections(faces: int = 2) -> int:
    """Connections per face: ``faces`` equal shares of the file-descriptor
    limit (``RLIMIT_NOFILE``) after :data:`FD_RESERVE`, at least 8 and at
    most :data:`MAX_CONNECTIONS_CEILING` (384 each under a limit of 1,024)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS_CEILING
    return max(8, min(MAX_CONNECTIONS_CEILING, (soft - FD_RESERVE) // faces))


class _Counter:
    """A thread-safe count of things in progress."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, by: int) -> None:
        with self._lock:
            self.value += by


#: Requests being served by this process's servers (read to their end,
#: answered to their end).
IN_FLIGHT = _Counter()


class HeldLocks:
    """Write locks (breezy ``LockDir``) taken in this process and not yet
    released or broken, as breezy's lock hooks report them.

    A lock taken by one request (``Branch.lock_write``) and released by a
    later one (``Branch.unlock``) counts in between.  Keyed by lock URL,
    with the holding's nonce.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, str | None] = {}
        self._installed = False

    def install(self) -> None:
        """Register the hooks (once per process)."""
        with self._lock:
            if self._installed:
                return
            self._installed = True
        hooks = Lock.hooks
        hooks.install_named_hook("lock_acquired", self._acquired, "store drain")
        hooks.install_named_hook("lock_released", self._released, "store drain")
        hooks.install_named_hook("lock_broken", self._released, "store drain")

    def _acquired(self, result: LockResult) -> None:
        with self._lock:
            self._held[result.lock_url] = result.details
            _held_locks_gauge().set(len(self._held))

    def _released(self, result: LockResult) -> None:
        with self._lock:
            self._held.pop(result.lock_url, None)
            _held_locks_gauge().set(len(self._held))

    def held(self) -> dict[str, str | None]:
        """``{lock URL: nonce}`` of the locks held now."""
        with self._lock:
            return dict(self._held)

    def forget(self, url: str, nonce: str | None) -> None:
        """Stop counting ``url``'s holding ``nonce`` (released elsewhere)."""
        with self._lock:
            if url in self._held and self._held[url] == nonce:
                del self._held[url]
                _held_locks_gauge().set(len(self._held))


def _held_locks_gauge():
    from .opsmetrics import HELD_WRITE_LOCKS

    return HELD_WRITE_LOCKS


def _connections_gauge(face: str):
    from .opsmetrics import CONNECTIONS

    return CONNECTIONS.labels(face)


#: The process's held write locks (hooks installed by :func:`serve_forever`
#: and by the WSGI entry).
HELD_LOCKS = HeldLocks()


class _Handler(httpserver.WSGIHandler):
    """paste's handler, with Nagle off and HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not TCP (e.g. a Unix socket)
            pass

    def handle_expect_100(self) -> bool:
        # http.server would send "100 Continue" before the application has
        # looked at the request (a body over the size limit is refused
        # unread); paste sends it when the application first reads the body.
        return True

    def handle_one_request(self) -> None:
        deadline = HEADS.arm(self.connection, self.server.head_timeout)
        try:
            if not self._read_head():
                return
        finally:
            HEADS.disarm(deadline)
        if deadline.expired:
            self.requestline = self.request_version = self.command = ""
            self.send_error(408, "the request head took too long")
            return
        problem = content_length_problem(self.headers.get_all("Content-Length", []))
        if problem is not None:
            self.send_error(400, problem)  # closes the connection
            return
        self._body = None
        IN_FLIGHT.add(1)
        try:
            self.wsgi_execute()
        finally:
            IN_FLIGHT.add(-1)
            body = self._body  # filters may replace environ["wsgi.input"]
            unread = getattr(body, "length", 0) - getattr(body, "_consumed", 0)
            if unread > 0 or "Transfer-Encoding" in self.headers:
                self.close_connection = True

    def _read_head(self) -> bool:
        """Read the request line and headers; whether a request follows."""
        self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)  # closes the connection
            return False
        if not self.raw_requestline:
            self.close_connection = True
            return False
        return self.parse_request()  # else answered with an error already

    def wsgi_setup(self, environ=None) -> None:
        super().wsgi_setup(environ)
        self._body = self.wsgi_environ["wsgi.input"]
        # paste decodes and normalises PATH_INFO ("%2e%2e" becomes ".." and
        # then disappears), http.server collapses leading slashes: the
        # filters judge the request target as sent.
        words = self.requestline.split()
        target = words[1] if len(words) == 3 else self.path
        self.wsgi_environ.setdefault("REQUEST_URI", target)


class _Server(httpserver.WSGIServer):
    """paste's threaded WSGI server, holding at most ``max_connections``."""

    daemon_threads = True

    def __init__(
        self,
        app: Callable,
        address: tuple,
        socket_timeout: int,
        max_connections: int,
        head_timeout: float = HEAD_TIMEOUT,
        max_per_address: int | None = None,
    ) -> None:
        super().__init__(app, address, _Handler, request_queue_size=64)
        face = getattr(app, "face", None)  # a StoreApp's Face, by its name
        self._open = _connections_gauge(getattr(face, "name", None) or "other")
        self.wsgi_socket_timeout = socket_timeout
        self.head_timeout = head_timeout
        self._per_address = AddressCounts(
            max_per_address or per_address_cap(max_connections)
        )
        self._address_of: dict[socket.socket, str] = {}
        self._proxies = getattr(app, "trusted_proxies", None)
        self.max_connections = max_connections
        self._places = threading.BoundedSemaphore(max_connections)
        self._pause = threading.Event()  # never set: an interruptible sleep
        self._warned = 0.0

    def get_request(self):
        # The serve loop calls this when a connection waits to be accepted.
        # At the cap, or out of file descriptors, the OSError sends the loop
        # back to its poll, which finds the same connection waiting: each
        # round waits ACCEPT_PAUSE here, so the loop never spins.
        if not self._places.acquire(timeout=ACCEPT_PAUSE):
            self._warn(f"{self.max_connections} connections open (the cap)")
            raise OSError(errno.EAGAIN, "connection cap reached")
        try:
            request = super().get_request()
        except OSError as e:
            self._places.release()
            if e.errno in _OUT_OF_RESOURCES:
                self._warn(f"cannot accept connections: {e.strerror}")
                self._pause.wait(ACCEPT_PAUSE)
            raise
        sock, client = request
        host = client[0] if isinstance(client, tuple) else str(client)
        trusted = self._proxies is not None and self._proxies.trusts(host)
        if not trusted:  # a trusted proxy's connections are everybody's
            if not self._per_address.add(host):
                refuse_connection(sock)
                self._places.release()
                self._warn(f"{self._per_address.cap} connections from {host} (its cap)")
                raise OSError(errno.EAGAIN, "connection cap of the address reached")
            self._address_of[sock] = host
        self._open.inc()
        return request

    def shutdown_request(self, request) -> None:
        # called once for every accepted connection, when it is done
        try:
            super().shutdown_request(request)
        finally:
            self._per_address.remove(self._address_of.pop(request, None))
            self._open.dec()
            self._places.release()

    def _warn(self, what: str) -> None:
        """Log ``what`` at most once a minute."""
        now = time.monotonic()
        if now - self._warned >= 60:
            self._warned = now
            logger.warning("%s on %s: new connections wait", what, server_url(self))


def make_server(
    app: Callable,
    host: str,
    port: int,
    socket_timeout: int = SOCKET_TIMEOUT,
    max_connections: int | None = None,
    head_timeout: float = HEAD_TIMEOUT,
    max_per_address: int | None = None,
):
    """A paste server for ``app``, bound but not yet serving.

    One thread per connection (a kept-alive connection keeps its thread), so
    a slow client holds only its own thread; a connection is dropped after
    ``socket_timeout`` seconds (whole seconds) without progress.  At most
    ``max_connections`` are open at once (default:
    :func:`default_max_connections`); more wait to be accepted.  A request
    head must arrive within ``head_timeout`` seconds, and one client address
    holds at most ``max_per_address`` connections (default: a share, see
    :mod:`.connguard`).
    """
    if max_connections is None:
        max_connections = default_max_connections()
    if max_connections < 1:
        raise ValueError("max_connections must be positive")
    return _Server(
        app,
        (host, int(port)),
        int(socket_timeout),
        max_connections,
        head_timeout,
        max_per_address,
    )


def server_url(server) -> str:
    host, port = server.server_address[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def serve_forever(
    servers: list,
    ready: Callable[[], None] | None = None,
    drain_timeout: float = DRAIN_TIMEOUT,
    still_held: Callable[[str, str | None], bool] | None = None,
) -> None:
    """Serve until SIGINT (Ctrl-C) or SIGTERM, then drain and shut down.

    Both signals are handled even when the parent left SIGINT ignored (as a
    shell does for a background job), so ``kill -INT`` and a service
    manager's ``SIGTERM`` always stop the store cleanly.  Draining: the
    servers stop accepting, then this waits up to ``drain_timeout`` seconds
    until no request is in flight and no write lock taken through this
    process is held (``still_held(url, nonce)``, if given, tells whether a
    counted lock is still held on disk: another process may have released
    it).  A second signal ends the wait.
    """
    HELD_LOCKS.install()
    signals: list[int] = []
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        signals.append(signum)
        stop.set()

    threads = [
        threading.Thread(target=s.serve_forever, name=f"serve-{i}", daemon=True)
        for i, s in enumerate(servers)
    ]
    for t in threads:
        t.start()
    previous = _on_signals((signal.SIGINT, signal.SIGTERM), on_signal)
    try:
        if ready is not None:
            ready()
        while not stop.wait(0.5) and all(t.is_alive() for t in threads):
            pass
    except KeyboardInterrupt:  # not the main thread: no handlers of ours
        pass
    finally:
        try:
            for s in servers:
                s.shutdown()
                s.server_close()  # no new connections from here on
            if signals:
                logger.info(
                    "%s: stopped accepting connections; draining (up to %g s)",
                    signal.Signals(signals[0]).name,
                    drain_timeout,
                )
                if drain(drain_timeout, lambda: len(signals) > 1, still_held):
                    logger.info("drained: no request in flight, no write lock held")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            logger.info("stopped")


def drain(
    timeout: float,
    interrupted: Callable[[], bool] = lambda: False,
    still_held: Callable[[str, str | None], bool] | None = None,
) -> bool:
    """Wait up to ``timeout`` seconds until no request is in flight and no
    write lock is held, for :data:`DRAIN_QUIET` seconds in a row.

    Returns whether that happened (False: timed out or ``interrupted()``).
    """
    start = time.monotonic()
    quiet_since = None
    pause = threading.Event()
    reported = checked = 0.0
    while True:
        now = time.monotonic()
        if still_held is not None and now - checked >= 1.0:
            checked = now
            for url, nonce in HELD_LOCKS.held().items():
                if not still_held(url, nonce):
                    HELD_LOCKS.forget(url, nonce)
        requests, held = IN_FLIGHT.value, len(HELD_LOCKS.held())
        if requests or held:
            quiet_since = None
            if now - reported >= 5:
                reported = now
                logger.warning(
                    "draining: %d requests in flight, %d write locks held",
                    requests,
                    held,
                )
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= DRAIN_QUIET:
            return True
        if now - start >= timeout or interrupted():
            logger.warning(
                "stopping with %d requests in flight and %d write locks held",
                requests,
                held,
            )
            return False
        pause.wait(0.05)


def _on_signals(signums: tuple, handler: Callable) -> dict:
    """Install ``handler`` for ``signums`` if this is the main thread;
    return the handlers it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum in signums}
