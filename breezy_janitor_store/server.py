"""Embedded HTTP serving of the store's faces (paste's httpserver).

Small smart calls over a kept-alive HTTP/1.1 connection used to stall for
~40 ms each: paste writes the response headers and the body in two
``send()`` calls, Nagle's algorithm holds the second until the first is
acknowledged, and the client, well into the connection, delays that ACK.
Setting ``TCP_NODELAY`` on every accepted socket removes the stall, so the
server keeps HTTP/1.1 keep-alive (no new connection per smart call).

Hostile clients (see the README's security section):

* every connection has its own thread, so a slow client (one byte a
  second, or silent) holds only its own thread and never delays others;
  a connection that makes no progress for :data:`SOCKET_TIMEOUT` seconds
  (reading the request or writing the response) is dropped.  There is no
  overall deadline or connection cap: on the internet, put the public face
  behind a reverse proxy that buffers requests and limits connections;
* a request line longer than :data:`MAX_REQUEST_LINE` bytes gets ``414``
  without being held in memory (headers are bounded by ``http.server``);
* a connection whose request body was not read to its end (a refusal
  before the body, a smart message shorter than its body) or that sent a
  ``Transfer-Encoding`` body (unsupported) is closed after the response,
  so leftover bytes are never taken for a further request.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable

from paste import httpserver

__all__ = ["SOCKET_TIMEOUT", "make_server", "serve_forever", "server_url"]

#: Seconds a connection may wait for one read or write before it is dropped.
SOCKET_TIMEOUT = 120
#: Longest request line read (``http.server``'s own limit).
MAX_REQUEST_LINE = 65536


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
        self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)  # closes the connection
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if not self.parse_request():  # answered with an error already
            return
        self._body = None
        try:
            self.wsgi_execute()
        finally:
            body = self._body  # filters may replace environ["wsgi.input"]
            unread = getattr(body, "length", 0) - getattr(body, "_consumed", 0)
            if unread > 0 or "Transfer-Encoding" in self.headers:
                self.close_connection = True

    def wsgi_setup(self, environ=None) -> None:
        super().wsgi_setup(environ)
        self._body = self.wsgi_environ["wsgi.input"]
        # paste decodes and normalises PATH_INFO ("%2e%2e" becomes ".." and
        # then disappears), http.server collapses leading slashes: the
        # filters judge the request target as sent.
        words = self.requestline.split()
        target = words[1] if len(words) == 3 else self.path
        self.wsgi_environ.setdefault("REQUEST_URI", target)


def make_server(
    app: Callable, host: str, port: int, socket_timeout: int = SOCKET_TIMEOUT
):
    """A paste server for ``app``, bound but not yet serving.

    One thread per connection (a kept-alive connection keeps its thread), so
    a slow client holds only its own thread; a connection is dropped after
    ``socket_timeout`` seconds (whole seconds) without progress.
    """
    return httpserver.serve(
        app,
        host=host,
        port=str(port),
        handler=_Handler,
        start_loop=False,
        use_threadpool=False,
        daemon_threads=True,
        socket_timeout=socket_timeout,
        request_queue_size=64,
    )


def server_url(server) -> str:
    host, port = server.server_address[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def serve_forever(servers: list, ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT (Ctrl-C) or SIGTERM, then shut every server down.

    Both signals are handled even when the parent left SIGINT ignored (as a
    shell does for a background job), so ``kill -INT`` and a service
    manager's ``SIGTERM`` always stop the store cleanly.
    """
    stop = threading.Event()
    threads = [
        threading.Thread(target=s.serve_forever, name=f"serve-{i}", daemon=True)
        for i, s in enumerate(servers)
    ]
    for t in threads:
        t.start()
    previous = _on_signals((signal.SIGINT, signal.SIGTERM), lambda *_: stop.set())
    try:
        if ready is not None:
            ready()
        while not stop.wait(0.5) and all(t.is_alive() for t in threads):
            pass
    except KeyboardInterrupt:  # not the main thread: no handlers of ours
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for s in servers:
            s.shutdown()
            s.server_close()


def _on_signals(signums: tuple, handler: Callable) -> dict:
    """Install ``handler`` for ``signums`` if this is the main thread;
    return the handlers it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum in signums}
