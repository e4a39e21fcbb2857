"""``GET /ready`` on the public face, for a load balancer in front of it.

The admin face's ``/ready`` names its problems (tests/test_api.py); the
public face, on the internet, answers ``ok`` or a bare ``503 not ready``.
"""

from __future__ import annotations

import shutil
import socket
import urllib.parse

from ..policy.policies import PolicyUnavailable
from .support.fixtures import StoreTestCase, http_request


class _Source:
    """A codebase and write policy whose source can be switched off."""

    down = False

    def codebase_exists(self, name: str) -> bool:
        return True

    def __call__(self, environ) -> bool:
        return True

    def check_ready(self) -> None:
        if self.down:
            raise PolicyUnavailable("database at db.internal:5432 refused")


def raw_head(url: str) -> bytes:
    """Everything a ``HEAD url`` gets back, read from the socket."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        s.sendall(
            f"HEAD {parts.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


class PublicReadyTests(StoreTestCase):
    def test_ready(self) -> None:
        store = self.start_store()
        status, headers, body = http_request(store.public_root + "/ready")
        self.assertEqual((status, body), (200, b"ok"))
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        head = raw_head(store.public_root + "/ready")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertTrue(head.endswith(b"\r\n\r\n"), head)  # no body

    def test_not_ready_says_no_more(self) -> None:
        source = _Source()
        store = self.start_store(
            codebase_policy=source, public={"write_policy": source}
        )
        self.assertEqual(http_request(store.public_root + "/ready")[0], 200)
        source.down = True
        with self.assertLogs("breezy_janitor_store.web.api", "WARNING") as logged:
            status, _, body = http_request(store.public_root + "/ready")
        self.assertEqual((status, body), (503, b"not ready\n"))
        self.assertIn("db.internal", "".join(logged.output))
        # the admin face names the problem
        status, _, body = http_request(store.admin + "/ready")
        self.assertEqual(status, 503)
        self.assertIn(b"db.internal", body)

    def test_not_ready_without_the_storage_directory(self) -> None:
        store = self.start_store()
        shutil.rmtree(self.storage_dir)
        with self.assertLogs("breezy_janitor_store.web.api", "WARNING"):
            status, _, body = http_request(store.public_root + "/ready")
        self.assertEqual((status, body), (503, b"not ready\n"))
