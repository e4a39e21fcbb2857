"""What one client may hold of a face's connections, in the embedded server.

* *The request head* (request line and headers) must arrive within
  :data:`HEAD_TIMEOUT` seconds of the connection's turn to send a request,
  however it trickles: :class:`HeadDeadlines` shuts the reading side of a
  late connection, and the server answers ``408`` and closes it.  (The
  socket timeout only bounds each read.)
* *One client address* holds at most :func:`per_address_cap` of a face's
  ``max_connections`` at once (a quarter, at least 2); more from the same
  address are answered ``503`` and closed as soon as they are accepted.
  Connections from a reverse proxy the application trusts
  (``StoreApp.trusted_proxies``, ``--forwarded-allow-ips``) are not capped
  by address: they carry everybody's requests.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Hashable

__all__ = [
    "ADDRESS_SHARE",
    "HEADS",
    "HEAD_TIMEOUT",
    "AddressCounts",
    "HeadDeadlines",
    "per_address_cap",
    "refuse",
]

#: Seconds a request's head may take to arrive, all of it.
HEAD_TIMEOUT = 30.0
#: One client address holds at most this fraction of a face's connections.
ADDRESS_SHARE = 4

#: The answer to a connection over its address's cap.
TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8"
    b"\r\nContent-Length: 39\r\nRetry-After: 10\r\nConnection: close\r\n\r\n"
    b"too many connections from your address\n"
)


def per_address_cap(max_connections: int) -> int:
    """Connections one address may hold on a face of ``max_connections``."""
    return max(2, max_connections // ADDRESS_SHARE)


def refuse(sock: socket.socket) -> None:
    """Answer :data:`TOO_MANY` on a fresh connection and close it (its
    send buffer is empty: the answer never blocks)."""
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(TOO_MANY)
    with contextlib.suppress(OSError):
        sock.close()


class AddressCounts:
    """Open connections per client address, at most ``cap`` each."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self._open: dict[Hashable, int] = {}

    def add(self, address: Hashable) -> bool:
        """Count a connection from ``address``; ``False`` (not counted) when
        it holds its cap already."""
        with self._lock:
            count = self._open.get(address, 0)
            if count >= self.cap:
                return False
            self._open[address] = count + 1
            return True

    def remove(self, address: Hashable) -> None:
        with self._lock:
            count = self._open.pop(address, 0) - 1
            if count > 0:
                self._open[address] = count


class _Deadline:
    __slots__ = ("expired", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self.expired = False


class HeadDeadlines:
    """Shuts the reading side of sockets whose deadline passes before they
    are disarmed; one thread for the whole process, started when needed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, timeout: float) -> _Deadline:
        """Watch ``sock`` for ``timeout`` seconds from now."""
        deadline = _Deadline(sock)
        with self._cond:
            heapq.heappush(
                self._heap, (time.monotonic() + timeout, next(self._seq), deadline)
            )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="head-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return deadline

    def disarm(self, deadline: _Deadline) -> None:
        """Stop watching (the head arrived, or the connection is done)."""
        with self._cond:
            deadline.sock = None

    def _run(self) -> None:
        while True:
            late = []
            with self._cond:
                now = time.monotonic()
                while self._heap and (
                    self._heap[0][2].sock is None or self._heap[0][0] <= now
                ):
                    _, _, deadline = heapq.heappop(self._heap)
                    if deadline.sock is not None:
                        deadline.expired = True
                        late.append(deadline.sock)
                        deadline.sock = None
                if not late:
                    wait = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(wait)
                    continue
            for sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)


#: The deadlines of every embedded server of the process.
HEADS = HeadDeadlines()
