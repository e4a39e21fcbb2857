"""The code browser: trees, files, raw bytes, tarballs, annotate, history.

Every view is read through a running store from a branch pushed with the
real ``brz`` (codebase ``code``, see
:func:`.support.browser.build_code`).
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from typing import ClassVar

from ..store.budget import StreamBudget
from ..web import browse
from ..web.browser import blob, revision, tree
from .support.api_fixtures import COMMITTER
from .support.browser import (
    BIG,
    BINARY,
    MAIN_PY,
    MAIN_PY_2,
    MANY,
    MARKUP_NAME,
    UNICODE_NAME,
    BrowserTestCase,
)
from .support.browser import q as _q
from .support.chromium import ChromiumMixin
from .support.features import CHROMIUM as CHROMIUM_FEATURE
from .support.features import require
from .support.fixtures import StoreTestCase, brz, http_request, wait_for
from .support.pages import Page


class TreeTests(BrowserTestCase):
    def test_branch_page_links_to_the_tree_and_a_tarball(self) -> None:
        page = self.page(self.store.public_root + "/bzr/code/lintian-fixes/")
        tip = _q(self.rev["r4"])
        self.assertIn(f"/bzr/code/+tree/?rev={tip}", page.links)
        self.assertIn(f"/bzr/code/+tarball?rev={tip}", page.links)

    def test_root(self) -> None:
        page = self.page(self.url("tree"))
        text = page.all_text
        names = [n for n in ("many/", "src/", "README.md", MARKUP_NAME) if n in text]
        self.assertEqual(len(names), 4, text)
        self.assertLess(text.index("src/"), text.index("README.md"))  # dirs first
        self.assertIn("link \u2192 src/main.py", text)
        self.assertIn(str(len(BIG)), text)  # sizes
        r2, r3 = _q(self.rev["r2"]), _q(self.rev["r3"])
        self.assertIn(f"/bzr/code/+tree/src?rev={r3}", page.links)
        self.assertIn(f"/bzr/code/+file/big.txt?rev={r3}", page.links)
        # last changed: big.txt in r3, src/ in r2
        r1_page = "/bzr" + browse.history.revision_path("code", self.rev["r1"])
        self.assertIn(r1_page, page.links)  # README.md, src/
        self.assertIn("Big file", text)  # big.txt's last change
        self.assertIn(f"/bzr/code/+log/README.md?rev={r3}", page.links)
        self.assertNotIn(f"/bzr/code/+tree/src?rev={r2}", page.links)

    def test_names_are_escaped(self) -> None:
        _, body = self.fetch(self.url("tree"))
        self.assertNotIn(b"<b>&", body)
        self.assertIn(b"a&lt;b&gt;&amp;&#34;c&#34;.txt", body)

    def test_older_revision(self) -> None:
        text = self.page(self.url("tree", rev="r1")).all_text
        self.assertNotIn("big.txt", text)

    def test_subdirectory_is_paged(self) -> None:
        first = self.page(self.url("tree", "many"))
        files = [link for link in first.links if "/+file/many/" in link]
        self.assertEqual(len(files), tree.TREE_PAGE_SIZE)
        self.assertIn(f"{MANY} entries.", first.all_text)
        second_link = [link for link in first.links if link.endswith("page=2")]
        self.assertEqual(len(second_link), 1)
        second = self.page(self.url("tree", "many", query="&page=2"))
        files = [link for link in second.links if "/+file/many/" in link]
        self.assertEqual(len(files), 1)
        self.assertTrue(files[0].startswith("/bzr/code/+file/many/f0500?"))
        self.fetch(self.url("tree", "many", query="&page=3"), 404)
        self.fetch(self.url("tree", "many", query="&page=0"), 400)
        self.fetch(self.url("tree", "many", query="&page=x"), 400)


class FileTests(BrowserTestCase):
    def test_highlighted_with_line_anchors(self) -> None:
        _, body = self.fetch(self.url("file", "src/main.py"))
        page = Page(body)
        self.assertEqual(page.errors, [])
        self.assertIn(b'<span id="L1">', body)
        self.assertIn(b'<span id="L5">', body)
        self.assertIn("#L4", page.links)
        self.assertIn(b'<span class="k">def</span>', body)
        self.assertIn(b"&lt;script&gt;", body)
        self.assertIn(b"<style>" + browse.render.HIGHLIGHT_STYLE.encode(), body)
        self.assertIn('return "<script>x</script>"', page.all_text)

    def test_binary_is_offered_as_a_download(self) -> None:
        page = self.page(self.url("file", "data.bin"))
        self.assertIn("This is a binary file", page.all_text)
        self.assertIn(f"/bzr/code/+raw/data.bin?rev={_q(self.rev['r3'])}", page.links)

    def test_big_file_is_cut(self) -> None:
        _, body = self.fetch(self.url("file", "big.txt"))
        page = Page(body)
        self.assertIn("The file is longer than what is shown here", page.all_text)
        self.assertIn(b'<span id="L1">', body)
        self.assertNotIn(b'<span id="L%d">' % (blob.VIEW_LINES + 1), body)
        self.assertLess(len(body), 2 * 1024 * 1024)

    def test_raw_bytes(self) -> None:
        for path, content in (
            ("data.bin", BINARY),
            ("big.txt", BIG),
            ("src/main.py", MAIN_PY_2),
        ):
            with self.subTest(path=path):
                headers, body = self.fetch(self.url("raw", path))
                self.assertEqual(body, content)
                self.assertEqual(headers["Content-Length"], str(len(content)))
                self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
                self.assertIn("sandbox", headers["Content-Security-Policy"])
        headers, _ = self.fetch(self.url("raw", "data.bin"))
        self.assertEqual(headers["Content-Type"], "application/octet-stream")
        self.assertEqual(
            headers["Content-Disposition"],
            "attachment; filename=\"data.bin\"; filename*=UTF-8''data.bin",
        )
        headers, body = self.fetch(self.url("raw", UNICODE_NAME))
        self.assertEqual(body, "gr\u00fc\u00dfe\n".encode())
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        self.assertIn("filename*=UTF-8''%C3%BCber.txt", headers["Content-Disposition"])
        _, body = self.fetch(self.url("raw", "src/main.py", rev="r1"))
        self.assertEqual(body, MAIN_PY)

    def test_tarball(self) -> None:
        headers, body = self.fetch(
            f"{self.store.public_root}/bzr/code/+tarball?rev={_q(self.rev['r3'])}"
        )
        self.assertEqual(headers["Content-Type"], "application/gzip")
        self.assertIn("attachment;", headers["Content-Disposition"])
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            names = tar.getnames()
            root = names[0].split("/")[0]
            self.assertTrue(root.startswith("code-"))
            self.assertEqual(tar.extractfile(f"{root}/big.txt").read(), BIG)
            self.assertEqual(tar.extractfile(f"{root}/data.bin").read(), BINARY)
            self.assertEqual(tar.getmember(f"{root}/link").linkname, "src/main.py")
            self.assertEqual(len([n for n in names if "/many/" in n]), MANY)
        self.assertEqual(gzip.decompress(body)[:0], b"")


class AnnotateAndHistoryTests(BrowserTestCase):
    def test_annotate(self) -> None:
        page = self.page(self.url("annotate", "src/main.py"))
        text = page.all_text
        revision = browse.history.revision_path
        self.assertIn("/bzr" + revision("code", self.rev["r1"]), page.links)
        self.assertIn("/bzr" + revision("code", self.rev["r2"]), page.links)
        self.assertIn("#L5", page.links)
        self.assertIn(COMMITTER, text)
        self.assertIn('return "<script>x</script>"', text)

    def test_annotate_of_an_older_revision(self) -> None:
        page = self.page(self.url("annotate", "src/main.py", rev="r1"))
        r2 = "/bzr" + browse.history.revision_path("code", self.rev["r2"])
        self.assertNotIn(r2, page.links)

    def test_file_history(self) -> None:
        page = self.page(self.url("log", "src/main.py"))
        revision = browse.history.revision_path
        links = [link for link in page.links if "/+revision/" in link]
        # the revision it starts from, then the two that changed the file
        self.assertEqual(
            links,
            ["/bzr" + revision("code", self.rev[r]) for r in ("r3", "r2", "r1")],
        )
        self.assertIn("2 versions", page.all_text)
        self.assertIn("Add Thing", page.all_text)
        page = self.page(self.url("log", "README.md"))
        self.assertIn("1 version.", page.all_text)


class RevisionAndCompareTests(BrowserTestCase):
    def revision(self, name: str) -> str:
        return (
            self.store.public_root
            + "/bzr"
            + browse.history.revision_path("code", self.rev[name])
        )

    def test_changed_files_counts_and_raw_diff(self) -> None:
        _, body = self.fetch(self.revision("r2"))
        page = Page(body)
        self.assertEqual(page.errors, [])
        anchor = revision.file_anchor("src/main.py")
        self.assertIn("#" + anchor, page.links)
        self.assertIn(f'id="{anchor}"'.encode(), body)
        self.assertIn("(+4 \u22120)", page.all_text)
        raw = [link for link in page.links if "/diff?" in link]
        self.assertEqual(len(raw), 1)
        _, diff = self.fetch(self.store.public_root + raw[0])
        self.assertIn(b"+class Thing:", diff)

    def test_merge_lists_what_it_merged(self) -> None:
        page = self.page(self.revision("r4"))
        self.assertIn("This merge brought in 1 revision.", page.all_text)
        side = "/bzr" + browse.history.revision_path("code", self.rev["s1"])
        self.assertIn(side, page.links)
        self.assertIn("Side change", page.all_text)

    def test_revno_and_neighbours_on_a_branch(self) -> None:
        branch = self.page(self.store.public_root + "/bzr/code/lintian-fixes/")
        revno = "/bzr/code/lintian-fixes/+revno/"
        self.assertIn(revno + "3", branch.links)
        headers, body = self.fetch(self.store.public_root + revno + "3")
        self.assertEqual(headers["Cache-Control"], "no-cache")
        page = Page(body)
        self.assertIn("Revno on lintian-fixes3", page.all_text)
        self.assertIn("Big file", page.all_text)
        self.assertIn(revno + "2", page.links)
        self.assertIn(revno + "4", page.links)
        tip = self.page(self.store.public_root + revno + "4").all_text
        self.assertIn("none (the tip)", tip)
        self.assertIn("Merge the side branch", tip)
        self.fetch(self.store.public_root + revno + "5", 404)
        self.fetch(self.store.public_root + revno + "0", 404)
        self.fetch(self.store.public_root + "/bzr/code/unknown/+revno/1", 404)
        self.fetch(self.store.public_root + "/bzr/code/lintian-fixes/x/+revno/1", 404)

    def test_compare(self) -> None:
        url = (
            f"{self.store.public_root}/bzr/code/+compare/"
            f"{_q(self.rev['r1'])}..{_q(self.rev['r3'])}"
        )
        page = self.page(url)
        revision = browse.history.revision_path
        links = [link for link in page.links if "/+revision/" in link]
        self.assertEqual(
            links,
            ["/bzr" + revision("code", self.rev[r]) for r in ("r1", "r3", "r3", "r2")],
        )
        self.assertIn("2 revisions; 2 on new's left-hand line.", page.all_text)
        self.assertIn("=== added file 'big.txt'", page.all_text)
        url = (
            f"{self.store.public_root}/bzr/code/+compare/"
            f"{_q(self.rev['r1'])}..{_q(self.rev['r2'])}"
        )
        self.assertIn("+class Thing:", self.page(url).all_text)

    def test_compare_refusals(self) -> None:
        root = f"{self.store.public_root}/bzr/code/+compare/"
        r1 = _q(self.rev["r1"])
        for spec, status in (
            (r1, 400),
            (f"{r1}..", 400),
            (f"..{r1}", 400),
            (f"{r1}..nobody", 404),
            (f"{r1}..{'x' * 2000}", 400),
        ):
            with self.subTest(spec=spec):
                self.fetch(root + spec, status)


class MatrixTests(BrowserTestCase):
    def test_ahead_and_behind_the_base_branch(self) -> None:
        _, body = self.fetch(self.store.public_root + "/bzr/code/")
        page = Page(body)
        self.assertIn("against the base branch, debian/latest.", page.all_text)
        compare = f"/bzr/code/+compare/{_q(self.rev['r2'])}..{_q(self.rev['r4'])}"
        self.assertIn(compare, page.links)
        # r3, r4 and the merged s1; nothing behind
        self.assertRegex(
            body.decode(), r'title="What merging[^"]*">3</a></td><td class="num"[^>]*>0</td>'
        )
        self.assertIn("(base)", page.all_text)
        diff = self.page(self.store.public_root + compare).all_text
        self.assertIn("=== added file 'big.txt'", diff)
        self.assertIn("3 revisions; 2 on new's left-hand line.", diff)


class FeedTests(BrowserTestCase):
    ATOM = "{http://www.w3.org/2005/Atom}"

    def feed(self, path: str):
        import xml.etree.ElementTree as ET

        headers, body = self.fetch(self.store.public_root + path)
        self.assertEqual(headers["Content-Type"], "application/atom+xml; charset=utf-8")
        return ET.fromstring(body)

    def test_branch_feed(self) -> None:
        page = self.page(self.store.public_root + "/bzr/code/lintian-fixes/")
        self.assertIn("/bzr/code/lintian-fixes/+atom", page.links)
        _, body = self.fetch(self.store.public_root + "/bzr/code/lintian-fixes/")
        self.assertIn(
            b'<link rel="alternate" type="application/atom+xml" '
            b'title="code/lintian-fixes: latest revisions" '
            b'href="/bzr/code/lintian-fixes/+atom">',
            body,
        )
        feed = self.feed("/bzr/code/lintian-fixes/+atom")
        titles = [
            e.findtext(self.ATOM + "title") for e in feed.iter(self.ATOM + "entry")
        ]
        self.assertEqual(
            titles,
            ["Merge the side branch", "Big file", "Add Thing", "Initial <b>import</b>"],
        )

    def test_campaign_feed(self) -> None:
        feed = self.feed("/bzr/+atom/lintian-fixes")
        titles = [
            e.findtext(self.ATOM + "title") for e in feed.iter(self.ATOM + "entry")
        ]
        self.assertEqual(titles, ["code: Merge the side branch"])
        self.fetch(self.store.public_root + "/bzr/+atom/unknown", 404)


class JsonTwinTests(BrowserTestCase):
    def json(self, url: str):
        import json

        headers, body = self.fetch(url, Accept="application/json")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(headers["Vary"], "Accept")
        html_headers, _ = self.fetch(url, Accept="text/html")
        self.assertNotEqual(headers["ETag"], html_headers["ETag"])
        return json.loads(body)

    def test_tree(self) -> None:
        data = self.json(self.url("tree", "src"))
        self.assertEqual(data["revision"], self.rev["r3"].decode())
        self.assertEqual(
            data["entries"],
            [
                {
                    "name": "main.py",
                    "kind": "file",
                    "size": len(MAIN_PY_2),
                    "symlink_target": None,
                    "last_changed": self.rev["r2"].decode(),
                }
            ],
        )

    def test_file_history_and_annotate(self) -> None:
        data = self.json(self.url("log", "src/main.py"))
        self.assertEqual(
            data["revisions"], [self.rev["r2"].decode(), self.rev["r1"].decode()]
        )
        data = self.json(self.url("annotate", "src/main.py"))
        self.assertEqual([line["revno"] for line in data["lines"]], [1, 1, 2, 2, 2, 2])
        self.assertEqual(data["lines"][0]["text"], "def main():\n")

    def test_revision(self) -> None:
        revision = browse.history.revision_path
        data = self.json(
            self.store.public_root + "/bzr" + revision("code", self.rev["r4"])
        )
        self.assertEqual(
            data["parents"], [self.rev["r3"].decode(), self.rev["s1"].decode()]
        )
        self.assertEqual(data["merged"], [self.rev["s1"].decode()])
        self.assertEqual(
            data["changes"],
            [
                {
                    "change": "modified",
                    "path": "README.md",
                    "old_path": None,
                    "added": 1,
                    "removed": 0,
                    "not_counted": None,
                }
            ],
        )
        self.assertEqual(data["committer"], COMMITTER)

    def test_codebase_and_branch(self) -> None:
        data = self.json(self.store.public_root + "/bzr/code/")
        self.assertEqual(data["base"], "debian/latest")
        (branch,) = [b for b in data["branches"] if b["name"] == "lintian-fixes"]
        self.assertEqual((branch["ahead"], branch["behind"]), (3, 0))
        self.assertEqual(branch["merge_base"], self.rev["r2"].decode())
        data = self.json(self.store.public_root + "/bzr/code/lintian-fixes/")
        self.assertEqual(data["revno"], 4)
        self.assertEqual([r["revno"] for r in data["revisions"]], [4, 3, 2, 1])


class CachingTests(BrowserTestCase):
    def test_pages_by_revision_are_immutable(self) -> None:
        for url in (
            self.url("tree"),
            self.url("file", "src/main.py"),
            self.url("raw", "src/main.py"),
            self.url("annotate", "src/main.py"),
            self.url("log", "src/main.py"),
            self.store.public_root
            + "/bzr"
            + browse.history.revision_path("code", self.rev["r2"]),
        ):
            with self.subTest(url=url):
                headers, body = self.fetch(url)
                self.assertEqual(
                    headers["Cache-Control"], "public, max-age=31536000, immutable"
                )
                tag = headers["ETag"]
                code, again, body = http_request(url, headers={"If-None-Match": tag})
                self.assertEqual((code, body), (304, b""))
                self.assertEqual(again["ETag"], tag)
                code, _, _ = http_request(url, headers={"If-None-Match": '"other"'})
                self.assertEqual(code, 200)

    def test_branch_pages_are_revalidated(self) -> None:
        for url in (
            self.store.public_root + "/bzr/code/lintian-fixes/",
            self.store.public_root + "/bzr/code/",
        ):
            with self.subTest(url=url):
                headers, _ = self.fetch(url)
                self.assertEqual(headers["Cache-Control"], "no-cache")
                code, _, body = http_request(
                    url, headers={"If-None-Match": headers["ETag"]}
                )
                self.assertEqual((code, body), (304, b""))

    def test_immutable_pages_are_kept_in_the_process(self) -> None:
        from ..web.browser import caching

        keys = lambda: {tag for _, tag in caching.PAGES._pages}
        for url in (
            self.url("file", "src/main.py"),
            self.store.public_root
            + "/bzr"
            + browse.history.revision_path("code", self.rev["r2"]),
        ):
            with self.subTest(url=url):
                headers, first = self.fetch(url)
                self.assertIn(headers["ETag"], keys())
                again, second = self.fetch(url)
                self.assertEqual((again["ETag"], second), (headers["ETag"], first))
                self.assertEqual(again["Content-Type"], headers["Content-Type"])
                self.assertEqual(
                    again["Content-Security-Policy"],
                    headers["Content-Security-Policy"],
                )
        url = self.store.public_root + "/bzr/code/lintian-fixes/"
        headers, first = self.fetch(url)
        self.assertIn(headers["ETag"], keys())  # by tip, tags, page, host
        self.assertEqual(headers["Cache-Control"], "no-cache")
        _, second = self.fetch(url)
        self.assertEqual(first, second)

    def test_the_page_cache_is_bounded(self) -> None:
        from ..web.browser import caching

        class Req:
            environ: ClassVar[dict] = {}

        cache = caching.PageCache(max_bytes=10, max_page=6)
        for tag, body in (("a", b"12345"), ("b", b"12345"), ("c", b"1234567")):
            cache.put(Req, [("ETag", tag), caching.IMMUTABLE], body)
        self.assertIsNotNone(cache.get(Req, "a"))
        self.assertIsNotNone(cache.get(Req, "b"))
        self.assertIsNone(cache.get(Req, "c"))  # larger than a page may be
        cache.put(Req, [("ETag", "d"), caching.IMMUTABLE], b"1")
        self.assertIsNone(cache.get(Req, "a"))  # the least recently used
        cache.put(Req, [caching.IMMUTABLE], b"1")  # no ETag: not kept
        self.assertEqual(len(cache._pages), 2)

    def test_errors_are_not_cached(self) -> None:
        headers, _ = self.fetch(self.url("tree", "nothing"), 404)
        self.assertNotIn("ETag", headers)


class HostileInputTests(BrowserTestCase):
    """What a client names is checked: clear refusals, nothing leaked."""

    def test_refusals(self) -> None:
        root = self.store.public_root + "/bzr/code"
        tip = _q(self.rev["r3"])
        cases = [
            (f"{root}/+tree/", 400),  # no revision
            (f"{root}/+tree/?rev=", 400),
            (f"{root}/+tree/?rev={'x' * 2000}", 400),
            (f"{root}/+tree/?rev=null:", 404),
            (f"{root}/+tree/?rev=nobody%40example.com-1", 404),
            (f"{root}/+tree/nothing?rev={tip}", 404),
            (f"{root}/+tree/README.md?rev={tip}", 404),  # not a directory
            (f"{root}/+file/src?rev={tip}", 404),  # not a file
            (f"{root}/+file/link?rev={tip}", 404),  # a symlink: not followed
            (f"{root}/+file/%FF?rev={tip}", 400),
            (f"{root}/+raw/{'a/' * 3000}?rev={tip}", 400),
            (f"{root}/+annotate/nothing?rev={tip}", 404),
            (f"{root}/+log/nothing?rev={tip}", 404),
            (f"{root}/+log/README.md?rev={tip}&page=2", 404),
            (f"{root}/+log/README.md?rev={tip}&page=-1", 400),
            (f"{root}/+tarball?rev=nobody", 404),
            (f"{self.store.public_root}/bzr/nothing/+tree/?rev={tip}", 404),
            (f"{self.store.public_root}/bzr/Bad_Name/+tree/?rev={tip}", 404),
        ]
        for url, status in cases:
            with self.subTest(url=url):
                headers, _ = self.fetch(url, status)
                self.assertTrue(headers["Content-Type"].startswith("text/plain"))
                page = self.page(url, status)  # a browser's: a page, a way back
                self.assertIn("/bzr/", page.links)

    def test_escapes_are_refused_before_the_views(self) -> None:
        root = self.store.public_root + "/bzr/code"
        tip = _q(self.rev["r3"])
        for url in (
            f"{root}/+file/src/../README.md?rev={tip}",
            f"{root}/+file/src/%2E%2E/README.md?rev={tip}",
            f"{root}/+file/src//main.py?rev={tip}",
            f"{root}/+file/a%00b?rev={tip}",
            f"{root}/+raw/src/%2e%2e/%2e%2e/%2e%2e/etc/passwd?rev={tip}",
        ):
            with self.subTest(url=url):
                self.fetch(url, 400)

    def test_html_refusal_escapes_what_the_client_named(self) -> None:
        root = self.store.public_root + "/bzr/code"
        _, body = self.fetch(
            f"{root}/+tree/%3Cscript%3E?rev={_q(self.rev['r3'])}",
            404,
            Accept="text/html",
        )
        self.assertNotIn(b"<script>", body)
        self.assertIn(b"&lt;script&gt;", body)


class BudgetTests(StoreTestCase):
    """Tarballs, and large files, take a slot of the stream budget."""

    def setUp(self) -> None:
        super().setUp()
        self.budget = StreamBudget(slots=1, wait=0.0)
        self.store = self.start_store(
            campaigns=["lintian-fixes"], stream_budget=self.budget
        )
        work = self.path("work")
        env = dict(os.environ, BRZ_EMAIL=COMMITTER, HOME=self.path("."))
        brz("init", "-q", work, env=env)
        with open(f"{work}/small", "wb") as f:
            f.write(b"small\n")
        with open(f"{work}/large", "wb") as f:
            f.write(b"x" * (blob.HEAVY_BYTES + 1))
        brz("add", "-q", work, env=env)
        brz("commit", "-q", "-m", "files", work, env=env)
        url = f"bzr+{self.store.admin}/budget/lintian-fixes"
        brz("push", "-q", "-d", work, url, env=env)
        out = brz("revision-info", "-d", work, env=env).stdout
        self.revid = _q(out.split()[1])

    def get(self, view: str) -> tuple[int, dict, bytes]:
        return http_request(
            f"{self.store.public_root}/bzr/budget/{view}?rev={self.revid}"
        )

    def test_no_slot_free_is_a_503_with_retry_after(self) -> None:
        self.assertTrue(self.budget.acquire(writer=False))
        self.addCleanup(self.budget.release, False)
        for view in ("+tarball", "+raw/large", "+file/large", "+annotate/small"):
            with self.subTest(view=view):
                status, headers, body = self.get(view)
                self.assertEqual(status, 503, body)
                self.assertEqual(headers["Retry-After"], "10")
        status, _, body = self.get("+raw/small")  # small files need no slot
        self.assertEqual((status, body), (200, b"small\n"))

    def test_slots_are_given_back(self) -> None:
        for view in ("+tarball", "+raw/large", "+file/large", "+annotate/small"):
            with self.subTest(view=view):
                status, _, body = self.get(view)
                self.assertEqual(status, 200, body[:300])
                # (given back when the server closes the body, after the
                # last byte went out)
                wait_for(lambda: self.budget.in_use == 0, "the slot given back")


class BrowserChromiumTests(BrowserTestCase, ChromiumMixin):
    """The browser's pages in headless Chromium: no CSP violation."""

    def setUp(self) -> None:
        super().setUp()
        require(self, CHROMIUM_FEATURE)


    def test_pages_break_no_content_security_policy(self) -> None:
        for url in (
            self.url("tree"),
            self.url("file", "src/main.py"),
            self.url("annotate", "src/main.py"),
            self.url("log", "src/main.py"),
            self.url("tree", "nothing"),  # an error page
            self.store.public_root + "/bzr/code/",
            self.store.public_root
            + "/bzr"
            + browse.history.revision_path("code", self.rev["r4"]),
            (
                f"{self.store.public_root}/bzr/code/+compare/"
                f"{_q(self.rev['r1'])}..{_q(self.rev['r2'])}"
            ),
            f"{self.store.public_root}/bzr/code/+children/{_q(self.rev['r2'])}",
        ):
            with self.subTest(url=url):
                self.assertEqual(self.csp_violations(url), [])


class CodebaseListPagingTests(StoreTestCase):
    """The codebase list is paged: thousands are never one page."""

    def test_pages(self) -> None:
        from ..store.storage import Storage

        storage = Storage(self.storage_dir)
        count = browse.CODEBASES_PAGE_SIZE + 1
        for i in range(count):
            storage.ensure_repository(f"cb{i:04d}")
        store = self.start_store(campaigns=["lintian-fixes"])
        root = store.public_root + "/bzr/"

        def names(query: str = "") -> tuple[list[str], Page]:
            status, _, body = http_request(
                root + query, headers={"Accept": "text/html"}
            )
            self.assertEqual(status, 200, body[:300])
            page = Page(body)
            return [link for link in page.links if link.startswith("/bzr/cb")], page

        first, page = names()
        self.assertEqual(len(first), browse.CODEBASES_PAGE_SIZE)
        self.assertIn(f"{count} codebases.", page.all_text)
        self.assertIn("?page=2", page.links)
        second, page = names("?page=2")
        self.assertEqual(second, [f"/bzr/cb{count - 1:04d}/"])
        self.assertIn("?page=1", page.links)
        html = {"Accept": "text/html"}
        self.assertEqual(http_request(root + "?page=3", headers=html)[0], 404)
        self.assertEqual(http_request(root + "?page=0", headers=html)[0], 400)
        # the plain and JSON lists stay whole
        _, _, body = http_request(root, headers={"Accept": "text/plain"})
        self.assertEqual(len(body.splitlines()), count)
