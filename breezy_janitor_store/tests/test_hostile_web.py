"""Hostile requests to the web side: headers, paths, Host, bad data on disk.

Driven through the real HTTP server (a :class:`RunningStore`) and real
sockets; writes that plant bad data go through the breezy API over the
smart protocol, as a worker holding stolen credentials would.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import unittest
import urllib.parse

from breezy import bedding, errors
from breezy.branch import Branch

from ..store import layout
from ..web import browse
from .support import hostile
from .support.api_fixtures import hello_store
from .support.auth import write_authentication_conf
from .support.fixtures import StoreTestCase, brz, http_request


def raw_request(base: str, path: str, method: str = "GET", headers=()) -> tuple:
    """One request on its own connection: status, header list, body."""
    parsed = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        names = {k.lower() for k, _ in headers}
        if "host" not in names:
            conn.putheader("Host", parsed.netloc)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, resp.getheaders(), body
    finally:
        conn.close()


def raw_head(base: str, path: str) -> bytes:
    """Everything the server sends for ``HEAD path`` up to the connection's
    end (``Connection: close``): a body sent by mistake is seen."""
    parsed = urllib.parse.urlsplit(base)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=60) as s:
        s.sendall(
            f"HEAD {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            "Connection: close\r\n\r\n".encode("latin-1")
        )
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def header_values(headers, name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


class NosniffTests(unittest.TestCase):
    """Every response of the store says ``X-Content-Type-Options: nosniff``."""

    def setUp(self) -> None:
        self.store = hello_store().store

    def test_every_response_says_nosniff_once(self) -> None:
        public, admin = self.store.public_root, self.store.admin
        requests = [
            (public, "/bzr/hello/+revision/%3Chtml%3E%3Cscript%3Ex%3C%2Fscript%3E"),
            (public, "/bzr/hello/+children/%3Chtml%3E%3Cscript%3Ex%3C%2Fscript%3E"),
            (public, "/bzr/hello/revision-info?old=null:&new=%3Cscript%3E"),
            (public, "/bzr/nothing/"),
            (public, "/bzr/hello/lintian-fixes/"),
            (public, "/bzr/hello/lintian-fixes/.bzr/branch/format"),
            (public, "/health"),
            (public, "/bzr/a/%2e%2e/b"),
            (admin, "/hello/diff?old=x&new=%3Cb%3E"),
            (admin, "/"),
        ]
        for base, path in requests:
            with self.subTest(path=path):
                status, headers, body = raw_request(base, path)
                self.assertEqual(
                    header_values(headers, "X-Content-Type-Options"),
                    ["nosniff"],
                    (status, body[:200]),
                )
        # smart responses too
        status, headers, _ = raw_request(
            public, "/bzr/hello/.bzr/smart", "POST", [("Content-Length", "0")]
        )
        self.assertEqual(header_values(headers, "X-Content-Type-Options"), ["nosniff"])


class LongNameTests(StoreTestCase):
    """Over-long names and paths: a 4xx, never a 500 (or a 200)."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store_with_worker(campaigns=["lintian-fixes"])
        self.push_branch(self.store, "hello/lintian-fixes")

    def test_long_control_paths_are_404(self) -> None:
        paths = [
            "/bzr/hello/.bzr/" + "c" * 300,
            "/bzr/hello/lintian-fixes/.bzr/branch/" + "c" * 300,
            "/bzr/hello/.bzr/" + "/".join(["c" * 250] * 20),
        ]
        for base, prefix in ((self.store.public_root, ""), (self.store.admin, "/x")):
            for path in paths:
                if prefix:
                    path = path.removeprefix("/bzr")
                with (
                    self.subTest(base=base, path=path[:60]),
                    self.assertNoLogs("breezy_janitor_store", level="ERROR"),
                ):
                    status, _, body = raw_request(base, path)
                    self.assertEqual(status, 404, body[:300])
                    self.assertNotIn(b"Traceback", body)
                    self.assertNotIn(self.storage_dir.encode(), body)

    def test_names_over_the_limit_are_refused(self) -> None:
        long = "c" * (layout.MAX_NAME_LENGTH + 50)
        for path in (
            f"/bzr/hello/lintian-fixes/{long}",
            f"/bzr/hello/lintian-fixes/{long}/",
            f"/bzr/hello/lintian-fixes/{long}/.bzr/branch-format",
            f"/bzr/{long}/",
        ):
            with self.subTest(path=path[:60]):
                raw = raw_head(self.store.public_root, path)
                status = int(raw.split(b" ", 2)[1])
                self.assertIn(status, (400, 404), raw[:300])
                self.assertTrue(raw.endswith(b"\r\n\r\n"), raw[-100:])  # no body
                status, _, body = raw_request(self.store.public_root, path)
                self.assertIn(status, (400, 404), body[:300])
        # names at the limit are still fine
        ok = "c" * layout.MAX_NAME_LENGTH
        raw = raw_head(self.store.public_root, f"/bzr/hello/lintian-fixes/{ok}/")
        self.assertEqual(int(raw.split(b" ", 2)[1]), 200, raw[:300])


class BadTagsTests(StoreTestCase):
    """Tags a writer stored as any bytes: the branch page still answers."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=["lintian-fixes"])
        work = self.make_branch()
        url = self.smart_url(self.store.admin, "hello/lintian-fixes")
        brz("push", "-q", url, cwd=work)
        self.tip = Branch.open(work).last_revision()
        self.client = hostile.smart_client(url)
        self.page_url = self.store.public_root + "/bzr/hello/lintian-fixes/"

    def set_tags_bytes(self, data: bytes) -> None:
        """What a worker's ``Branch.set_tags_bytes`` stores, verbatim."""
        _, token, repo_token = self.client.call(b"Branch.lock_write", b".", b"", b"")
        try:
            response = self.client.call_with_body_bytes(
                b"Branch.set_tags_bytes", (b".", token, repo_token), data
            )
            self.assertEqual(response, ())
        finally:
            self.client.call(b"Branch.unlock", b".", token, repo_token)

    def test_unreadable_tags_are_shown_as_such(self) -> None:
        for data in (
            b"l3:fooe",
            b"d3:fooi5ee",
            b"d3:foo5:ghostse",
            b"d3:\xff\xfe\xfd5:ghoste",
            b"d3:fool3:xyzee",
            b"not bencode",
            b"d3:foo5:ghoste",
        ):
            with self.subTest(data=data):
                self.set_tags_bytes(data)
                status, _, body = raw_request(
                    self.store.public_root, "/bzr/hello/lintian-fixes/"
                )
                self.assertEqual(status, 200, body[:300])
                self.assertNotIn(b"Traceback", body)
                if data == b"d3:foo5:ghoste":  # readable: a tag of a ghost
                    self.assertIn(b"<td>foo</td>", body)
                else:
                    self.assertIn(b"tags of this branch cannot be read", body)

    def test_many_tags_are_bounded(self) -> None:
        count = 30_000
        tags = {b"tag-%05d" % i: self.tip for i in range(count)}
        self.set_tags_bytes(hostile.bencoded(tags))
        status, _, body = raw_request(
            self.store.public_root, "/bzr/hello/lintian-fixes/"
        )
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body.count(b"<td>tag-"), browse.MAX_TAGS)
        self.assertIn(b"<td>tag-00000</td>", body)
        self.assertIn(f"{count} tags; the first {browse.MAX_TAGS}".encode(), body)
        self.assertLess(len(body), 256 * 1024)


class HostHeaderTests(unittest.TestCase):
    """Without a configured public URL, links come from ``Host`` only when
    it is a host name or address; anything else is never reflected."""

    def setUp(self) -> None:
        self.shared = hello_store()
        self.store = self.shared.store
        self.port = urllib.parse.urlsplit(self.store.public_root).port

    def get(self, path: str, host: str) -> bytes:
        status, _, body = raw_request(
            self.store.public_root, path, headers=[("Host", host)]
        )
        self.assertEqual(status, 200, body[:300])
        return body

    def paths(self) -> list[str]:
        new = urllib.parse.quote(self.shared.revisions["r2"].decode(), safe="")
        return [
            "/",
            "/bzr/hello/",
            "/bzr/hello/lintian-fixes/",
            f"/bzr/hello/revision-info?old=null:&new={new}",
        ]

    def test_malformed_hosts_are_not_reflected(self) -> None:
        own = f"127.0.0.1:{self.port}".encode()
        for host in (
            'evil.example"><x',
            "evil.example/<script>",
            "evil example",
            "evil.example:80:81",
            "user@evil.example",
            "[::1",
        ):
            for path in self.paths():
                with self.subTest(host=host, path=path):
                    body = self.get(path, host)
                    self.assertNotIn(b"evil", body)
                    self.assertNotIn(b"<x", body)
                    self.assertIn(b"http://" + own + b"/bzr/", body)

    def test_valid_hosts_are_used(self) -> None:
        for host in (f"localhost:{self.port}", "bzr.example.org", "[::1]:8080"):
            with self.subTest(host=host):
                body = self.get("/bzr/hello/lintian-fixes/", host)
                self.assertIn(f"brz branch http://{host}/bzr/hello/".encode(), body)


class LockRecordTests(StoreTestCase):
    """Anonymous readers never see a lock record (it names the worker)."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store_with_worker(campaigns=["lintian-fixes"])
        self.push_branch(self.store, "hello/lintian-fixes")
        write_authentication_conf(self.store.public, "worker-1", "correct horse")
        worker = hostile.smart_client(
            self.smart_url(self.store.public, "hello/lintian-fixes")
        )
        _, token, repo_token = worker.call(b"Branch.lock_write", b".", b"", b"")
        self.addCleanup(worker.call, b"Branch.unlock", b".", token, repo_token)
        self.record = self.branch_lock_record("hello/lintian-fixes")
        self.assertIn(b"worker-1", self.record)
        os.remove(bedding.authentication_config_path())  # anonymous from here

    def assert_no_record(self, data: bytes) -> None:
        for secret in (b"worker-1", b"nonce", b"request_id", b"hostname"):
            self.assertNotIn(secret, data)

    def test_plain_http_reads_do_not_show_lock_records(self) -> None:
        for path in (
            "/bzr/hello/lintian-fixes/.bzr/branch/lock/held/info",
            "/bzr/hello/lintian-fixes/main/.bzr/branch/lock/held/info",
        ):
            with self.subTest(path=path):
                status, _, body = raw_request(self.store.public_root, path)
                self.assertEqual(status, 404, body[:300])
                self.assert_no_record(body)
        status, _, body = raw_request(
            self.store.public_root, "/bzr/hello/lintian-fixes/.bzr/branch/lock/held/"
        )
        self.assertEqual((status, body), (200, b""))
        # the admin face (trusted) lists the holder
        status, _, body = raw_request(self.store.admin, "/hello/locks")
        self.assertEqual(status, 200, body[:300])
        self.assertIn(b"worker-1", body)

    def test_smart_vfs_reads_do_not_show_lock_records(self) -> None:
        url = self.store.public + "/hello/lintian-fixes/.bzr/smart"
        for verb, args, body in (
            (b"get", (b".bzr/branch/lock/held/info",), None),
            (b"get", (b"../hello/lintian-fixes/.bzr/branch/lock/held/info",), None),
            (b"readv", (b".bzr/branch/lock/held/info",), b"0,10"),
            (b"has", (b".bzr/branch/lock/held/info",), None),
        ):
            with self.subTest(verb=verb, args=args):
                status, _, raw = http_request(
                    url, data=hostile.encode_request(verb, *args, body=body)
                )
                self.assertEqual(status, 200, raw[:300])
                self.assert_no_record(raw)
                ok, answer = hostile.decode_response(raw)
                if verb == b"has":
                    self.assertEqual(answer, (b"no",))
                else:
                    self.assertFalse(ok, answer)
                    self.assertEqual(answer[0], b"NoSuchFile")

    def test_anonymous_clients_still_read_a_locked_branch(self) -> None:
        for scheme in ("bzr+", "nosmart+"):
            url = scheme + self.store.public + "/hello/lintian-fixes"
            with self.subTest(url=url):
                out = self.path("copy-" + scheme.rstrip("+"))
                brz("branch", "-q", url, out)
                self.assertIn(b"change", brz("log", url).stdout)
                info = brz("info", url)
                self.assert_no_record(info.stdout + info.stderr)


class LocationOptionTests(StoreTestCase):
    """A writer sets locations in a branch's configuration: only remote URLs
    of the allowed schemes, or relative ones inside the codebase, are kept."""

    BAD = (
        "file:///etc/passwd",
        "file:///root",
        "/etc/passwd",
        "../../other/lintian-fixes",
        "../%2e%2e/other",
        "lp:foo",
        "javascript:alert(1)",
        "ftp://example.org/x",
    )

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=["lintian-fixes", "fresh-releases"])
        self.url = self.smart_url(self.store.admin, "hello/lintian-fixes")
        brz("push", "-q", self.url, cwd=self.make_branch())
        self.conf = os.path.join(
            self.storage_dir, "hello", "lintian-fixes", ".bzr", "branch", "branch.conf"
        )

    def conf_bytes(self) -> bytes:
        with open(self.conf, "rb") as f:
            return f.read()

    def assert_option_refused(self, branch: Branch, name: str, value: str) -> None:
        """Setting ``name`` to ``value`` is refused with a reason naming it,
        and the branch's configuration is unchanged."""
        before = self.conf_bytes()
        with (
            branch.lock_write(),
            self.assertRaises(
                (errors.PermissionDenied, errors.ErrorFromSmartServer)
            ) as caught,
        ):
            branch.get_config().set_user_option(name, value)
        self.assertIn(f"{name}: ", str(caught.exception))
        self.assertEqual(self.conf_bytes(), before)

    def test_config_options_are_refused_with_the_reason(self) -> None:
        branch = Branch.open(self.url)
        for name in (
            "parent_location",
            "push_location",
            "public_location",
            "public_branch",
            "submit_branch",
        ):
            for value in self.BAD:
                with self.subTest(name=name, value=value):
                    self.assert_option_refused(branch, name, value)
        # put_config_file: the whole file
        before = self.conf_bytes()
        client = hostile.smart_client(self.url)
        _, token, repo_token = client.call(b"Branch.lock_write", b".", b"", b"")
        try:
            for body in (
                b"submit_branch = file:///x\n",
                b"[sub]\npush_location = file:///x\n",
                b"parent_location = https://a.example/x, file:///y\n",
            ):
                with (
                    self.subTest(body=body),
                    self.assertRaises(errors.ErrorFromSmartServer) as caught,
                ):
                    client.call_with_body_bytes(
                        b"Branch.put_config_file", (b".", token, repo_token), body
                    )
                self.assertEqual(caught.exception.error_tuple[0], b"PermissionDenied")
            # a location option that is a section
            with self.assertRaises(errors.ErrorFromSmartServer) as caught:
                client.call(
                    b"Branch.set_config_option_dict",
                    b".",
                    token,
                    repo_token,
                    hostile.bencoded({b"a": b"file:///x"}),
                    b"parent_location",
                    b"",
                )
            self.assertEqual(caught.exception.error_tuple[0], b"PermissionDenied")
        finally:
            client.call(b"Branch.unlock", b".", token, repo_token)
        self.assertEqual(self.conf_bytes(), before)

    def test_set_parent_and_push_location_store_nothing_refused(self) -> None:
        # breezy saves these when the branch is unlocked, and swallows
        # errors there: the client sees success, nothing is stored (a stock
        # push of a branch whose parent is a local path goes on)
        branch = Branch.open(self.url)
        before = self.conf_bytes()
        for value in self.BAD:
            with self.subTest(value=value):
                with branch.lock_write():
                    branch.set_parent(value)
                with branch.lock_write():
                    branch.set_push_location(value)
                self.assertEqual(self.conf_bytes(), before)

    def test_allowed_locations_are_stored(self) -> None:
        branch = Branch.open(self.url)
        with branch.lock_write():
            branch.set_parent("https://salsa.debian.org/debian/hello")
        with branch.lock_write():
            config = branch.get_config()
            config.set_user_option("push_location", "bzr+ssh://bzr.example.org/h")
            config.set_user_option("public_branch", "../fresh-releases")
            config.set_user_option("submit_branch", "")
        text = self.conf_bytes()
        self.assertIn(b"parent_location = https://salsa.debian.org/debian/hello", text)
        self.assertIn(b"push_location = bzr+ssh://bzr.example.org/h", text)
        self.assertIn(b"public_branch = ../fresh-releases", text)
        # and the admin's remotes
        status, _, body = http_request(
            self.store.admin + "/hello/remotes/fresh-releases",
            data=b"url=https://example.org/x",
        )
        self.assertEqual(status, 404, body)  # no such branch yet
        status, _, body = http_request(
            self.store.admin + "/hello/remotes/lintian-fixes",
            data=b"url=https://example.org/x",
        )
        self.assertEqual(status, 200, body)
        # a stock push of a branch whose parent is a local path succeeds
        local = self.path("local-parent")
        brz("branch", "-q", self.path("work"), local)
        url = self.smart_url(self.store.admin, "hello/fresh-releases")
        brz("push", "-q", url, cwd=local)
        self.assertEqual(Branch.open(url).get_parent(), None)

    def test_options_that_make_the_server_act_are_refused(self) -> None:
        # breezy's plugins act on a branch's options when its tip changes
        # (``upload`` copies the tree to ``upload_location``, ``email``
        # mails through ``smtp_server``): a writer must not set them
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        branch = Branch.open(self.url)
        for name, value in (
            ("upload_location", f"http://127.0.0.1:{port}/x"),
            ("upload_auto", "True"),
            ("smtp_server", f"127.0.0.1:{port}"),
            ("post_commit_to", "someone@example.org"),
        ):
            with self.subTest(name=name):
                self.assert_option_refused(branch, name, value)
        # breezy expands {name} in values, from the server's own
        # configuration too, and within each other
        for name, value in (
            ("parent_location", "{email}"),
            ("nickname", "{child_submit_to}{child_submit_to}"),
            ("child_submit_to", "x{"),
        ):
            with self.subTest(name=name, value=value):
                self.assert_option_refused(branch, name, value)
        # the options a stock client keeps are still stored
        with branch.lock_write():
            branch.get_config_stack().set("append_revisions_only", "False")
        self.assertIn(b"append_revisions_only = False", self.conf_bytes())


class ContentLengthFramingTests(StoreTestCase):
    """A request whose length is ambiguous is refused, its body never read
    as the next request."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store()

    def test_embedded_server_refuses_duplicate_and_signed_lengths(self) -> None:
        inner = b"GET /bzr/ HTTP/1.1\r\nHost: x\r\n\r\n"
        for lengths in (
            [b"0", b"%d" % len(inner)],
            [b"%d" % len(inner), b"%d" % len(inner)],
            [b"+%d" % len(inner)],
            [b"0x10"],
        ):
            with self.subTest(lengths=lengths):
                head = b"GET /bzr/ HTTP/1.1" + b"".join(
                    b"\r\nContent-Length: " + v for v in lengths
                )
                raw = hostile.raw_http(self.store.public, head, inner, timeout=10)
                status, headers, _ = hostile.split_response(raw)
                self.assertEqual(status, 400, raw[:200])
                self.assertEqual(headers.get("connection"), "close")
                self.assertEqual(raw.count(b"HTTP/1."), 1, raw)  # no second answer

    def test_store_app_refuses_them_from_any_wsgi_server(self) -> None:
        for value in ("0, 46", "+46", "-1", "4 6"):
            with self.subTest(value=value):
                environ = {
                    "REQUEST_METHOD": "GET",
                    "PATH_INFO": "/",
                    "SCRIPT_NAME": "",
                    "QUERY_STRING": "",
                    "SERVER_NAME": "x",
                    "SERVER_PORT": "80",
                    "SERVER_PROTOCOL": "HTTP/1.1",
                    "REMOTE_ADDR": "127.0.0.1",
                    "CONTENT_LENGTH": value,
                    "wsgi.url_scheme": "http",
                    "wsgi.input": io.BytesIO(b"x" * 46),
                    "wsgi.errors": io.StringIO(),
                }
                started: list = []
                body = b"".join(self.store.public_app(environ, _Started(started)))
                status, headers = started[0]
                self.assertEqual(status.split()[0], "400", body)
                self.assertEqual(headers.get("Connection"), "close")
        # a plain length is served
        environ["CONTENT_LENGTH"] = "0"
        b"".join(self.store.public_app(environ, _Started(started)))
        self.assertEqual(started[-1][0].split()[0], "200")


class _Started:
    """A WSGI ``start_response`` noting ``(status, headers)``."""

    def __init__(self, into: list) -> None:
        self._into = into

    def __call__(self, status: str, headers: list, exc_info=None):
        self._into.append((status, dict(headers)))
        return lambda data: None


class SymlinkedCodebaseTests(StoreTestCase):
    """A symbolic link planted at the top of the storage directory is no
    codebase: not listed, its pages and branches not served."""

    def test_not_listed_nor_served(self) -> None:
        self.store = self.start_store()
        work = self.make_branch()
        url = self.smart_url(self.store.admin, "hello/lintian-fixes")
        brz("push", "-q", url, cwd=work)
        outside = self.path("outside")
        os.makedirs(outside)
        os.symlink(outside, os.path.join(self.storage_dir, "elsewhere"))
        os.symlink(
            os.path.join(self.storage_dir, "hello"),
            os.path.join(self.storage_dir, "linked"),
        )
        for base in (self.store.public, self.store.admin):
            with self.subTest(base=base):
                status, _, body = http_request(base + "/")
                self.assertEqual(status, 200)
                self.assertIn(b"hello", body)
                self.assertNotIn(b"linked", body)
                for path in ("/linked/", "/linked/lintian-fixes/"):
                    status, _, body = http_request(base + path)
                    # public: refused; admin (a writer's face, any name may
                    # be made): an empty implicit directory
                    self.assertIn(status, (404 if base == self.store.public else 200,))
                    self.assertNotIn(b"lintian-fixes", body)
        proc = brz(
            "branch",
            self.smart_url(self.store.public, "linked/lintian-fixes"),
            self.path("copy"),
            check=False,
        )
        self.assertNotEqual(proc.returncode, 0)
        self.assertFalse(os.path.exists(self.path("copy", ".bzr")))
        # a push through the link makes nothing outside
        proc = brz(
            "push",
            self.smart_url(self.store.admin, "elsewhere/lintian-fixes"),
            cwd=work,
            check=False,
        )
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(os.listdir(outside), [])
