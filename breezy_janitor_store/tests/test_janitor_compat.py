"""What the janitor's own bzr store tests expect (``tests/test_bzr_store.py``
of the janitor), against the store: the exact ``/health`` and ``/ready``
answers, and breezy's own answer to an empty or incomplete smart body,
measured by serving breezy's ``SmartWSGIApp`` next to the store.
"""

from __future__ import annotations

import os
import threading

from breezy.bzr.smart import protocol
from breezy.transport.http import wsgi

from ..policy.policies import CodebaseList
from ..web.server import make_server
from ..web.smart import INCOMPLETE_RESPONSE
from .support import hostile
from .support.fixtures import StoreTestCase, brz, http_request, tree_digest

#: What the janitor's store sends for ``/health`` and ``/ready``: aiohttp's
#: ``web.Response(text="ok")``.
JANITOR_OK = (200, "text/plain; charset=utf-8", b"ok")


def serve_breezy_app(test: StoreTestCase, directory: str) -> str:
    """breezy's own read-only smart WSGI app for ``directory``, served on a
    free loopback port until the test ends; its ``http://host:port``."""
    app = wsgi.make_app(
        directory, "/", path_var="PATH_INFO", load_plugins=False, enable_logging=False
    )
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(10)

    test.addCleanup(stop)
    return f"http://127.0.0.1:{server.server_address[1]}"


def post(base: str, path: str, body: bytes, length: int | None = None) -> bytes:
    """The raw answer to ``POST path`` with ``body`` (and a ``Content-Length``
    of ``length``, default the body's)."""
    length = len(body) if length is None else length
    head = f"POST {path} HTTP/1.1\r\nContent-Length: {length}".encode()
    return hostile.raw_http(base, head, body)


class HealthAndReadyTests(StoreTestCase):
    def test_exact_answers_on_both_faces(self) -> None:
        """The janitor's ``test_health`` and ``test_ready`` compare the text
        with ``"ok"``; both faces answer exactly as its store does."""
        store = self.start_store()
        for base in (store.admin, store.public_root):
            for path in ("/health", "/ready"):
                with self.subTest(base=base, path=path):
                    status, headers, body = http_request(base + path)
                    self.assertEqual(
                        (status, headers["Content-Type"], body), JANITOR_OK
                    )
                    self.assertEqual(headers["Content-Length"], "2")


class IncompleteSmartBodyTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=["lintian-fixes"])
        work = self.make_branch()
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes"),
            cwd=work,
        )
        self.breezy = serve_breezy_app(self, self.storage_dir)

    def bodies(self) -> dict[str, bytes]:
        valid = hostile.encode_request(b"BzrDir.open_2.1", b".")
        return {
            "empty": b"",
            "marker only": protocol.MESSAGE_VERSION_THREE,
            "truncated by half": valid[: len(valid) // 2],
            "truncated by 1": valid[:-1],
            "no newline": b"garbage",
            "protocol 2 marker only": protocol.REQUEST_VERSION_TWO,
            "lying length prefix": protocol.MESSAGE_VERSION_THREE
            + b"\xff\xff\xff\xff"
            + b"d" * 100,
        }

    def test_answered_as_breezy_answers(self) -> None:
        """Status, content type and body equal breezy's own app's answer to
        the same request, byte for byte, on both faces and every location."""
        before = tree_digest(self.storage_dir)
        for name, body in self.bodies().items():
            expected = hostile.split_response(
                post(self.breezy, "/hello/lintian-fixes/.bzr/smart", body)
            )
            self.assertEqual(
                (expected[0], expected[1]["content-type"], expected[2]),
                (200, "application/octet-stream", INCOMPLETE_RESPONSE),
            )
            for base, prefix in ((self.store.admin, ""), (self.store.public, "/bzr")):
                for location in ("hello", "hello/lintian-fixes"):
                    with self.subTest(body=name, base=base, location=location):
                        raw = post(base, f"{prefix}/{location}/.bzr/smart", body)
                        status, headers, got = hostile.split_response(raw)
                        self.assertEqual(
                            (status, headers["content-type"], got),
                            (expected[0], expected[1]["content-type"], expected[2]),
                        )
                        # the whole body was read: the connection stays open
                        self.assertNotIn("connection", headers)
        self.assertEqual(tree_digest(self.storage_dir), before)

    def test_body_shorter_than_its_length_closes_the_connection(self) -> None:
        body = protocol.MESSAGE_VERSION_THREE
        expected = hostile.split_response(
            post(self.breezy, "/hello/.bzr/smart", body, length=1000)
        )
        status, headers, got = hostile.split_response(
            post(self.store.admin, "/hello/.bzr/smart", body, length=1000)
        )
        self.assertEqual((status, got), (expected[0], expected[2]))
        self.assertEqual(headers["connection"], "close")

    def test_janitor_fetch_format(self) -> None:
        """The janitor's ``test_fetch_format``: an empty POST to a known
        codebase, campaign and role is a 200, an unknown codebase or campaign
        a 404.  Unlike the janitor's store, nothing is created by it."""
        store = self.start_store(
            campaigns=["campaign"], codebase_policy=CodebaseList(["foo"])
        )
        for path, status in (
            ("/foo/.bzr/smart", 200),
            ("/foo/campaign/.bzr/smart", 200),
            ("/foo/campaign/main/.bzr/smart", 200),
            ("/bar/.bzr/smart", 404),
            ("/foo/notcampaign/.bzr/smart", 404),
        ):
            with self.subTest(path=path):
                got, _, body = http_request(store.admin + path, data=b"")
                self.assertEqual(got, status, body)
                if status == 200:
                    self.assertEqual(body, INCOMPLETE_RESPONSE)
        self.assertFalse(os.path.exists(os.path.join(self.storage_dir, "foo")))
