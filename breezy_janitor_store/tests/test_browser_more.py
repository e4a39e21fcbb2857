"""More of the code browser: JSON twins of the file and compare pages,
each changed file's lines added and removed, the newer revisions of a
revision (``+children``), narrow screens and text browsers.

Pages are read through a running store from branches pushed with the real
``brz`` (codebase ``code``, see :func:`.support.browser.build_code`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse

from breezy.bzr.inventory import Inventory
from breezy.controldir import ControlDir
from breezy.revision import Revision

from ..web import browse
from ..web.browser import blob, children, diffs
from .support.api_fixtures import COMMITTER
from .support.browser import (
    LONG_PATH,
    MAIN_PY,
    MAIN_PY_2,
    MARKUP_NAME,
    WIDE_REVIDS,
    BrowserTestCase,
    code_store,
    q,
    wide_store,
)
from .support.chromium import ChromiumMixin
from .support.features import CHROMIUM as CHROMIUM_FEATURE
from .support.features import W3M, require
from .support.fixtures import StoreTestCase, brz, http_request
from .support.pages import Page


def page_kinds(root: str) -> list[tuple[str, str]]:
    """``(kind, URL)`` of every kind of page, of codebase ``wide``."""
    w1, w2 = (q(WIDE_REVIDS[n]) for n in ("w1", "w2"))
    path = urllib.parse.quote(LONG_PATH)
    return [
        ("home", root + "/"),
        ("codebase list", root + "/bzr/"),
        ("codebase matrix", root + "/bzr/wide/"),
        ("branch", root + "/bzr/wide/lintian-fixes/"),
        ("revision", root + "/bzr" + browse.history.revision_path("wide", WIDE_REVIDS["w2"])),
        ("compare", f"{root}/bzr/wide/+compare/{w1}..{w2}"),
        ("tree", f"{root}/bzr/wide/+tree/?rev={w2}"),
        ("directory", f"{root}/bzr/wide/+tree/{path.split('/')[0]}?rev={w2}"),
        ("file", f"{root}/bzr/wide/+file/{path}?rev={w2}"),
        ("annotate", f"{root}/bzr/wide/+annotate/{path}?rev={w2}"),
        ("file history", f"{root}/bzr/wide/+log/{path}?rev={w2}"),
        ("children", root + "/bzr" + children.children_path("wide", WIDE_REVIDS["w1"])),
        ("error", f"{root}/bzr/wide/+file/{path}x?rev={w2}"),  # a 404's page
    ]


class JsonTwinMixin(BrowserTestCase):
    def json(self, url: str):
        headers, body = self.fetch(url, Accept="application/json")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(headers["Vary"], "Accept")
        html_headers, _ = self.fetch(url, Accept="text/html")
        self.assertNotEqual(headers["ETag"], html_headers["ETag"])
        return json.loads(body)

    def compare_url(self, old: str, new: str) -> str:
        return (
            f"{self.store.public_root}/bzr/code/+compare/"
            f"{q(self.rev[old])}..{q(self.rev[new])}"
        )

    def revision_url(self, name: str) -> str:
        return (
            self.store.public_root
            + "/bzr"
            + browse.history.revision_path("code", self.rev[name])
        )


class FileAndCompareJsonTests(JsonTwinMixin):
    def test_file(self) -> None:
        data = self.json(self.url("file", "src/main.py"))
        self.assertEqual(
            data,
            {
                "codebase": "code",
                "revision": self.rev["r3"].decode(),
                "path": "src/main.py",
                "size": len(MAIN_PY_2),
                "binary": False,
                "cut": False,
                "lines": MAIN_PY_2.decode().split("\n")[:-1],
            },
        )
        data = self.json(self.url("file", "src/main.py", rev="r1"))
        self.assertEqual(data["lines"][1], '    return "<script>x</script>"')
        data = self.json(self.url("file", "data.bin"))
        self.assertEqual((data["binary"], data["lines"]), (True, []))
        data = self.json(self.url("file", "big.txt"))
        self.assertTrue(data["cut"])
        self.assertEqual(len(data["lines"]), blob.VIEW_LINES)
        self.assertEqual(data["lines"][0], "line 0 <x>")

    def test_compare(self) -> None:
        data = self.json(self.compare_url("r1", "r3"))
        self.assertEqual(data["old"], self.rev["r1"].decode())
        self.assertEqual(data["new"], self.rev["r3"].decode())
        self.assertEqual(
            data["revisions"], [self.rev["r3"].decode(), self.rev["r2"].decode()]
        )
        self.assertEqual((data["revision_count"], data["line_count"]), (2, 2))
        changes = {c["path"]: c for c in data["changes"]}
        self.assertEqual(set(changes), {"big.txt", "src/main.py"})
        self.assertEqual(changes["big.txt"]["change"], "added")
        # big.txt's diff is more than a page shows: counted neither there nor here
        self.assertEqual(
            (changes["big.txt"]["added"], changes["big.txt"]["not_counted"]),
            (None, diffs.TOO_LONG),
        )
        data = self.json(self.compare_url("r1", "r2"))
        (change,) = data["changes"]
        self.assertEqual(
            change,
            {
                "change": "modified",
                "path": "src/main.py",
                "old_path": None,
                "added": 4,
                "removed": 0,
                "not_counted": None,
            },
        )


class ChangedFileCountTests(JsonTwinMixin):
    """Each changed file's counts are in the list above the diff."""

    def row(self, body: bytes, path: str) -> str:
        """The markup of the list's row of ``path``."""
        anchor = diffs.file_anchor(path)
        m = re.search(rf'<tr><td>[^<]*</td><td><a href="#{anchor}">.*?</tr>', body.decode())
        self.assertIsNotNone(m, path)
        self.assertLess(m.start(), body.decode().index(f'id="{anchor}"'))
        return Page(m.group(0).encode()).all_text

    def test_revision_page_lists_counts_before_the_diff(self) -> None:
        _, body = self.fetch(self.revision_url("r2"))
        self.assertIn("+4 \u22120", self.row(body, "src/main.py"))

    def test_skipped_files_say_why(self) -> None:
        _, body = self.fetch(self.revision_url("r1"))
        self.assertIn(diffs.BINARY, self.row(body, "data.bin"))
        self.assertIn("+1 \u22120", self.row(body, MARKUP_NAME))
        _, body = self.fetch(self.revision_url("r3"))
        self.assertIn(diffs.TOO_LONG, self.row(body, "big.txt"))

    def test_each_file_has_one_anchor_on_its_header(self) -> None:
        # (a symlink's "=== target is 'src/main.py'" line is no header)
        _, body = self.fetch(self.revision_url("r1"))
        anchor = f'id="{diffs.file_anchor("src/main.py")}"'.encode()
        self.assertEqual(body.count(anchor), 1)
        self.assertIn(anchor + b">=== added file &#x27;src/main.py&#x27;", body)

    def test_headers_with_changed_properties_name_their_file(self) -> None:
        for line, path in (
            (b"=== modified file 'a b' (properties changed: -x to +x)", "a b"),
            (b"=== renamed file 'a' => 'b' (properties changed: +x to -x)", "b"),
            (b"=== removed directory 'd'", "d"),
            (b"=== target is 'src/main.py'", None),
            (b"=== diff truncated: it is longer than 10 bytes", None),
        ):
            with self.subTest(line=line):
                self.assertEqual(diffs._diff_file(line), path)

    def test_compare_page_lists_counts(self) -> None:
        _, body = self.fetch(self.compare_url("r1", "r2"))
        self.assertIn("+4 \u22120", self.row(body, "src/main.py"))

    def test_revision_json_counts(self) -> None:
        data = self.json(self.revision_url("r1"))
        changes = {c["path"]: c for c in data["changes"]}
        self.assertEqual(
            (changes["data.bin"]["added"], changes["data.bin"]["not_counted"]),
            (None, diffs.BINARY),
        )
        self.assertEqual(
            (changes["src/main.py"]["added"], changes["src/main.py"]["removed"]),
            (len(MAIN_PY.splitlines()), 0),
        )
        self.assertIsNone(changes["many"]["added"])  # a directory: no lines


class ChildrenTests(JsonTwinMixin):
    def children_url(self, name: str) -> str:
        return (
            f"{self.store.public_root}/bzr"
            f"{children.children_path('code', self.rev[name])}"
        )

    def test_revision_page_links_to_its_children(self) -> None:
        headers, body = self.fetch(self.revision_url("r2"))
        self.assertIn("immutable", headers["Cache-Control"])
        page = Page(body)
        path = children.children_path("code", self.rev["r2"])
        self.assertIn("/bzr" + path, page.links)
        self.assertNotIn("Newer on", page.all_text)

    def test_children_on_each_branch(self) -> None:
        headers, body = self.fetch(self.children_url("r2"), Accept="text/html")
        self.assertEqual(headers["Cache-Control"], "no-cache")
        page = Page(body)
        self.assertEqual(page.errors, [])
        # lintian-fixes has r3 after r2; debian/latest is at r2
        self.assertIn("/bzr/code/lintian-fixes/+revno/3", page.links)
        self.assertIn("/bzr/code/lintian-fixes/+revno/2", page.links)
        self.assertIn("/bzr/code/debian/latest/+revno/2", page.links)
        self.assertIn("none (the tip)", page.all_text)
        self.assertIn("/bzr" + browse.history.revision_path("code", self.rev["r3"]), page.links)
        self.assertIn("Big file", page.all_text)
        code, _, again = http_request(
            self.children_url("r2"), headers={"If-None-Match": headers["ETag"]}
        )
        self.assertEqual((code, again), (304, b""))
        data = self.json(self.children_url("r2"))
        self.assertEqual(data["children"], [self.rev["r3"].decode()])
        by_name = {b["name"]: b for b in data["branches"]}
        self.assertEqual(
            by_name["lintian-fixes"],
            {
                "name": "lintian-fixes",
                "revno": 2,
                "next": self.rev["r3"].decode(),
                "next_revno": 3,
            },
        )
        self.assertIsNone(by_name["debian/latest"]["next"])
        self.assertFalse(data["more_branches"])

    def test_revision_on_no_mainline(self) -> None:
        data = self.json(self.children_url("s1"))
        self.assertEqual((data["branches"], data["children"]), ([], []))
        text = self.page(self.children_url("s1")).all_text
        self.assertIn("No branch looked at has this revision", text)

    def test_branches_looked_at_are_bounded(self) -> None:
        old = children.MAX_BRANCHES
        children.MAX_BRANCHES = 1
        self.addCleanup(setattr, children, "MAX_BRANCHES", old)
        data = self.json(self.children_url("r2"))
        self.assertEqual(data["branches_looked_at"], 1)
        self.assertTrue(data["more_branches"])
        self.assertIn("the first 1 branches were looked at", self.page(self.children_url("r2")).all_text)

    def test_refusals(self) -> None:
        root = self.store.public_root + "/bzr/code/+children/"
        for target, status in (
            ("nobody%40example.com-1", 404),
            ("null:", 404),
            ("x" * 2000, 400),
            ("%3Cscript%3E", 404),
        ):
            with self.subTest(target=target):
                headers, _ = self.fetch(root + target, status)
                self.assertTrue(headers["Content-Type"].startswith("text/plain"))
                page = self.page(root + target, status)  # a browser's
                self.assertNotIn("<script>", page.links)
        r2 = q(self.rev["r2"])
        self.fetch(f"{self.store.public_root}/bzr/nothing/+children/{r2}", 404)
        self.fetch(f"{self.store.public_root}/bzr/Bad_Name/+children/{r2}", 404)


class ChildrenAfterAPushTests(StoreTestCase):
    """A push shows on the children page (it is revalidated)."""

    def test_a_push_adds_a_child(self) -> None:
        store = self.start_store(campaigns=["lintian-fixes"])
        work = self.path("work")
        env = dict(os.environ, BRZ_EMAIL=COMMITTER, HOME=self.path("."))
        brz("init", "-q", work, env=env)
        self.commit(work)
        url = f"bzr+{store.admin}/pushed/lintian-fixes"
        brz("push", "-q", "-d", work, url, env=env)
        first = brz("revision-info", "-d", work, env=env).stdout.split()[1].decode()
        target = f"{store.public_root}/bzr/pushed/+children/{q(first.encode())}"
        json_accept = {"Accept": "application/json"}
        code, headers, body = http_request(target, headers=json_accept)
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body)["children"], [])
        self.commit(work)
        brz("push", "-q", "-d", work, url, env=env)
        second = brz("revision-info", "-d", work, env=env).stdout.split()[1].decode()
        code, _, _ = http_request(
            target, headers={**json_accept, "If-None-Match": headers["ETag"]}
        )
        self.assertEqual(code, 200)
        code, _, body = http_request(target, headers=json_accept)
        self.assertEqual(json.loads(body)["children"], [second])


class PhoneWidthTests(BrowserTestCase, ChromiumMixin):
    """Every kind of page fits a phone's width (375 px), even with names
    that give no place to break a line: wide tables and diffs scroll inside
    their own box, long names wrap."""

    def setUp(self) -> None:
        super().setUp()
        require(self, CHROMIUM_FEATURE)
        self.shared = wide_store()
        self.store = self.shared.store

    def test_no_page_is_wider_than_the_phone(self) -> None:
        for kind, url in page_kinds(self.store.public_root):
            with self.subTest(kind=kind):
                status = 404 if kind == "error" else 200
                _, body = self.fetch(url, status, Accept="text/html")
                width, viewport = self.layout_width(body, 375)
                self.assertEqual(viewport, 375)
                self.assertLessEqual(width, viewport, url)

    def test_the_campaign_matrix_needs_no_sideways_scrolling(self) -> None:
        """At phone width each branch of the matrix is a block of labelled
        lines, not a table row wider than the screen."""
        for store in (code_store().store, self.store):
            with self.subTest(store=store):
                codebase = "code" if store is not self.store else "wide"
                url = f"{store.public_root}/bzr/{codebase}/"
                _, body = self.fetch(url, 200, Accept="text/html")
                width, viewport = self.layout_width(body, 375, "table.matrix")
                self.assertLessEqual(width, viewport, url)

    def test_the_policy_allows_the_stylesheet_as_it_is_on_disk(self) -> None:
        from importlib import resources

        css = resources.files("breezy_janitor_store.web") / "templates" / "style.css"
        digest = hashlib.sha256(css.read_bytes()).digest()
        headers, body = self.fetch(self.store.public_root + "/bzr/", Accept="text/html")
        allowed = "'sha256-" + base64.b64encode(digest).decode() + "'"
        self.assertIn(allowed, headers["Content-Security-Policy"])
        self.assertIn(b"<style>" + css.read_bytes() + b"</style>", body)


class TextBrowserTests(JsonTwinMixin):
    """Every kind of page read in a text browser (``w3m -dump``): its
    heading, its tables' content, no markup or stylesheet shown as text."""

    def setUp(self) -> None:
        super().setUp()
        require(self, W3M)

    def dump(self, url: str) -> str:
        home = tempfile.mkdtemp(prefix="bjs-w3m-")
        self.addCleanup(shutil.rmtree, home, ignore_errors=True)
        proc = subprocess.run(
            [W3M.feature.path, "-dump", "-cols", "120", url],
            capture_output=True,
            timeout=60,
            check=False,
            env={"HOME": home, "LANG": "C.UTF-8", "PATH": os.environ["PATH"]},
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        text = proc.stdout.decode("utf-8")
        for raw in ("font-family", "overflow", "<span", "<td", "<a ", "&lt;", "&#"):
            self.assertNotIn(raw, text, url)
        return text

    def assertLine(self, text: str, *parts: str) -> None:
        """Some line of ``text`` holds each of ``parts``, in order."""
        pattern = ".*".join(re.escape(p) for p in parts)
        self.assertRegex(text, re.compile(pattern), text[:3000])

    def test_pages(self) -> None:
        root = self.store.public_root
        r3 = self.rev["r3"].decode()
        cases = [
            ("home", root + "/", ["Bazaar branches of the Debian Janitor"]),
            ("codebase list", root + "/bzr/", ["Codebases", "code"]),
            (
                "codebase matrix",
                root + "/bzr/code/",
                [("lintian-fixes", "main", "4"), ("(base)",), ("Ahead", "Behind")],
            ),
            (
                "branch",
                root + "/bzr/code/lintian-fixes/",
                [("code/lintian-fixes",), ("3", "Big", r3)],
            ),
            (
                "revision",
                self.revision_url("r2"),
                [
                    ("Add Thing",),
                    ("Home / bzr / code / revision",),
                    ("modified", "src/main.py", "+4 \u22120"),
                    ("+class Thing:",),
                    ("Newer revisions",),
                ],
            ),
            ("compare", self.compare_url("r1", "r3"), [("added", "big.txt")]),
            (
                "tree",
                self.url("tree"),
                [("Files of code",), ("src/",), ("README.md", "21"), ("link \u2192",)],
            ),
            (
                "file",
                self.url("file", "src/main.py"),
                [("1 def main():",), ('2     return "<script>x</script>"',)],
            ),
            (
                "annotate",
                self.url("annotate", "src/main.py"),
                [
                    ("Annotate src/main.py",),
                    ("1", COMMITTER, "1", "def main():"),
                ],
            ),
            (
                "file history",
                self.url("log", "src/main.py"),
                [("History of src/main.py",), ("Add Thing",)],
            ),
            (
                "children",
                root + "/bzr" + children.children_path("code", self.rev["r2"]),
                [("Newer revisions",), ("lintian-fixes", "2", "3", r3)],
            ),
        ]
        for kind, url, expected in cases:
            with self.subTest(kind=kind):
                text = self.dump(url)
                for parts in expected:
                    self.assertLine(text, *parts) if isinstance(
                        parts, tuple
                    ) else self.assertIn(parts, text)

    def test_annotate_keeps_indentation(self) -> None:
        """The second line of src/main.py is indented by four spaces more
        than the first, and so it shows."""
        text = self.dump(self.url("annotate", "src/main.py"))
        first = next(line for line in text.splitlines() if "def main():" in line)
        second = next(line for line in text.splitlines() if "return " in line)
        self.assertEqual(second.index("return") - first.index("def main"), 4, text)


#: Revisions of the shared line of :class:`SharedHistoryChildrenTests`.
LINE = 300
#: Its branches: the tip of each, as a distance below the line's top.
BELOW_TOP = {("c0",): 0, ("c0", "r1"): 1, ("c1",): 2, ("c1", "r1"): 5, ("c2",): 290}


class SharedHistoryChildrenTests(StoreTestCase):
    """``+children`` on branches sharing one long line of history."""

    def setUp(self) -> None:
        super().setUp()
        root = os.path.join(self.storage_dir, "line")
        repo = ControlDir.create(root).create_repository(shared=True)
        with repo.lock_write():
            repo.start_write_group()
            parent = b"null:"
            for n in range(LINE):
                revid = b"line-%d" % n
                inv = self.first_inventory(repo, revid) if n == 0 else None
                if inv is not None:
                    repo.texts.add_lines((b"root-id", revid), [], [])
                    sha1 = repo.add_inventory(revid, inv, [])
                else:
                    sha1 = repo.add_inventory_by_delta(parent, [], revid, [parent])[0]
                repo.add_revision(
                    revid,
                    Revision(
                        revid,
                        parent_ids=[] if n == 0 else [parent],
                        committer=COMMITTER,
                        message=f"revision {n}",
                        timestamp=1700000000 + n,
                        timezone=0,
                        inventory_sha1=sha1,
                        properties={},
                    ),
                )
                parent = revid
            repo.commit_write_group()
        for segments, below in BELOW_TOP.items():
            path = os.path.join(root, *segments)
            os.makedirs(path, exist_ok=True)
            branch = ControlDir.create(path).create_branch()
            branch.set_last_revision_info(LINE - below, b"line-%d" % (LINE - 1 - below))
        self.store = self.start_store(campaigns=["c0", "c1", "c2"])

    def first_inventory(self, repo, revid: bytes) -> Inventory:
        inv = Inventory(revision_id=revid, root_id=b"root-id")
        inv.root.revision = revid
        return inv

    def children(self, n: int) -> dict:
        url = self.store.public + children.children_path("line", b"line-%d" % n)
        code, _, body = http_request(url, headers={"Accept": "application/json"})
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def test_each_branch_once_over_the_shared_line(self) -> None:
        """Each branch holding the revision has it at the same revno, with
        the next revision of its own line; the shared history is walked
        once, not one mainline per branch (those were also kept in the
        mainline cache: a codebase of many branches of a long history
        cost seconds of CPU a request)."""
        cached = len(browse._mainlines)
        data = self.children(LINE - 4)
        by_name = {b["name"]: b for b in data["branches"]}
        self.assertEqual(sorted(by_name), ["c0", "c0/r1", "c1"])
        for name in ("c0", "c0/r1", "c1"):
            self.assertEqual(by_name[name]["revno"], LINE - 3)
            self.assertEqual(by_name[name]["next"], f"line-{LINE - 3}")
        self.assertEqual(data["children"], [f"line-{LINE - 3}"])
        data = self.children(LINE - 3)  # the tip of c1
        by_name = {b["name"]: b for b in data["branches"]}
        self.assertIsNone(by_name["c1"]["next"])
        self.assertEqual(by_name["c0"]["next"], f"line-{LINE - 2}")
        data = self.children(5)
        self.assertEqual(len(data["branches"]), len(BELOW_TOP))
        self.assertEqual({b["revno"] for b in data["branches"]}, {6})
        self.assertEqual(data["children"], ["line-6"])
        self.assertEqual(len(browse._mainlines), cached)


class DashLineCountTests(StoreTestCase):
    def test_lines_starting_with_two_dashes_or_pluses_are_counted(self) -> None:
        """In a hunk, a removed ``-- x`` is ``--- x`` and an added ``++ x``
        is ``+++ x``: lines, not a file's header (they were left out of the
        counts, and shown as headers)."""
        store = self.start_store(campaigns=["c0"])
        work = self.path("work")
        brz("init", "-q", work)
        path = os.path.join(work, "q.sql")
        for content in (b"keep\n-- old comment\n++i;\n", b"keep\n-- new\n--i;\n++j;\n"):
            with open(path, "wb") as f:
                f.write(content)
            brz("add", "-q", cwd=work)
            brz("commit", "-q", "-m", "change", cwd=work)
        brz("push", "-q", self.smart_url(store.admin, "dashes/c0"), cwd=work)
        tip = brz("revision-info", "-d", work).stdout.split()[1]
        url = store.public + browse.history.revision_path("dashes", tip)
        code, _, body = http_request(url, headers={"Accept": "application/json"})
        self.assertEqual(code, 200, body)
        (change,) = json.loads(body)["changes"]
        self.assertEqual((change["added"], change["removed"]), (3, 2))
        _, _, page = http_request(url, headers={"Accept": "text/html"})
        self.assertIn(b'<span class="del">--- old comment</span>', page)
        self.assertIn(b'<span class="add">+++j;</span>', page)
        self.assertIn(b"(+3 \xe2\x88\x922)", page)


class GhostTests(StoreTestCase):
    """Answers addressed by revision ids that show a ghost (a parent not in
    the repository) change once it arrives: never immutable, never a 304
    with what was sent before it arrived."""

    def test_answers_showing_a_ghost_are_revalidated(self) -> None:
        store = self.start_store(campaigns=["c0", "c1"])
        first = self.path("first")
        tree = ControlDir.create_standalone_workingtree(first)
        with open(os.path.join(first, "f"), "w") as f:
            f.write("one\n")
        tree.add(["f"])
        tree.commit("first", rev_id=b"ghost-1")
        second = self.path("second")
        tree = ControlDir.create_standalone_workingtree(second)
        tree.set_parent_ids([b"ghost-1"], allow_leftmost_as_ghost=True)
        with open(os.path.join(second, "g"), "w") as f:
            f.write("two\n")
        tree.add(["g"])
        tree.commit("second", rev_id=b"child-2")
        brz("push", "-q", self.smart_url(store.admin, "ghosts/c0"), cwd=second)
        root = store.public
        urls = [
            root + browse.history.revision_path("ghosts", b"child-2"),
            root + "/ghosts/+compare/null:..child-2",
            root + "/ghosts/revision-info?old=null:&new=child-2",
        ]
        before = {}
        for url in urls:
            for accept in ("application/json", "text/html"):
                code, headers, body = http_request(url, headers={"Accept": accept})
                self.assertEqual(code, 200, url)
                self.assertEqual(headers["Cache-Control"], "no-cache", url)
                before[url, accept] = (headers["ETag"], body)
        brz("push", "-q", self.smart_url(store.admin, "ghosts/c1"), cwd=first)
        for (url, accept), (etag, body) in before.items():
            with self.subTest(url=url, accept=accept):
                code, headers, again = http_request(
                    url, headers={"Accept": accept, "If-None-Match": etag}
                )
                self.assertEqual(code, 200)
                self.assertNotEqual(again, body)
                self.assertNotEqual(headers["Cache-Control"], "no-cache")
        # a revno's page names another revision once the branch moves
        code, headers, _ = http_request(
            root + "/ghosts/c1/+revno/1", headers={"Accept": "application/json"}
        )
        self.assertEqual((code, headers["Cache-Control"]), (200, "no-cache"))
