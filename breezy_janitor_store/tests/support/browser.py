"""The code browser's test codebase and the base of its page tests.

Codebase ``code`` (see :func:`build_code`) is pushed with the real ``brz``
to a shared store; :class:`BrowserTestCase` reads it through that store.
"""

from __future__ import annotations

import os
import unittest
import urllib.parse

from breezy import controldir
from breezy.commit import NullCommitReporter

from ...web import browse
from ...web.browser import tree
from .api_fixtures import COMMITTER, EPOCH, SharedStore
from .fixtures import http_request
from .pages import Page

__all__ = [
    "BIG",
    "BINARY",
    "LONG_PATH",
    "MAIN_PY",
    "MAIN_PY_2",
    "MANY",
    "MARKUP_NAME",
    "UNICODE_NAME",
    "WIDE_REVIDS",
    "BrowserTestCase",
    "code_store",
    "q",
    "wide_store",
]

MARKUP_NAME = 'a<b>&"c".txt'
UNICODE_NAME = "\u00fcber.txt"
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
BIG = b"".join(b"line %d <x>\n" % i for i in range(150_000))  # about 2 MB
MAIN_PY = b'def main():\n    return "<script>x</script>"\n'
MAIN_PY_2 = MAIN_PY + b"\n\nclass Thing:\n    pass\n"
MANY = tree.TREE_PAGE_SIZE + 1


def build_code() -> SharedStore:
    """Codebase ``code``: r1 adds files (one named like markup, a binary,
    a non-ASCII name, a symlink, a directory of :data:`MANY` files), r2
    changes ``src/main.py``, r3 adds a 2 MB text file."""
    shared = SharedStore(campaigns=["lintian-fixes", "debian"])
    work = shared.path("code")
    fmt = controldir.format_registry.make_controldir("2a")
    wt = controldir.ControlDir.create_standalone_workingtree(work, format=fmt)

    def write(files: dict[str, bytes]) -> None:
        for name, content in files.items():
            full = os.path.join(work, name)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(content)

    def commit(name: str, message: str) -> None:
        wt.smart_add([work])
        n = len(shared.revisions)
        shared.revisions[name] = wt.commit(
            message,
            committer=COMMITTER,
            timestamp=EPOCH + 3600 * n,
            timezone=3600,
            reporter=NullCommitReporter(),
        )

    write(
        {
            "README.md": b"# Code\n\nSome *text*.\n",
            "src/main.py": MAIN_PY,
            MARKUP_NAME: b"<b>not bold</b>\n",
            "data.bin": BINARY,
            UNICODE_NAME: "gr\u00fc\u00dfe\n".encode(),
            **{f"many/f{i:04d}": b"%d\n" % i for i in range(MANY)},
        }
    )
    os.symlink("src/main.py", os.path.join(work, "link"))
    commit("r1", "Initial <b>import</b>")
    write({"src/main.py": MAIN_PY_2})
    commit("r2", "Add Thing")
    write({"big.txt": BIG})
    commit("r3", "Big file")
    side_dir = wt.branch.controldir.sprout(
        shared.path("side"), revision_id=shared.revisions["r1"]
    )
    side = side_dir.open_workingtree()
    with open(os.path.join(side.basedir, "README.md"), "ab") as f:
        f.write(b"From the side.\n")
    shared.revisions["s1"] = side.commit(
        "Side change",
        committer=COMMITTER,
        timestamp=EPOCH + 36000,
        timezone=0,
        reporter=NullCommitReporter(),
    )
    wt.merge_from_branch(side.branch)
    commit("r4", "Merge the side branch")
    shared.push("code", "code/lintian-fixes")
    # the cache branch, at r2: the base of the codebase's matrix
    r2 = shared.revisions["r2"].decode()
    shared.push("code", "code/debian/latest", "-r", "revid:" + r2)
    return shared


def code_store() -> SharedStore:
    return SharedStore.get("code", build_code)


#: A path of words that give a browser no place to break a line.
LONG_PATH = "a_directory_named_with_no_place_to_break/" + "file_name_" * 12 + ".txt"
#: Revision ids of codebase ``wide``: long, without a hyphen (any bytes a
#: worker chooses).
WIDE_REVIDS = {"w1": b"w1" + b"0123456789" * 9, "w2": b"w2" + b"0123456789" * 9}


def build_wide() -> SharedStore:
    """Codebase ``wide``: what a page cannot break into lines (long paths,
    revision ids, a tag name, a message's and a file's long lines).  w1
    adds a file at :data:`LONG_PATH`, w2 changes it; tag ``t_...`` at w1."""
    shared = SharedStore(campaigns=["lintian-fixes"])
    builder = shared.builder("wide")
    builder.start_series()
    long_line = b"x = '" + b"y" * 300 + b"'\n"
    try:
        for name, parents, actions, message in (
            (
                "w1",
                None,
                [
                    ("add", ("", None, "directory", None)),
                    ("add", (LONG_PATH.split("/")[0], None, "directory", None)),
                    ("add", (LONG_PATH, None, "file", b"one\n" + long_line)),
                ],
                "Add " + "z" * 200,
            ),
            (
                "w2",
                ["w1"],
                [("modify", (LONG_PATH, b"one\ntwo\n" + long_line * 2))],
                "Change " + LONG_PATH,
            ),
        ):
            shared.revisions[name] = builder.build_snapshot(
                [WIDE_REVIDS[p] for p in parents] if parents else None,
                actions,
                message=message,
                committer=COMMITTER,
                timestamp=EPOCH,
                timezone=0,
                revision_id=WIDE_REVIDS[name],
            )
    finally:
        builder.finish_series()
    builder.get_branch().tags.set_tag("t_" + "tag_name_" * 12, WIDE_REVIDS["w1"])
    shared.push("wide", "wide/lintian-fixes")
    return shared


def wide_store() -> SharedStore:
    return SharedStore.get("wide", build_wide)


def q(revid: bytes) -> str:
    return urllib.parse.quote(revid, safe="@:-._~")


class BrowserTestCase(unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.shared = code_store()
        self.store = self.shared.store
        self.rev = self.shared.revisions

    def url(self, kind: str, path: str = "", rev: str = "r3", query: str = "") -> str:
        quoted = urllib.parse.quote(path)
        return (
            f"{self.store.public_root}/bzr/code/+{kind}/{quoted}"
            f"?rev={q(self.rev[rev])}{query}"
        )

    def fetch(self, url: str, status: int = 200, **headers) -> tuple[dict, bytes]:
        code, got, body = http_request(url, headers=headers)
        self.assertEqual(code, status, body[:500])
        self.assertNotIn(b"Traceback", body)
        self.assertNotIn(self.shared.tmp.encode(), body)
        return got, body

    def page(self, url: str, status: int = 200) -> Page:
        headers, body = self.fetch(url, status, Accept="text/html")
        self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")
        self.assertEqual(
            headers["Content-Security-Policy"], browse.CONTENT_SECURITY_POLICY
        )
        self.assertTrue(body.startswith(b"<!DOCTYPE html>"))
        self.assertNotIn(b"<script", body)
        page = Page(body)
        self.assertEqual(page.errors, [], url)
        return page
