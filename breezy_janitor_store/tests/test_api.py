"""The janitor's HTTP API on a real store built by pushing with the real brz."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import unittest
import urllib.parse
import wsgiref.util

from breezy.branch import Branch

from ..policy.policies import CodebaseList, PolicyUnavailable
from ..store.budget import StreamBudget
from ..store.diff import DEFAULT_TIMEOUT
from ..web import api, metrics
from ..web.api import LIST_TYPES, negotiate
from .support.api_fixtures import big_store, hello_store
from .support.fixtures import (
    StoreTestCase,
    brz,
    http_request,
    http_request_no_redirect,
    tree_digest,
    wait_for,
)


def diff_threads() -> list[threading.Thread]:
    """The diff worker threads still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("store-diff-")]


class HelloTestCase(unittest.TestCase):
    """Tests reading the shared store with codebase ``hello``."""

    def setUp(self) -> None:
        super().setUp()
        self.shared = hello_store()
        self.store = self.shared.store
        self.rev = self.shared.revisions

    def admin(self, path: str, **headers: str):
        return http_request(self.store.admin + path, headers=headers)

    def public(self, path: str, **headers: str):
        return http_request(self.store.public_root + path, headers=headers)

    def query(self, codebase: str, endpoint: str, **params: str | bytes) -> str:
        values = {
            k: v.decode() if isinstance(v, bytes) else v for k, v in params.items()
        }
        return f"/{codebase}/{endpoint}?{urllib.parse.urlencode(values)}"

    def assertPlainError(self, response, status: int, *fragments: str) -> None:
        code, headers, body = response
        self.assertEqual(code, status, body)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"), headers)
        text = body.decode()
        for fragment in fragments:
            self.assertIn(fragment, text)
        self.assertNotIn(self.shared.tmp, text)
        self.assertNotIn("Traceback", text)


class NegotiationTests(unittest.TestCase):
    def test_exact_types(self) -> None:
        for kind in LIST_TYPES:
            self.assertEqual(negotiate(kind, LIST_TYPES), kind)

    def test_anything_prefers_json(self) -> None:
        self.assertEqual(negotiate("*/*", LIST_TYPES), "application/json")
        self.assertEqual(negotiate(None, LIST_TYPES), "application/json")
        self.assertEqual(negotiate("", LIST_TYPES), "application/json")

    def test_browser_gets_html(self) -> None:
        accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        self.assertEqual(negotiate(accept, LIST_TYPES), "text/html")

    def test_quality_values(self) -> None:
        self.assertEqual(
            negotiate("application/json;q=0.5, text/html;q=0.1", LIST_TYPES),
            "application/json",
        )
        self.assertEqual(negotiate("text/*;q=0.3, text/html", LIST_TYPES), "text/html")
        # the most specific range decides: text/plain is excluded
        self.assertEqual(negotiate("text/*, text/plain;q=0", LIST_TYPES), "text/html")

    def test_nothing_acceptable(self) -> None:
        self.assertIsNone(negotiate("image/png", LIST_TYPES))
        self.assertIsNone(negotiate("*/*;q=0", LIST_TYPES))
        self.assertIsNone(negotiate("garbage", LIST_TYPES))


class ListingTests(HelloTestCase):
    def test_json_lists_only_codebases(self) -> None:
        status, headers, body = self.admin("/", Accept="application/json")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        # norepo (no repository), README.txt, .hidden and Bad_Name are not listed
        self.assertEqual(json.loads(body), ["hello"])

    def test_json_is_the_default(self) -> None:
        """The janitor's site asks with ``Accept: */*`` and parses JSON."""
        for headers in ({}, {"Accept": "*/*"}):
            status, h, body = self.admin("/", **headers)
            self.assertEqual(status, 200)
            self.assertEqual(h["Content-Type"], "application/json")
            self.assertEqual(json.loads(body), ["hello"])

    def test_plain_text_when_asked_for(self) -> None:
        status, h, body = self.admin("/", Accept="text/plain")
        self.assertEqual(status, 200)
        self.assertTrue(h["Content-Type"].startswith("text/plain"))
        self.assertEqual(body, b"hello\n")

    def test_html_is_a_page_of_links(self) -> None:
        status, headers, body = self.admin("/", Accept="text/html")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        self.assertTrue(body.startswith(b"<!DOCTYPE html>"))
        self.assertIn(b'<a href="/bzr/hello/">hello</a>', body)
        self.assertNotIn(b"norepo", body)

    def test_not_acceptable(self) -> None:
        self.assertPlainError(
            self.admin("/", Accept="image/png"), 406, "application/json"
        )

    def test_repositories_is_json(self) -> None:
        for response in (
            self.admin("/repositories", Accept="text/html"),
            self.public("/bzr/repositories"),
        ):
            status, headers, body = response
            self.assertEqual(status, 200)
            self.assertEqual(headers["Content-Type"], "application/json")
            self.assertEqual(json.loads(body), ["hello"])

    def test_public_list_negotiates_too(self) -> None:
        self.assertEqual(
            json.loads(self.public("/bzr/", Accept="application/json")[2]), ["hello"]
        )
        self.assertEqual(json.loads(self.public("/bzr/")[2]), ["hello"])
        self.assertEqual(self.public("/bzr/", Accept="text/plain")[2], b"hello\n")
        html = self.public("/bzr/", Accept="text/html")[2]
        self.assertIn(b'<a href="/bzr/hello/">hello</a>', html)
        self.assertEqual(self.public("/bzr/", Accept="image/*")[0], 406)

    def test_admin_html_links_to_the_public_url(self) -> None:
        app = self.store.admin_app
        app.public_url = "https://janitor.example.org/"
        self.addCleanup(setattr, app, "public_url", None)
        body = self.admin("/", Accept="text/html")[2]
        self.assertIn(
            b'<a href="https://janitor.example.org/bzr/hello/">hello</a>', body
        )

    def test_home_page(self) -> None:
        status, headers, body = self.public("/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        self.assertIn(
            b"brz branch " + self.store.public.encode() + b"/CODEBASE/CAMPAIGN", body
        )


class RoutingTests(HelloTestCase):
    def test_missing_slash_is_the_same_page(self) -> None:
        """No redirects: a probe without the trailing slash gets the answer."""
        for path in ("/bzr", "/bzr/hello", "/bzr/hello/lintian-fixes"):
            status, _, body = http_request_no_redirect(self.store.public_root + path)
            self.assertEqual(status, 200, path)
            self.assertEqual(body, self.public(path + "/")[2])

    def test_unknown_paths(self) -> None:
        for path, reason in (
            (self.query("nothing", "diff", old="a", new="b"), "no such codebase"),
            ("/hello/diff/", "not found"),
            ("/hello/nothing", "unknown campaign: nothing"),
            ("/Hello/diff", "not found"),
        ):
            self.assertPlainError(self.admin(path), 404, reason)
        for path in (
            "/metrics",
            "/hello/diff",
            "/bzr/x/y/z/w/",
            "/bzr/HELLO/",
        ):
            self.assertPlainError(self.public(path), 404, "not found")

    def test_wrong_methods(self) -> None:
        cases = [
            (self.store.admin + "/hello/diff", "POST", "GET, HEAD"),
            (self.store.admin + "/hello/revision-info", "PUT", "GET, HEAD"),
            (self.store.admin + "/hello/remotes/lintian-fixes", "GET", "POST"),
            (self.store.admin + "/hello/.bzr/smart", "GET", "POST"),
            (self.store.admin + "/", "DELETE", "GET, HEAD"),
            (self.store.public + "/", "POST", "GET, HEAD"),
            (self.store.public + "/hello/.bzr/smart", "GET", "POST"),
            (self.store.public + "/hello/lintian-fixes/.bzr/smart", "GET", "POST"),
            (self.store.public + "/hello/lintian-fixes/", "POST", "GET, HEAD"),
        ]
        for url, method, allow in cases:
            status, headers, body = http_request(url, method=method, data=b"")
            self.assertEqual(status, 405, (url, method, body))
            self.assertEqual(headers["Allow"], allow, url)

    def test_health(self) -> None:
        self.assertEqual(self.admin("/health")[:3:2], (200, b"ok"))
        self.assertEqual(self.public("/health")[:3:2], (200, b"ok"))


class DiffTests(HelloTestCase):
    def diff(self, **params):
        return self.admin(self.query("hello", "diff", **params))

    def brz_diff(self, old: bytes, new: bytes, path: str = "") -> bytes:
        branch = os.path.join(self.shared.storage_dir, "hello", "lintian-fixes", path)
        rev = f"revid:{old.decode()}..revid:{new.decode()}"
        return brz("diff", "-r", rev, branch, check=False, env=self.shared.env).stdout

    def test_same_as_brz_diff(self) -> None:
        status, headers, body = self.diff(old=self.rev["r1"], new=self.rev["r4"])
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/x-diff")
        self.assertIn(b"=== added file 'notes.txt'", body)
        self.assertEqual(body, self.brz_diff(self.rev["r1"], self.rev["r4"]))

    def test_from_null_is_the_whole_tree(self) -> None:
        body = self.diff(old="null:", new=self.rev["r1"])[2]
        self.assertIn(b"=== added file 'file'", body)
        self.assertIn(b"=== added file 'dir/sub.txt'", body)

    def test_equal_revisions_give_an_empty_body(self) -> None:
        status, headers, body = self.diff(old=self.rev["r2"], new=self.rev["r2"])
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Content-Type"], "text/x-diff")

    def test_path_limits_the_diff(self) -> None:
        old, new = self.rev["r1"], self.rev["r4"]
        for path in ("dir/sub.txt", "dir", "/dir/", "./dir"):
            body = self.diff(old=old, new=new, path=path)[2]
            self.assertIn(b"dir/sub.txt", body, path)
            self.assertNotIn(b"'file'", body, path)
            self.assertNotIn(b"notes.txt", body, path)
        self.assertEqual(
            self.diff(old=old, new=new, path="dir/sub.txt")[2],
            self.brz_diff(old, new, "dir/sub.txt"),
        )
        body = self.diff(old=old, new=new, path="file")[2]
        self.assertIn(b"+two", body)
        self.assertNotIn(b"sub.txt", body)

    def test_path_in_neither_revision(self) -> None:
        self.assertPlainError(
            self.diff(old=self.rev["r1"], new=self.rev["r4"], path="nothing/here"),
            404,
            "no such path",
            "nothing/here",
        )

    def test_revision_ids_with_an_unescaped_plus(self) -> None:
        # The janitor's client puts revision ids in the query unescaped, so
        # the "+" of jane+janitor@example.com arrives as a space.
        old, new = self.rev["r1"], self.rev["r2"]
        self.assertIn(b"+", old)
        raw = f"/hello/diff?old={old.decode()}&new={new.decode()}"
        status, _, body = self.admin(raw)
        self.assertEqual(status, 200, body)
        self.assertEqual(body, self.diff(old=old, new=new)[2])
        self.assertIn(b"+two", body)

    def test_missing_revisions_are_bad_requests(self) -> None:
        for params in (
            {"new": self.rev["r1"]},
            {"old": self.rev["r1"]},
            {"old": "", "new": self.rev["r1"]},
            {},
        ):
            self.assertPlainError(self.diff(**params), 400, "missing query parameter")

    def test_unknown_revision_is_named(self) -> None:
        self.assertPlainError(
            self.diff(old=self.rev["r1"], new="nobody@example.com-1-x"),
            404,
            "no such revision: nobody@example.com-1-x",
        )
        self.assertPlainError(
            self.diff(old="missing-old", new=self.rev["r1"]), 404, "missing-old"
        )

    def test_codebase_without_repository_does_not_exist(self) -> None:
        """Without a database (every name admitted), a directory without a
        repository is no codebase: 404, on every endpoint, except as the
        empty directory a writer (the admin face) may create it in."""
        for path in (
            self.query("norepo", "diff", old="null:", new=self.rev["r1"]),
            self.query("norepo", "revision-info", old="null:", new=self.rev["r1"]),
            "/norepo/lintian-fixes/.bzr/branch-format",
        ):
            with self.subTest(path=path):
                self.assertPlainError(self.admin(path), 404, "no such codebase: norepo")
        self.assertEqual(self.admin("/norepo/")[::2], (200, b""))
        self.assertEqual(self.public("/bzr/norepo/")[0], 404)

    def test_head_has_no_body(self) -> None:
        status, headers, body = http_request(
            self.store.admin
            + self.query("hello", "diff", old=self.rev["r1"], new=self.rev["r4"]),
            method="HEAD",
        )
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Content-Type"], "text/x-diff")
        wait_for(lambda: not diff_threads(), "the diff thread to end")

    def test_slow_diff_is_cut_off_with_504(self) -> None:
        wait_for(lambda: not diff_threads(), "earlier diff threads to end")
        app = self.store.admin_app
        app.diff_timeout = 1e-9
        self.addCleanup(setattr, app, "diff_timeout", DEFAULT_TIMEOUT)
        response = self.diff(old="null:", new=self.rev["r4"])
        self.assertPlainError(response, 504, "diff took longer than")
        # the worker was stopped and joined before the answer
        self.assertEqual(diff_threads(), [])


class DiffStreamingTests(unittest.TestCase):
    """A diff far larger than the stream's buffers."""

    def setUp(self) -> None:
        self.shared = big_store()
        self.app = self.shared.store.admin_app
        self.path = "/big/diff?old=null:&new=" + self.shared.revisions["big"].decode()

    def call(self) -> tuple[list, object]:
        """Call the admin app as a WSGI application, without a server."""
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": self.path.split("?")[0],
            "QUERY_STRING": self.path.split("?")[1],
            "wsgi.input": io.BytesIO(),
        }
        wsgiref.util.setup_testing_defaults(environ)
        started = []
        body = self.app(
            environ, lambda status, headers, exc=None: started.append(status)
        )
        return started, body

    def test_streamed_in_chunks(self) -> None:
        status, headers, body = http_request(self.shared.store.admin + self.path)
        self.assertEqual(status, 200)
        self.assertNotIn("Content-Length", headers)
        self.assertGreater(len(body), 2 * 1024 * 1024)
        self.assertTrue(body.startswith(b"=== added file 'big.txt'"))
        self.assertTrue(body.endswith(b"+line 199999\n\n"))
        started, chunks = self.call()
        sizes = [len(c) for c in chunks]
        chunks.close()
        self.assertEqual(started, ["200 OK"])
        self.assertEqual(sum(sizes), len(body))
        self.assertGreater(len(sizes), 10)
        self.assertLessEqual(max(sizes), 2 * 64 * 1024)

    def test_cut_off_mid_stream_stops_the_worker(self) -> None:
        self.app.diff_timeout = 1.0
        self.addCleanup(setattr, self.app, "diff_timeout", DEFAULT_TIMEOUT)
        labels = {"face": "admin", "endpoint": "diff", "kind": "aborted"}
        aborted = (
            metrics.REGISTRY.get_sample_value("bzr_store_errors_total", labels) or 0
        )
        started, body = self.call()
        iterator = iter(body)
        first = next(iterator)
        self.assertEqual(started, ["200 OK"])
        self.assertTrue(first.startswith(b"=== added file"))
        # The client stops reading: the worker fills the bounded queue, then
        # gives up at the deadline and ends.
        wait_for(lambda: not diff_threads(), "the diff thread to end")
        rest = b"".join(iterator)
        body.close()
        self.assertLess(len(first) + len(rest), 1024 * 1024)
        self.assertEqual(diff_threads(), [])
        self.assertEqual(
            metrics.REGISTRY.get_sample_value("bzr_store_errors_total", labels),
            aborted + 1,
        )


class RevisionInfoTests(HelloTestCase):
    def info(self, codebase: str = "hello", **params):
        return self.admin(self.query(codebase, "revision-info", **params))

    def ids(self, **params) -> list[bytes]:
        status, headers, body = self.info(**params)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Content-Type"], "application/json")
        return [e["revision-id"].encode() for e in json.loads(body)]

    def test_newest_first_back_to_old(self) -> None:
        status, _, body = self.info(old=self.rev["r1"], new=self.rev["r4"])
        self.assertEqual(status, 200)
        entries = json.loads(body)
        self.assertEqual(
            [e["revision-id"].encode() for e in entries],
            [self.rev["r4"], self.rev["r3"], self.rev["r2"]],
        )
        self.assertEqual(
            [e["message"] for e in entries],
            [
                'Fix <b>bold</b> & "quotes"\n\nA longer description <script>x</script>.',
                "Extend sub",
                "Add a second line",
            ],
        )
        self.assertEqual(
            set(entries[0]),
            {
                "revision-id",
                "revision_id",
                "commit-id",
                "commit_id",
                "link",
                "message",
            },
        )
        for entry in entries:
            self.assertEqual(entry["revision_id"], entry["revision-id"])
            self.assertIsNone(entry["commit-id"])
            self.assertIsNone(entry["commit_id"])

    def test_no_links_without_a_public_url(self) -> None:
        """The admin face does not know the public face's URL: null links,
        never root-relative ones (the janitor parses them as URLs)."""
        entries = json.loads(self.info(old=self.rev["r2"], new=self.rev["r4"])[2])
        self.assertEqual([e["link"] for e in entries], [None, None])

    def test_links_open_the_revision_page(self) -> None:
        """Through the public face, links are absolute URLs of its pages."""
        path = self.query(
            "hello", "revision-info", old=self.rev["r2"], new=self.rev["r4"]
        )
        entries = json.loads(self.public("/bzr" + path)[2])
        self.assertEqual(len(entries), 2)
        for entry in entries:
            link = entry["link"]
            self.assertTrue(
                link.startswith(self.store.public + "/hello/+revision/"), link
            )
            status, headers, page = http_request(link)
            self.assertEqual(status, 200, link)
            self.assertTrue(headers["Content-Type"].startswith("text/html"))
            self.assertIn(entry["revision-id"].encode(), page)

    def test_links_use_the_public_url(self) -> None:
        app = self.store.admin_app
        app.public_url = "https://janitor.example.org"
        self.addCleanup(setattr, app, "public_url", None)
        entries = json.loads(self.info(old=self.rev["r3"], new=self.rev["r4"])[2])
        quoted = urllib.parse.quote(self.rev["r4"], safe="@:+")
        self.assertEqual(
            entries[0]["link"],
            f"https://janitor.example.org/bzr/hello/+revision/{quoted}",
        )

    def test_null_old_is_the_whole_history(self) -> None:
        self.assertEqual(
            self.ids(old="null:", new=self.rev["r4"]),
            [self.rev[r] for r in ("r4", "r3", "r2", "r1")],
        )

    def test_equal_revisions_give_an_empty_list(self) -> None:
        self.assertEqual(self.ids(old=self.rev["r3"], new=self.rev["r3"]), [])
        self.assertEqual(self.ids(old=self.rev["r3"], new="null:"), [])

    def test_old_off_the_line_stops_at_what_it_has(self) -> None:
        # f2 diverged from the main line after r2
        self.assertEqual(
            self.ids(old=self.rev["f2"], new=self.rev["r4"]),
            [self.rev["r4"], self.rev["r3"]],
        )
        self.assertEqual(
            self.ids(old=self.rev["r4"], new=self.rev["f2"]),
            [self.rev["f2"], self.rev["f1"]],
        )
        # a descendant of new as old: nothing is new
        self.assertEqual(self.ids(old=self.rev["r4"], new=self.rev["r2"]), [])

    def test_unescaped_plus(self) -> None:
        raw = f"/hello/revision-info?old={self.rev['r3'].decode()}&new={self.rev['r4'].decode()}"
        status, _, body = self.admin(raw)
        self.assertEqual(status, 200, body)
        self.assertEqual(
            [e["revision-id"].encode() for e in json.loads(body)], [self.rev["r4"]]
        )

    def test_long_lists_are_streamed(self) -> None:
        saved = api.EAGER_REVISIONS
        api.EAGER_REVISIONS = 2
        self.addCleanup(setattr, api, "EAGER_REVISIONS", saved)
        status, headers, body = self.info(old="null:", new=self.rev["r4"])
        self.assertEqual(status, 200)
        self.assertNotIn("Content-Length", headers)
        self.assertEqual(
            [e["revision-id"].encode() for e in json.loads(body)],
            [self.rev[r] for r in ("r4", "r3", "r2", "r1")],
        )

    def test_errors(self) -> None:
        self.assertPlainError(self.info(new=self.rev["r1"]), 400, "old")
        self.assertPlainError(self.info(old="null:"), 400, "new")
        self.assertPlainError(
            self.info(old="null:", new="unknown-revision"), 404, "unknown-revision"
        )
        self.assertPlainError(
            self.info("norepo", old="null:", new=self.rev["r1"]), 404, "norepo"
        )


class RemoteTests(HelloTestCase):
    def post(self, location: str, data: bytes, content_type: str | None = None):
        headers = {"Content-Type": content_type} if content_type else {}
        return http_request(
            f"{self.store.admin}/{location.split('/')[0]}/remotes/{location.split('/')[1]}",
            data=data,
            method="POST",
            headers=headers,
        )

    def parent(self, campaign: str) -> str | None:
        path = os.path.join(self.shared.storage_dir, "hello", campaign)
        return Branch.open(path).get_parent()

    def test_sets_the_parent(self) -> None:
        url = "https://salsa.debian.org/janitor-team/hello.git,branch=main"
        status, _, body = self.post(
            "hello/fresh-releases", urllib.parse.urlencode({"url": url}).encode()
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(self.parent("fresh-releases"), url)

    def test_multipart_form(self) -> None:
        url = "https://example.com/hello"
        boundary = "xYzZY"
        data = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="url"\r\n\r\n'
            f"{url}\r\n--{boundary}--\r\n"
        ).encode()
        status, _, body = self.post(
            "hello/lintian-fixes", data, f"multipart/form-data; boundary={boundary}"
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(self.parent("lintian-fixes"), url)

    def test_refusals_change_nothing(self) -> None:
        before = tree_digest(self.shared.storage_dir)
        good = urllib.parse.urlencode({"url": "https://example.com/x"}).encode()
        cases = [
            ("hello/lintian-fixes", b"", 400, "missing form field: url"),
            ("hello/lintian-fixes", b"other=1", 400, "missing form field: url"),
            ("hello/lintian-fixes", b"url=not+a+url", 400, "invalid url"),
            ("hello/lintian-fixes", b"url=/etc/passwd", 400, "invalid url"),
            ("hello/lintian-fixes", b"url=http%3A%2F%2F", 400, "invalid url"),
            ("hello/unknown-campaign", good, 404, "no such branch"),
            ("norepo/lintian-fixes", good, 404, "no such branch"),
            ("nothing/lintian-fixes", good, 404, "no such branch"),
        ]
        for location, data, status, reason in cases:
            self.assertPlainError(self.post(location, data), status, reason)
        self.assertEqual(tree_digest(self.shared.storage_dir), before)


class ReadyTests(StoreTestCase):
    def test_ready(self) -> None:
        store = self.start_store()
        self.assertEqual(http_request(store.admin + "/ready")[:3:2], (200, b"ok"))

    def test_not_ready_without_the_storage_directory(self) -> None:
        store = self.start_store()
        shutil.rmtree(self.storage_dir)
        status, _, body = http_request(store.admin + "/ready")
        self.assertEqual(status, 503)
        self.assertIn(b"storage directory not readable and writable", body)
        self.assertNotIn(self.storage_dir.encode(), body)
        # a file where the directory should be
        with open(self.storage_dir, "w") as f:
            f.write("x")
        self.assertEqual(http_request(store.admin + "/ready")[0], 503)

    def test_not_ready_when_the_database_does_not_answer(self) -> None:
        policy = _Database()
        store = self.start_store(codebase_policy=policy, write_policy=policy)
        self.assertEqual(http_request(store.admin + "/ready")[0], 200)
        self.assertEqual(policy.checks, 1)  # one object, checked once
        policy.down = True
        status, _, body = http_request(store.admin + "/ready")
        self.assertEqual(status, 503)
        self.assertIn(b"not ready: connection refused", body)

    def test_unknown_codebase_by_policy(self) -> None:
        store = self.start_store(codebase_policy=CodebaseList(["hello"]))
        for endpoint in ("diff", "revision-info"):
            status, _, body = http_request(
                f"{store.admin}/other/{endpoint}?old=null:&new=null:"
            )
            self.assertEqual((status, body), (404, b"no such codebase: other\n"))


class _Database:
    """A policy whose source can be switched off (like the database ones)."""

    def __init__(self) -> None:
        self.down = False
        self.checks = 0

    def codebase_exists(self, name: str) -> bool:
        return True

    def __call__(self, environ) -> bool:
        return True

    def check_ready(self) -> None:
        self.checks += 1
        if self.down:
            raise PolicyUnavailable("connection refused")


class RevisionInfoBoundsTests(StoreTestCase):
    """revision-info over a long history: a reader slot of the stream
    budget, the diff timeout, and at most a cap of entries."""

    def setUp(self) -> None:
        super().setUp()
        self.budget = StreamBudget(1, wait=0.2, stall_window=3600)
        self.store = self.start_store(stream_budget=self.budget)
        work = self.make_branch(revisions=5)
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes"),
            cwd=work,
        )
        self.tip = Branch.open(work).last_revision().decode()
        self.url = (
            self.store.admin
            + "/hello/revision-info?"
            + urllib.parse.urlencode({"old": "null:", "new": self.tip})
        )

    def test_takes_a_reader_slot_or_is_refused(self) -> None:
        self.assertTrue(self.budget.acquire(holder="someone"))
        try:
            status, headers, body = http_request(self.url)
        finally:
            self.budget.release(holder="someone")
        self.assertEqual(status, 503, body)
        self.assertIn("Retry-After", headers)
        status, _, body = http_request(self.url)
        self.assertEqual((status, len(json.loads(body))), (200, 5))
        wait_for(lambda: self.budget.in_use == 0, "the slot to be given back")

    def test_cut_to_the_newest_entries(self) -> None:
        self.store.admin_app.revision_info_limit = 2
        status, headers, body = http_request(self.url)
        self.assertEqual(status, 200, body)
        entries = json.loads(body)
        self.assertEqual(entries[0]["revision-id"], self.tip)
        self.assertEqual(len(entries), 2)
        self.assertEqual(headers.get("Bzr-Store-Truncated"), "2")
        self.store.admin_app.revision_info_limit = 5
        status, headers, body = http_request(self.url)
        self.assertEqual(len(json.loads(body)), 5)
        self.assertNotIn("Bzr-Store-Truncated", headers)

    def test_past_the_diff_timeout_is_a_504(self) -> None:
        self.store.admin_app.diff_timeout = 0
        status, _, body = http_request(self.url)
        self.assertEqual(status, 504, body)
        self.assertIn(b"revision-info took longer than 0 s", body)
        wait_for(lambda: self.budget.in_use == 0, "the slot to be given back")
