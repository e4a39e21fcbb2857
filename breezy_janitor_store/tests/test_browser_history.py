"""The code browser on histories with merges: revision numbers of
annotations and of a branch's pages, what the views share (highlighted
text), how much of a long mainline a page reads.

Codebases ``merges`` (:func:`_build_merges`: a mainline m1..m4 where m3
merges a side line s1, s2) and ``longmerged`` (:func:`_build_long`: 110
mainline revisions and a merged one), read through a running store.
"""

from __future__ import annotations

import json
import re
import unittest
import urllib.parse

from ..web import browse
from ..web.browser import caching
from .support.api_fixtures import COMMITTER, EPOCH, SharedStore
from .support.fixtures import http_request
from .support.pages import Page

F1 = b"int a;\nint b;\nint c;\n"
S1 = b"int a;\nint side;\nint b;\nint c;\n"
M2 = b"int a;\nint b;\nint c;\nint m2;\n"
M3 = b"int a;\nint side;\nint b;\nint c;\nint m2;\n"
M4 = M3 + b"int m4;\n"
H = b"/* only the highlighting test reads this */\nint h;\nint i;\n"


def _build_merges() -> SharedStore:
    """m1 adds ``f.c``, ``same.c``, ``h.c``; s1 (off m1) adds a line; m2 another;
    m3 merges s2 (off s1, a change elsewhere); m4 adds a line."""
    shared = SharedStore(campaigns=["lintian-fixes"])
    main = shared.builder("main")
    main.start_series()
    try:
        m1 = shared.snapshot(
            main,
            "m1",
            None,
            [
                ("add", ("", None, "directory", None)),
                ("add", ("f.c", b"f-id", "file", F1)),
                ("add", ("same.c", b"same-id", "file", F1)),
                ("add", ("g.txt", b"g-id", "file", b"g\n")),
                ("add", ("h.c", b"h-id", "file", H)),
            ],
            "m1",
        )
        s1 = shared.snapshot(main, "s1", [m1], [("modify", ("f.c", S1))], "s1")
        s2 = shared.snapshot(main, "s2", [s1], [("modify", ("g.txt", b"g2\n"))], "s2")
        m2 = shared.snapshot(main, "m2", [m1], [("modify", ("f.c", M2))], "m2")
        shared.snapshot(
            main,
            "m3",
            [m2, s2],
            [("modify", ("f.c", M3)), ("modify", ("g.txt", b"g2\n"))],
            "m3 merges s2",
        )
        shared.snapshot(main, "m4", None, [("modify", ("f.c", M4))], "m4")
    finally:
        main.finish_series()
    shared.push("main", "merges/lintian-fixes")
    return shared


def _q(revid: bytes) -> str:
    return urllib.parse.quote(revid, safe="@:-._~")


class MergeHistoryTestCase(unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.shared = SharedStore.get("merges", _build_merges)
        self.rev = self.shared.revisions
        self.root = self.shared.store.public_root + "/bzr/merges"

    def get(self, url: str, accept: str = "text/html") -> bytes:
        status, _, body = http_request(url, headers={"Accept": accept})
        self.assertEqual(status, 200, body[:500])
        return body

    def annotation(self, path: str, rev: str) -> list[tuple[str, int | None]]:
        body = self.get(
            f"{self.root}/+annotate/{path}?rev={_q(self.rev[rev])}", "application/json"
        )
        return [(line["revision"], line["revno"]) for line in json.loads(body)["lines"]]


class AnnotateRevnoTests(MergeHistoryTestCase):
    def test_revnos_on_a_merge_history(self) -> None:
        """Lines from mainline revisions have their number on the mainline
        of the annotated revision; lines from merged ones none."""
        r = {k: v.decode() for k, v in self.rev.items()}
        self.assertEqual(
            self.annotation("f.c", "m4"),
            [
                (r["m1"], 1),
                (r["s1"], None),
                (r["m1"], 1),
                (r["m1"], 1),
                (r["m2"], 2),
                (r["m4"], 4),
            ],
        )
        self.assertEqual(
            self.annotation("f.c", "m2"),
            [(r["m1"], 1), (r["m1"], 1), (r["m1"], 1), (r["m2"], 2)],
        )
        # on the side line, s1 is the mainline's second revision
        self.assertEqual(self.annotation("f.c", "s1")[1], (r["s1"], 2))

    def test_html_shows_revnos_and_merged_ids(self) -> None:
        body = self.get(f"{self.root}/+annotate/f.c?rev={_q(self.rev['m4'])}")
        self.assertEqual(Page(body).errors, [])
        # each run of lines from one revision starts with a link to it
        # showing its number (or, merged, the start of its id)
        runs = re.findall(
            rb'<a class="rev" href="[^"]*/\+revision/([^"]*)"[^>]*>([^<]*)</a>',
            body,
        )
        self.assertEqual(
            [(urllib.parse.unquote(r.decode()), text.decode().strip()) for r, text in runs],
            [
                (self.rev["m1"].decode(), "1"),
                (self.rev["s1"].decode(), self.rev["s1"].decode()[:16] + "…"),
                (self.rev["m1"].decode(), "1"),
                (self.rev["m2"].decode(), "2"),
                (self.rev["m4"].decode(), "4"),
            ],
        )


class SharedHighlightTests(MergeHistoryTestCase):
    def test_file_view_and_annotate_share_highlighted_lines(self) -> None:
        """The file view of a text keeps its highlighted lines; the same
        text annotated, or at another revision, or under a file of the
        same name elsewhere, is not highlighted again."""
        key = caching.HIGHLIGHTS.key("h.c", H.decode())
        tip = _q(self.rev["m4"])
        self.get(f"{self.root}/+file/h.c?rev={tip}")
        kept = caching.HIGHLIGHTS.get(key)
        self.assertEqual(len(kept), H.count(b"\n"))
        # the annotation (not made before) shows the kept lines: mark them
        caching.HIGHLIGHTS.put(key, tuple(f"KEPT{i}" for i in range(len(kept))), 0)
        body = self.get(f"{self.root}/+annotate/h.c?rev={tip}")
        self.assertEqual(
            [body.count(f"KEPT{i}".encode()) for i in range(len(kept))],
            [1] * len(kept),
        )

    def test_highlighted_text_is_found_by_name_and_text(self) -> None:
        self.get(f"{self.root}/+file/same.c?rev={_q(self.rev['m1'])}")
        self.assertIsNotNone(
            caching.HIGHLIGHTS.get(caching.HIGHLIGHTS.key("same.c", F1.decode()))
        )
        self.assertIsNone(
            caching.HIGHLIGHTS.get(caching.HIGHLIGHTS.key("same.txt", F1.decode()))
        )
        self.assertIsNone(
            caching.HIGHLIGHTS.get(caching.HIGHLIGHTS.key("same.c", F1.decode() + " "))
        )

    def test_the_text_cache_is_bounded(self) -> None:
        cache = caching.TextCache(max_bytes=10, max_item=6)
        cache.put(("a",), ("1",), 5)
        cache.put(("b",), ("2",), 5)
        cache.put(("c",), ("3",), 7)  # larger than an item may be
        self.assertEqual(cache.get(("a",)), ("1",))
        self.assertEqual(cache.get(("b",)), ("2",))
        self.assertIsNone(cache.get(("c",)))
        cache.put(("d",), ("4",), 1)
        self.assertIsNone(cache.get(("a",)))  # the least recently used
        cache.put(("b",), ("5",), 2)  # replaced: counted once
        self.assertEqual(cache._size, 3)
        self.assertEqual(len(cache._items), 2)


#: The key of ``longmerged``'s mainline in :func:`browse.mainline`'s cache.
LONG_TIP = ("longmerged", b"l110")


def _build_long() -> SharedStore:
    """Codebase ``longmerged``: a mainline ``l001`` ... ``l110`` where ``l060``
    merges a side revision ``side``."""
    shared = SharedStore(campaigns=["lintian-fixes"])
    builder = shared.builder("long")
    builder.start_series()
    try:
        for n in range(1, 111):
            actions = [("modify", ("f", b"%d\n" % n))]
            if n == 1:
                actions = [
                    ("add", ("", None, "directory", None)),
                    ("add", ("f", b"f-id", "file", b"1\n")),
                    ("add", ("g", b"g-id", "file", b"g\n")),
                ]
            parents = None
            if n == 60:
                builder.build_snapshot(
                    [b"l058"],
                    [("modify", ("g", b"side\n"))],
                    message="side",
                    revision_id=b"side",
                    committer=COMMITTER,
                    timestamp=EPOCH,
                    timezone=0,
                )
                parents = [b"l059", b"side"]
                actions.append(("modify", ("g", b"side\n")))
            builder.build_snapshot(
                parents,
                actions,
                message=f"change {n}",
                revision_id=b"l%03d" % n,
                committer=COMMITTER,
                timestamp=EPOCH + n,
                timezone=0,
            )
    finally:
        builder.finish_series()
    shared.push("long", "longmerged/lintian-fixes")
    return shared


class BranchPageTests(unittest.TestCase):
    """A branch's pages number its mainline from the tip's revno; the
    first pages read only their revisions of it."""

    def setUp(self) -> None:
        super().setUp()
        self.shared = SharedStore.get("long-merged", _build_long)
        self.base = self.shared.store.public_root + "/bzr/longmerged/lintian-fixes/"
        self.forget()

    def forget(self) -> None:
        """Drop the branch's mainline from the process's cache."""
        with browse._mainlines_lock:
            line = browse._mainlines.pop(LONG_TIP, None)
            if line is not None:
                browse._mainlines_size -= len(line)

    def page(self, number: int) -> dict:
        status, _, body = http_request(
            f"{self.base}?page={number}", headers={"Accept": "application/json"}
        )
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def check_pages(self) -> None:
        for number, first, last, more in (
            (1, 110, 61, 2),
            (2, 60, 11, 3),
            (3, 10, 1, None),
        ):
            with self.subTest(page=number):
                data = self.page(number)
                self.assertEqual(
                    [(r["revno"], r["revision"]) for r in data["revisions"]],
                    [(n, f"l{n:03d}") for n in range(first, last - 1, -1)],
                )
                self.assertEqual(data["next_page"], more)
        status, _, body = http_request(self.base + "?page=4")
        self.assertEqual(status, 404)
        self.assertIn(b"the history has 110 revisions", body)

    def test_the_first_pages_do_not_read_the_whole_mainline(self) -> None:
        self.check_pages()
        self.assertNotIn(LONG_TIP, browse._mainlines)

    def test_pages_past_the_walk_read_and_keep_the_whole_mainline(self) -> None:
        walk = browse.PREFIX_WALK
        self.addCleanup(setattr, browse, "PREFIX_WALK", walk)
        browse.PREFIX_WALK = 60
        self.check_pages()
        self.assertEqual(len(browse._mainlines[LONG_TIP]), 110)
        browse.PREFIX_WALK = walk
        self.check_pages()  # from the kept line
