"""The route table of both faces: HEAD without a body, endpoint labels.

HEAD responses are read from the raw socket: ``http.client`` never reads a
body after a HEAD, so only the bytes on the wire show whether one was sent.
"""

from __future__ import annotations

import socket
import unittest
import urllib.parse

from ..web import app as app_module
from ..web import filters
from .support.api_fixtures import hello_store
from .support.fixtures import http_request
from .support.metrics import scrape, scrape_until, value
from .support.routes import READ_TIMEOUT, _read_until, _response_length, head_then_get


def head_until_closed(base: str, path: str) -> tuple[bytes, bytes]:
    """``HEAD path`` of a response without a length (the server closes the
    connection after it): the header block and any bytes after it."""
    url = urllib.parse.urlsplit(base)
    request = f"HEAD {path} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n"
    with socket.create_connection((url.hostname, url.port), READ_TIMEOUT) as sock:
        sock.sendall(request.encode())
        data = _read_until(sock, b"", lambda d: False)  # to the end
    head, sep, rest = data.partition(b"\r\n\r\n")
    return head + sep, rest


class HeadTests(unittest.TestCase):
    """HEAD answers with GET's headers and no body, on a kept-alive socket."""

    def setUp(self) -> None:
        self.store = hello_store().store

    def assertHeadHasNoBody(
        self, base: str, path: str, status: int, content_type: str
    ) -> None:
        head, rest = head_then_get(base, path)
        self.assertTrue(
            head.startswith(f"HTTP/1.1 {status} ".encode()), head.decode("latin-1")
        )
        self.assertIn(f"Content-Type: {content_type}".encode(), head)
        # the next bytes on the connection are the GET's response
        self.assertTrue(
            rest.startswith(f"HTTP/1.1 {status} ".encode()),
            f"HEAD {path}: bytes after the headers: {rest[:80]!r}",
        )
        self.assertGreater(_response_length(rest), len(rest.split(b"\r\n\r\n")[0]))

    def test_health(self) -> None:
        for base in (self.store.admin, self.store.public_root):
            with self.subTest(base=base):
                self.assertHeadHasNoBody(base, "/health", 200, "text/plain")

    def test_locks(self) -> None:
        self.assertHeadHasNoBody(
            self.store.admin, "/hello/locks", 200, "application/json"
        )

    def test_api_and_pages(self) -> None:
        admin, public = self.store.admin, self.store.public_root
        for base, path, content_type in (
            (admin, "/repositories", "application/json"),
            (admin, "/metrics", "text/plain"),
            (admin, "/ready", "text/plain"),
            (public, "/", "text/html"),
            (public, "/bzr/hello/", "text/html"),
        ):
            with self.subTest(path=path):
                self.assertHeadHasNoBody(base, path, 200, content_type)

    def test_streamed_responses(self) -> None:
        shared = hello_store()
        old, new = (shared.revisions[r].decode() for r in ("r1", "r4"))
        for base, path, content_type in (
            (self.store.admin, f"/hello/diff?old={old}&new={new}", "text/x-diff"),
            (
                self.store.public_root,
                "/bzr/hello/+revision/" + urllib.parse.quote(new),
                "text/html",
            ),
        ):
            with self.subTest(path=path):
                head, rest = head_until_closed(base, path)
                self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
                self.assertIn(f"Content-Type: {content_type}".encode(), head)
                self.assertEqual(rest, b"")

    def test_refusals(self) -> None:
        admin, public = self.store.admin, self.store.public_root
        for base, path, status in (
            (admin, "/no/such/page", 404),
            (public, "/bzr/no-such-codebase/", 404),
            (admin, "/hello/.bzr/smart", 405),
            (admin, "/hello/locks/../x", 400),
        ):
            with self.subTest(path=path):
                self.assertHeadHasNoBody(base, path, status, "text/plain")

    def test_get_still_has_its_body(self) -> None:
        status, _, body = http_request(self.store.admin + "/health")
        self.assertEqual((status, body), (200, b"ok"))


class HeadFilterTests(unittest.TestCase):
    """:func:`filters.head` around applications that start late."""

    def test_response_started_while_iterating(self) -> None:
        closed = []

        def lazy(environ, start_response):
            def body():
                try:
                    start_response("200 OK", [("Content-Length", "4")])
                    yield b"body"
                finally:
                    closed.append(True)

            return body()

        calls = []

        def start_response(status, headers, exc_info=None):
            calls.append((status, headers))
            return lambda data: self.fail("HEAD wrote a body")

        body = filters.head(lazy)({"REQUEST_METHOD": "HEAD"}, start_response)
        self.assertEqual(list(body), [])
        self.assertEqual(calls, [("200 OK", [("Content-Length", "4")])])
        self.assertEqual(closed, [True])

    def test_write_callable_sends_nothing(self) -> None:
        def writing(environ, start_response):
            start_response("200 OK", [])("written")
            return []

        def start_response(status, headers, exc_info=None):
            return lambda data: self.fail("HEAD wrote a body")

        self.assertEqual(
            list(filters.head(writing)({"REQUEST_METHOD": "HEAD"}, start_response)),
            [],
        )


class RouteTableTests(unittest.TestCase):
    def setUp(self) -> None:
        self.store = hello_store().store

    def test_every_route_names_its_endpoint(self) -> None:
        for route in app_module.ROUTES:
            self.assertTrue(route.endpoint, route)
            self.assertNotEqual(route.endpoint, "other", route)
            self.assertTrue(set(route.faces) <= {app_module.ADMIN, app_module.PUBLIC})

    def test_lock_requests_are_labelled(self) -> None:
        base = self.store.admin
        requests = "bzr_store_http_requests_total"
        labels = {"face": "admin", "endpoint": "locks", "method": "GET"}
        before = scrape(base)
        status, _, _ = http_request(base + "/hello/locks")
        self.assertEqual(status, 200)
        after = scrape_until(
            base,
            lambda s: (
                value(s, requests, status="200", **labels)
                > value(before, requests, status="200", **labels)
            ),
        )
        self.assertEqual(
            value(after, requests, status="200", **labels)
            - value(before, requests, status="200", **labels),
            1,
        )
        post = {"face": "admin", "endpoint": "locks", "method": "POST", "status": "404"}
        status, _, _ = http_request(base + "/hello/locks", data=b"{}")
        self.assertEqual(status, 404)  # no lock to break
        after = scrape_until(
            base, lambda s: value(s, requests, **post) > value(after, requests, **post)
        )
        self.assertGreater(
            value(after, requests, **post), value(before, requests, **post)
        )
