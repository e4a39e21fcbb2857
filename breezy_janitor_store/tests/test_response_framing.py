"""A response body never goes past the Content-Length it declared.

A view yielding more than its ``Content-Length`` would, on a kept-alive
connection, have the extra bytes read as the next response (a response
the bytes' author chooses).  The store's filters cut the body there.  The
view here lies on purpose; it is served through the store's own filter
chain and embedded server, and read with a raw socket.
"""

from __future__ import annotations

import socket
import threading
import unittest

from ..web import filters
from ..web.server import make_server

SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforged"


def lying_app(environ: dict, start_response) -> list[bytes]:
    if environ["PATH_INFO"] == "/lie":
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "7")]
        )
        return iter([b"honest!", SMUGGLED])  # type: ignore[return-value]
    if environ["PATH_INFO"] == "/lie-list":
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "7")]
        )
        return [b"honest!" + SMUGGLED]
    body = b"the real second answer"
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


class ResponseFramingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.server = make_server(filters.wrap(lying_app, "public"), "127.0.0.1", 0)
        thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        thread.start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)

    def exchange(self, first: str) -> bytes:
        """Two requests on one kept-alive connection; all that came back."""
        port = self.server.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            for path in (first, "/next"):
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data

    def test_a_body_stops_at_its_length(self) -> None:
        for path in ("/lie", "/lie-list"):
            with self.subTest(path=path):
                data = self.exchange(path)
                self.assertNotIn(b"forged", data)
                self.assertIn(b"\r\n\r\nhonest!HTTP/1.", data)
                self.assertIn(b"the real second answer", data)
