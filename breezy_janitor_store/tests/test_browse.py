"""The public face's HTML pages: content, escaping, validity, a real browser.

Pages are checked three ways: their content (parsed with the standard
library's ``html.parser``, which also checks that every element is closed in
order), strict HTML5 parsing with ``html5lib`` (any parse error fails), and
headless Chromium (the DOM it builds, and a screenshot that must not be
blank).  Chromium is Debian's ``chromium`` package
(``apt-get install chromium``); html5lib is ``pip install html5lib``.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import threading
import unittest
import urllib.parse
import zlib
from collections import Counter

from ..store.diff import DEFAULT_TIMEOUT
from ..web import browse
from ..web.server import make_server
from .support.api_fixtures import COMMITTER, SharedStore, big_store, hello_store
from .support.chromium import ChromiumMixin
from .support.features import CHROMIUM as CHROMIUM_FEATURE
from .support.features import HTML5LIB, require
from .support.fixtures import brz, http_request
from .support.pages import Page

CHROMIUM = CHROMIUM_FEATURE.feature.path




def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and pixels of an 8-bit RGB(A) PNG (stdlib zlib only)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {color}")
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    previous = bytearray(stride)
    pixels = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        pixels.extend(bytes(line[i : i + bpp]) for i in range(0, stride, bpp))
        previous = line
    return width, height, pixels


class BrowseTestCase(unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.shared = hello_store()
        self.store = self.shared.store
        self.rev = self.shared.revisions

    def get(self, path: str, status: int = 200) -> Page:
        code, headers, body = http_request(
            self.store.public_root + path, headers={"Accept": "text/html"}
        )
        self.assertEqual(code, status, body)
        if status != 200:
            # a browser's refusal is a page with a way back
            self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")
            self.check_html(body, path)
            self.assertIn("/bzr/", Page(body).links)
            return body
        self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")
        self.check_html(body, path)
        return Page(body)

    def html_pages(self) -> list[str]:
        """Every kind of HTML page, on both faces."""
        return [
            self.store.public_root + path
            for path in (
                "/",
                "/bzr/",
                "/bzr/hello/",
                "/bzr/hello/lintian-fixes/",
                self.revision_path("r4"),
            )
        ] + [self.store.admin + "/"]

    def check_html(self, body: bytes, where: str) -> None:
        self.assertTrue(body.startswith(b"<!DOCTYPE html>"), where)
        self.assertNotIn(b"<script", body, where)  # no JavaScript, nothing unescaped
        self.assertEqual(Page(body).errors, [], where)
        require(self, HTML5LIB)
        html5lib = HTML5LIB.feature.module
        parser = html5lib.HTMLParser(strict=True)
        try:
            parser.parse(body)
        except html5lib.html5parser.ParseError as e:
            self.fail(f"{where}: HTML5 parse error: {e}")

    def revision_path(self, name: str) -> str:
        return "/bzr/hello/+revision/" + urllib.parse.quote(self.rev[name], safe="@:+")


class PageTests(BrowseTestCase):
    def test_home(self) -> None:
        page = self.get("/")
        self.assertIn(
            "brz branch " + self.store.public + "/CODEBASE/CAMPAIGN", page.all_text
        )
        self.assertIn("/bzr/", page.links)

    def test_codebase_list(self) -> None:
        page = self.get("/bzr/")
        self.assertIn("/bzr/hello/", page.links)
        self.assertIn("1 codebase.", page.all_text)

    def test_codebase_lists_branches(self) -> None:
        page = self.get("/bzr/hello/")
        text = page.all_text
        for link in (
            "/bzr/hello/lintian-fixes/",
            "/bzr/hello/lintian-fixes/upstream/",
            "/bzr/hello/fresh-releases/",
            self.revision_path("r4"),
            self.revision_path("r2"),
            self.revision_path("f2"),
        ):
            self.assertIn(link, page.links)
        self.assertIn(COMMITTER, text)
        self.assertIn('Fix <b>bold</b> & "quotes"', text)  # the summary, escaped
        # r4: EPOCH (2023-11-14 22:13:20Z) + 3 h, shown in its +0100 zone
        self.assertIn("2023-11-15 02:13:20 +0100", text)
        self.assertEqual(
            sorted(page.commands),
            sorted(
                f"brz branch {self.store.public}/hello/{where}"
                for where in (
                    "lintian-fixes",
                    "lintian-fixes/upstream",
                    "fresh-releases",
                )
            ),
        )

    def test_branch_commands_work(self) -> None:
        page = self.get("/bzr/hello/")
        target = tempfile.mkdtemp(prefix="bjs-branch-")
        self.addCleanup(shutil.rmtree, target, ignore_errors=True)
        revnos = {}
        for i, command in enumerate(page.commands):
            words = command.split()
            self.assertEqual(words[:2], ["brz", "branch"])
            dest = os.path.join(target, str(i))
            brz(*words[1:], dest, env=self.shared.env)
            revnos[words[2].rsplit("/bzr/", 1)[1]] = (
                brz("revno", dest, env=self.shared.env).stdout.decode().strip()
            )
        self.assertEqual(
            revnos,
            {
                "hello/lintian-fixes": "4",
                "hello/lintian-fixes/upstream": "2",
                "hello/fresh-releases": "4",
            },
        )

    def test_branch_history_and_tags(self) -> None:
        page = self.get("/bzr/hello/lintian-fixes/")
        revision_links = [link for link in page.links if "/+revision/" in link]
        self.assertEqual(
            revision_links,
            [self.revision_path(r) for r in ("r4", "r3", "r2", "r1")]
            + [self.revision_path("r2")],  # the tag v1.0
        )
        self.assertIn("v1.0", page.all_text)
        self.assertIn("Extend sub", page.all_text)
        self.assertEqual(
            page.commands, [f"brz branch {self.store.public}/hello/lintian-fixes"]
        )

    def test_role_branch(self) -> None:
        page = self.get("/bzr/hello/lintian-fixes/upstream/")
        self.assertEqual(
            [link for link in page.links if "/+revision/" in link],
            [self.revision_path(r) for r in ("r2", "r1")] + [self.revision_path("r2")],
        )
        main = self.get("/bzr/hello/lintian-fixes/main/")
        self.assertIn(self.revision_path("r4"), main.links)

    def test_revision_page(self) -> None:
        page = self.get(self.revision_path("r4"))
        text = page.all_text
        self.assertIn("A longer description <script>x</script>.", text)
        self.assertIn(self.rev["r4"].decode(), text)
        self.assertIn(COMMITTER, text)
        self.assertIn(self.revision_path("r3"), page.links)  # the parent
        self.assertIn("=== added file 'notes.txt'", text)
        self.assertIn("+<b>bold</b> & more", text)
        self.assertNotIn("dir/sub.txt", text)  # only the change against r3

    def test_first_revision_page(self) -> None:
        # the revision id with its "+" unescaped in the path works too
        page = self.get("/bzr/hello/+revision/" + self.rev["r1"].decode())
        self.assertIn("Initial import", page.all_text)
        self.assertIn("=== added file 'dir/sub.txt'", page.all_text)

    def test_not_found(self) -> None:
        for path in (
            "/bzr/nothing/",
            "/bzr/norepo/",
            "/bzr/hello/unknown-campaign/",
            "/bzr/hello/lintian-fixes/nothing/",
            "/bzr/hello/+revision/nobody@example.com-1-x",
            "/bzr/hello/+revision/null:",
            "/bzr/nothing/+revision/x",
        ):
            body = self.get(path, 404)
            self.assertNotIn(self.shared.tmp.encode(), body)

    def test_refusals_stay_plain_text_for_other_clients(self) -> None:
        for accept in (None, "*/*", "text/plain, text/html;q=0.5"):
            with self.subTest(accept=accept):
                code, headers, body = http_request(
                    self.store.public_root + "/bzr/nothing/",
                    headers={"Accept": accept} if accept else {},
                )
                self.assertEqual(code, 404)
                self.assertTrue(headers["Content-Type"].startswith("text/plain"))
                self.assertEqual(body, b"no such codebase: nothing\n")

    def test_error_page_links_back_to_the_codebase(self) -> None:
        body = self.get("/bzr/hello/+revision/nobody@example.com-1-x", 404)
        self.assertIn("/bzr/hello/", Page(body).links)
        self.assertIn("no such revision: nobody@example.com-1-x", Page(body).all_text)

    def test_slow_diff_is_cut_off_with_a_note(self) -> None:
        app = self.store.public_app
        app.diff_timeout = 1e-9
        self.addCleanup(setattr, app, "diff_timeout", DEFAULT_TIMEOUT)
        page = self.get(self.revision_path("r4"))
        self.assertIn("The diff was cut off: diff took longer than", page.all_text)
        self.assertIn("A longer description <script>x</script>.", page.all_text)

    def test_long_diff_is_shortened(self) -> None:
        shared = big_store()
        revid = shared.revisions["big"]
        status, _, body = http_request(
            shared.store.public_root + "/bzr/big/+revision/" + revid.decode()
        )
        self.assertEqual(status, 200)
        page = Page(body)
        self.assertEqual(page.errors, [])
        self.assertIn("The diff is too long to show here in full", page.all_text)
        self.assertIn("+line 1000\n", page.all_text)
        self.assertNotIn("+line 199999\n", page.all_text)
        self.assertLess(len(body), browse.PAGE_DIFF_LIMIT + 16 * 1024)

    def test_head(self) -> None:
        status, headers, body = http_request(
            self.store.public_root + self.revision_path("r4"), method="HEAD"
        )
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")


class SecurityHeaderTests(BrowseTestCase):
    """Every HTML page: a CSP without script, nosniff, no framing, referrer."""

    def test_headers(self) -> None:
        for url in self.html_pages():
            for method in ("GET", "HEAD"):
                with self.subTest(url=url, method=method):
                    status, headers, _ = http_request(
                        url, method=method, headers={"Accept": "text/html"}
                    )
                    self.assertEqual(status, 200)
                    self.assertTrue(headers["Content-Type"].startswith("text/html"))
                    csp = headers["Content-Security-Policy"]
                    directives = dict(
                        (d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";")
                    )
                    self.assertEqual(directives["default-src"], "'none'")
                    self.assertNotIn("script-src", directives)
                    self.assertNotIn("unsafe-inline", csp)
                    self.assertEqual(directives["frame-ancestors"], "'none'")
                    self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
                    self.assertEqual(headers["X-Frame-Options"], "DENY")
                    self.assertEqual(headers["Referrer-Policy"], "same-origin")


class PagingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.shared = SharedStore.get("long", _build_long)
        self.base = self.shared.store.public_root + "/bzr/long/lintian-fixes/"

    def rows(self, query: str = "") -> tuple[list[str], Page]:
        status, _, body = http_request(self.base + query)
        self.assertEqual(status, 200, body)
        page = Page(body)
        self.assertEqual(page.errors, [])
        links = [link.rsplit("/", 1)[1] for link in page.links if "/+revision/" in link]
        return links, page

    def test_pages(self) -> None:
        revisions = [f"long-{n:03d}" for n in range(60, 0, -1)]
        first, page = self.rows()
        self.assertEqual(first, revisions[:50])
        self.assertIn("?page=2", page.links)
        self.assertNotIn("?page=0", page.links)
        second, page = self.rows("?page=2")
        self.assertEqual(second, revisions[50:])
        self.assertIn("?page=1", page.links)
        self.assertNotIn("?page=3", page.links)

    def test_bad_pages(self) -> None:
        self.assertEqual(http_request(self.base + "?page=3")[0], 404)
        self.assertEqual(http_request(self.base + "?page=0")[0], 400)
        self.assertEqual(http_request(self.base + "?page=x")[0], 400)


def _build_long() -> SharedStore:
    """Codebase ``long``: 60 revisions with ids ``long-001`` ... ``long-060``."""
    shared = SharedStore(campaigns=["lintian-fixes"])
    builder = shared.builder("long")
    builder.start_series()
    try:
        for n in range(1, 61):
            actions = [("modify", ("f", b"%d\n" % n))]
            if n == 1:
                actions = [
                    ("add", ("", None, "directory", None)),
                    ("add", ("f", None, "file", b"1\n")),
                ]
            builder.build_snapshot(
                None,
                actions,
                message=f"change {n}",
                revision_id=b"long-%03d" % n,
                committer=COMMITTER,
                timestamp=1_700_000_000 + n,
                timezone=0,
            )
    finally:
        builder.finish_series()
    shared.push("long", "long/lintian-fixes")
    return shared


class ChromiumTests(BrowseTestCase, ChromiumMixin):
    """The pages in a real headless browser."""

    def setUp(self) -> None:
        super().setUp()
        require(self, CHROMIUM_FEATURE)

    def test_pages_break_no_content_security_policy(self) -> None:
        for url in self.html_pages():
            with self.subTest(url=url):
                self.assertEqual(self.csp_violations(url), [])

    def test_a_violation_would_be_seen(self) -> None:
        """The check above can fail: a page whose stylesheet the policy
        does not allow shows up in Chromium's console."""
        page = browse.page("t", [], "<p>x</p>")

        def app(environ, start_response):
            start_response(
                "200 OK",
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Security-Policy", "default-src 'none'"),
                ],
            )
            return [page]

        server = make_server(app, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        self.assertNotEqual(self.csp_violations(url), [])

    def test_dom(self) -> None:
        url = self.store.public_root + "/bzr/hello/"
        proc = self.chromium(url, "--dump-dom")
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        dom = Page(proc.stdout)
        self.assertIn(
            f"brz branch {self.store.public}/hello/lintian-fixes", dom.commands
        )
        self.assertIn(self.revision_path("r4"), dom.links)
        self.assertIn('Fix <b>bold</b> & "quotes"', dom.all_text)

    def test_revision_page_renders(self) -> None:
        shot = os.path.join(tempfile.mkdtemp(prefix="bjs-shot-"), "page.png")
        self.addCleanup(shutil.rmtree, os.path.dirname(shot), ignore_errors=True)
        url = self.store.public_root + self.revision_path("r4")
        proc = self.chromium(url, f"--screenshot={shot}", "--window-size=1200,900")
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        with open(shot, "rb") as f:
            width, height, pixels = png_pixels(f.read())
        self.assertEqual((width, height), (1200, 900))
        counts = Counter(pixels)
        _, most = counts.most_common(1)[0]
        # text, the header bar and the diff's colours: many colours, and a
        # good part of the page not background
        self.assertGreater(len(counts), 20)
        self.assertGreater(len(pixels) - most, len(pixels) // 20)
        dom = Page(self.chromium(url, "--dump-dom").stdout)
        self.assertIn("=== added file 'notes.txt'", dom.all_text)
