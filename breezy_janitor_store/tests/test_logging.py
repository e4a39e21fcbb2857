"""Errors and logs: request ids, no tracebacks or paths, the access log.

Every response carries ``X-Request-Id``; every error the server logs names
that id; no response shows a traceback or a server path; each request
gives one access-log line in the common log format, with the worker's
name when it authenticated.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import re
import threading
import unittest

from ..policy.auth import BasicAuth, CredentialsFile, add_worker
from ..serve import BatchedLines
from ..web.filters import REQUEST_ID_HEADER, RequestIdLogFilter, access_line
from .support import hostile
from .support.fixtures import StoreTestCase, brz, http_request, wait_for

#: host ident user [time] "request" status bytes, then duration and request id
CLF = re.compile(
    r"(?P<host>\S+) - (?P<user>\S+) \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
    r'"(?P<request>[^"\\]*(?:\\.[^"\\]*)*)" (?P<status>\d{3}) (?P<bytes>\d+|-)'
    r" rt=(?P<duration>\d+\.\d{3}|-) rid=(?P<rid>\S+)\Z"
)
RID = re.compile(r"[0-9a-f]{32}\Z")
#: The package's logger.
PACKAGE = __name__.rsplit(".tests.", 1)[0]


class _Exploding:
    """A codebase policy whose database is broken in an unexpected way."""

    def __init__(self, where: str) -> None:
        self.where = where

    def codebase_exists(self, name: str) -> bool:
        raise RuntimeError(f"cannot read {self.where}/codebases.db")


class RequestIdTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=["lintian-fixes"])
        self.work = self.make_branch(revisions=1)
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes"),
            cwd=self.work,
        )

    def test_every_response_has_one(self) -> None:
        admin, public = self.store.admin, self.store.public
        requests = [
            (admin + "/health", None, None),  # 200
            (admin + "/no/where/at/all/x", None, None),  # 404
            (admin + "/hello/.bzr/smart", None, "GET"),  # 405
            (admin + "/Hello/.bzr/smart", b"x", None),  # 400
            (admin + "/a/%2e%2e/b", None, None),  # 400 before any route
            (admin + "/hello/locks", None, None),  # 200 JSON
            (public + "/hello/.bzr/smart", hostile.encode_request(b"hello"), None),
            (public + "/nothing/.bzr/smart", b"x", None),  # 404
            (
                public + "/hello/lintian-fixes/.bzr/smart",
                hostile.encode_request(b"Branch.lock_write", b".", b"", b""),
                None,
            ),  # refused verb
        ]
        seen = set()
        for url, data, method in requests:
            with self.subTest(url=url):
                status, headers, body = http_request(url, data=data, method=method)
                rid = headers.get(REQUEST_ID_HEADER)
                self.assertIsNotNone(rid, (status, body))
                self.assertRegex(rid, RID)
                seen.add(rid)
                self.assertEqual(hostile.leaks(body, self.tmp), [])
        self.assertEqual(len(seen), len(requests))  # one id per request

    def test_internal_error_is_logged_with_the_id(self) -> None:
        store = self.start_store(codebase_policy=_Exploding(self.storage_dir))
        with self.assertLogs(PACKAGE, logging.ERROR) as logs:
            status, headers, body = http_request(
                store.admin + "/hello/.bzr/smart", data=hostile.encode_request(b"hello")
            )
        self.assertEqual((status, body), (500, b"internal server error\n"))
        rid = headers[REQUEST_ID_HEADER]
        [record] = [r for r in logs.records if r.levelno >= logging.ERROR]
        self.assertIn(f"(request {rid})", record.getMessage())
        self.assertIn("codebases.db", logs.output[0])  # the traceback, for us
        self.assertEqual(RequestIdLogFilter().filter(record), True)

    def test_broken_stream_is_logged_with_the_id(self) -> None:
        """A repository damaged on disk: the response is cut, the log says why."""
        packs = os.path.join(self.storage_dir, "hello", ".bzr", "repository", "packs")
        for name in os.listdir(packs):
            path = os.path.join(packs, name)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
        with self.assertLogs(PACKAGE, logging.INFO) as logs:
            proc = brz(
                "branch",
                self.smart_url(self.store.public, "hello/lintian-fixes"),
                self.path("copy"),
                check=False,
            )
        self.assertNotEqual(proc.returncode, 0)
        self.assertNotIn(self.storage_dir.encode(), proc.stdout + proc.stderr)
        errors = [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]
        self.assertTrue(errors, logs.output)
        ids = {
            m.group(1)
            for m in map(re.compile(r"\(request ([0-9a-f]{32})\)").search, errors)
            if m
        }
        self.assertTrue(ids, errors)


class AccessLogTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        credentials = self.path("workers")
        add_worker(credentials, "worker-7", "s3cret")
        self.store = self.start_store(
            campaigns=["lintian-fixes"],
            public={"write_policy": BasicAuth(CredentialsFile(credentials))},
        )

    def lines(self, logs, *targets: str) -> list[re.Match]:
        """The access lines of ``targets``, in that order, once all are written.

        Call it inside the ``assertLogs`` block, which stops recording on exit.

        A line is written when the server closes the response, which can
        be after the client has read the whole body (and after the next
        request's line): wait for them and match them up by target.
        """
        wait_for(lambda: len(logs.records) >= len(targets), "the access-log lines")
        by_target = {}
        for record in logs.records:
            match = CLF.match(record.getMessage())
            self.assertIsNotNone(match, record.getMessage())
            by_target[match["request"].split(" ")[1]] = match
        self.assertEqual(sorted(by_target), sorted(targets))
        return [by_target[target] for target in targets]

    def test_common_log_format(self) -> None:
        with self.assertLogs("breezy_janitor_store.access", logging.INFO) as logs:
            http_request(self.store.admin + "/health")
            http_request(self.store.admin + "/no/where/at/all/x?x=1")
            http_request(self.store.public_root + "/bzr/a/%2e%2e/b")
            health, nowhere, escape = self.lines(
                logs, "/health", "/no/where/at/all/x?x=1", "/bzr/a/%2e%2e/b"
            )
        self.assertEqual(
            (
                health["host"],
                health["user"],
                health["request"],
                health["status"],
                health["bytes"],
            ),
            ("127.0.0.1", "-", "GET /health HTTP/1.1", "200", "2"),
        )
        self.assertEqual(nowhere["request"], "GET /no/where/at/all/x?x=1 HTTP/1.1")
        self.assertEqual(nowhere["status"], "404")
        # the target as sent, not as the server normalised it
        self.assertEqual(escape["request"], "GET /bzr/a/%2e%2e/b HTTP/1.1")
        self.assertEqual(escape["status"], "400")

    def test_authenticated_worker_is_named(self) -> None:
        auth = "Basic " + base64.b64encode(b"worker-7:s3cret").decode()
        body = hostile.encode_request(b"hello")
        with self.assertLogs("breezy_janitor_store.access", logging.INFO) as logs:
            http_request(
                self.store.public + "/hello/.bzr/smart",
                data=body,
                headers={"Authorization": auth},
            )
            http_request(self.store.public_root + "/health")
            worker, anonymous = self.lines(logs, "/bzr/hello/.bzr/smart", "/health")
        self.assertEqual(worker["user"], "worker-7")
        self.assertEqual(worker["status"], "200")
        self.assertEqual(anonymous["user"], "-")

    def test_no_forged_lines(self) -> None:
        """Quotes and control characters cannot start a new field or line."""
        environ = {
            "REQUEST_METHOD": "GET",
            "REQUEST_URI": '/x" 200 1\n127.0.0.1 - admin [01/Jan/2000:00:00:00 +0000] "GET /',
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "10.0.0.1",
            "REMOTE_USER": "a b\nc",
        }
        line = access_line(environ, "400", 0, 0.0)
        self.assertNotIn("\n", line)
        match = CLF.match(line)
        self.assertIsNotNone(match, line)
        self.assertEqual(match["status"], "400")
        self.assertEqual(match["user"], "a\\x20b\\nc")


class BatchedLinesTests(unittest.TestCase):
    """Access lines written in batches: every line, whole, once."""

    def test_lines_from_many_threads_are_all_written(self) -> None:
        out = io.StringIO()
        handler = BatchedLines(out, interval=0.001)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log = logging.getLogger("breezy_janitor_store.tests.batched")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        self.addCleanup(log.removeHandler, handler)

        def write(n: int) -> None:
            for i in range(2000):
                log.info("thread %d line %d", n, i)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        handler.close()
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 8 * 2000)
        self.assertEqual(
            set(lines), {f"thread {n} line {i}" for n in range(8) for i in range(2000)}
        )

    def test_a_refused_write_drops_its_batch_only(self) -> None:
        class Flaky(io.StringIO):
            refuse = True

            def write(self, text: str) -> int:
                if self.refuse:
                    self.refuse = False
                    raise BlockingIOError(11, "try again")
                return super().write(text)

        out = Flaky()
        handler = BatchedLines(out, interval=3600, limit=3)
        handler.setFormatter(logging.Formatter("%(message)s"))
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", None, None)
        for text in ("lost", "one", "two", "three", "four"):
            record.args = (text,)
            handler.handle(record)
            if text == "lost":
                handler.flush()  # refused: dropped
        handler.close()  # the oldest of the four waiting is dropped
        self.assertEqual(out.getvalue(), "two\nthree\nfour\n")
