"""Diffs within their bounds: files over the size or line limit are named,
not compared; the output is cut with a note; every diff holds a slot of
the stream budget (a 503 when none comes free) and gives it back.

Branches are built with breezy's working-tree API and pushed with the real
``brz`` to a store on loopback.
"""

from __future__ import annotations

import os
import unittest
import urllib.parse

import breezy.bzr  # noqa: F401 - registers the bzr formats
from breezy import controldir
from breezy import diff as breezy_diff

from ..store import diff, history
from ..store.budget import ANNOTATE_LIMIT, StreamBudget
from .support.features import HYPOTHESIS, require_module
from .support.fixtures import StoreTestCase, brz, http_request, wait_for

CAMPAIGN = "lintian-fixes"


class DiffStoreTestCase(StoreTestCase):
    """A store, and a local working tree pushed to ``CODEBASE/CAMPAIGN``."""

    codebase = "limits"
    limits = diff.DiffLimits(file_bytes=4000, file_lines=100, output_bytes=20_000)

    def setUp(self) -> None:
        super().setUp()
        self.budget = StreamBudget(slots=1, wait=0.0)
        self.store = self.start_store(
            campaigns=[CAMPAIGN], diff_limits=self.limits, stream_budget=self.budget
        )
        fmt = controldir.format_registry.make_controldir("2a")
        self.tree = controldir.ControlDir.create_standalone_workingtree(
            self.path("work"), format=fmt
        )

    def commit(self, files: dict[str, bytes], message: str = "change") -> bytes:
        """Write ``files`` in the tree, commit them and push; the revision."""
        for name, content in files.items():
            with open(os.path.join(self.tree.basedir, name), "wb") as f:
                f.write(content)
        self.tree.smart_add([self.tree.basedir])
        revid = self.tree.commit(message)
        url = f"bzr+{self.store.admin}/{self.codebase}/{CAMPAIGN}"
        brz("push", "-q", "--overwrite", "-d", self.tree.basedir, url)
        return revid

    def diff(self, old: bytes, new: bytes) -> tuple[int, dict, bytes]:
        query = urllib.parse.urlencode({"old": old.decode(), "new": new.decode()})
        return http_request(f"{self.store.public}/{self.codebase}/diff?{query}")

    def page(self, revid: bytes, method: str = "GET") -> tuple[int, dict, bytes]:
        path = history.revision_path(self.codebase, revid)
        return http_request(self.store.public + path, method=method)

    def assertSlotsFree(self) -> None:
        wait_for(lambda: self.budget.in_use == 0, "the diff's slot to be given back")


class FileLimitTests(DiffStoreTestCase):
    def test_a_file_over_the_byte_limit_is_named_not_compared(self) -> None:
        r1 = self.commit({"big": b"a" * 4999 + b"\n", "small": b"one\n"})
        r2 = self.commit({"big": b"b" * 4999 + b"\n", "small": b"two\n"})
        status, _, body = self.diff(r1, r2)
        self.assertEqual(status, 200, body)
        self.assertIn(
            b"=== modified file 'big'\nFile too large to diff: old/big and new/big: "
            b"5000 bytes, more than 4000\n",
            body,
        )
        self.assertNotIn(b"aaaa", body)
        self.assertIn(b"-one\n+two\n", body)  # the others are compared
        status, _, page = self.page(r2)
        self.assertEqual(status, 200)
        self.assertIn(b"File too large to diff: old/big and new/big", page)
        self.assertNotIn(b"bbbb", page)
        self.assertSlotsFree()

    def test_an_added_file_over_the_byte_limit(self) -> None:
        r1 = self.commit({"small": b"one\n"})
        r2 = self.commit({"big": b"x\n" * 2500})
        body = self.diff(r1, r2)[2]
        self.assertEqual(
            body,
            b"=== added file 'big'\nFile too large to diff: old/big and new/big: "
            b"5000 bytes, more than 4000\n",
        )

    def test_a_file_over_the_line_limit_is_named_not_compared(self) -> None:
        r1 = self.commit({"lines": b"a\n" * 150})
        r2 = self.commit({"lines": b"b\n" * 150})
        body = self.diff(r1, r2)[2]
        self.assertIn(
            b"File too large to diff: old/lines and new/lines: "
            b"150 lines, more than 100\n",
            body,
        )
        self.assertNotIn(b"+b\n", body)

    def test_files_within_the_limits_are_diffed_as_brz_does(self) -> None:
        r1 = self.commit({"a": b"1\n2\n3\n", "gone": b"x\n", "tail": b"no newline"})
        os.unlink(os.path.join(self.tree.basedir, "gone"))
        r2 = self.commit({"a": b"1\n3\n4\n", "tail": b"still none", "new": b""})
        body = self.diff(r1, r2)[2]
        expected = brz(
            "diff",
            "-r",
            f"revid:{r1.decode()}..revid:{r2.decode()}",
            self.tree.basedir,
            check=False,
        ).stdout
        self.assertEqual(body, expected)


class OutputLimitTests(DiffStoreTestCase):
    def test_the_output_is_cut_with_a_note(self) -> None:
        r1 = self.commit({"seed": b"0\n"})
        files = {f"f{i:02d}": b"%02d line of text\n" % i * 80 for i in range(20)}
        r2 = self.commit(files)
        status, _, body = self.diff(r1, r2)
        self.assertEqual(status, 200)
        note = (
            b"=== diff truncated: it is longer than 20000 bytes; the rest is left out\n"
        )
        self.assertTrue(body.endswith(note), body[-200:])
        self.assertLessEqual(len(body), 20_000 + len(note))
        self.assertIn(b"=== added file 'f00'", body)
        self.assertNotIn(b"=== added file 'f19'", body)
        self.assertSlotsFree()


class BudgetTests(DiffStoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.r1 = self.commit({"file": b"one\n"})
        self.r2 = self.commit({"file": b"two\n"})

    def hold_the_slot(self) -> None:
        self.assertTrue(self.budget.acquire(writer=False))
        self.addCleanup(self.budget.release, False)

    def test_no_slot_free_is_a_503_with_retry_after(self) -> None:
        self.hold_the_slot()
        for status, headers, body in (self.diff(self.r1, self.r2), self.page(self.r2)):
            self.assertEqual(status, 503, body)
            self.assertEqual(headers["Retry-After"], "10")
            self.assertTrue(headers["Content-Type"].startswith("text/plain"))
            self.assertIn(b"busy", body)
            self.assertNotIn(b"Traceback", body)
        self.assertEqual(self.budget.in_use, 1)

    def test_the_slot_is_given_back(self) -> None:
        status, _, body = self.diff(self.r1, self.r2)
        self.assertEqual(status, 200)
        self.assertIn(b"-one\n+two\n", body)
        self.assertSlotsFree()
        self.assertEqual(self.page(self.r2)[0], 200)
        self.assertSlotsFree()
        self.assertEqual(self.page(self.r2, method="HEAD")[0], 200)
        self.assertSlotsFree()  # the diff never started: given back on close
        self.assertEqual(self.diff(self.r2, self.r2)[0], 200)  # none taken
        self.assertSlotsFree()


class DefaultLimitTests(DiffStoreTestCase):
    """The default limits: a file just over the annotation limit."""

    limits = diff.DEFAULT_LIMITS

    def test_a_file_over_the_annotation_limit_is_not_compared(self) -> None:
        size = ANNOTATE_LIMIT + 2
        r1 = self.commit({"big": b"old line\n" * (size // 9) + b"\n" * (size % 9)})
        r2 = self.commit({"big": b"new line\n" * (size // 9) + b"\n" * (size % 9)})
        status, _, body = self.diff(r1, r2)
        self.assertEqual(status, 200)
        self.assertEqual(
            body,
            b"=== modified file 'big'\nFile too large to diff: old/big and new/big: "
            b"%d bytes, more than %d\n" % (size, ANNOTATE_LIMIT),
        )
        self.assertEqual(diff.DIFF_FILE_LIMIT, ANNOTATE_LIMIT)


class UnifiedDiffTests(unittest.TestCase):
    """:func:`diff.unified_diff` writes what breezy's ``internal_diff`` does."""

    def test_same_bytes_as_internal_diff(self) -> None:
        require_module(HYPOTHESIS)
        from hypothesis import given, settings
        from hypothesis import strategies as st

        line = st.sampled_from([b"a\n", b"b\n", b"c\n", b"d", b"\n", b"e\x00\n"])
        lines = st.lists(line, max_size=30).map(
            # only the last line may lack its newline
            lambda ls: (
                [x if x.endswith(b"\n") else x + b"\n" for x in ls[:-1]] + ls[-1:]
            )
        )

        @settings(max_examples=300, deadline=None, derandomize=True, database=None)
        @given(lines, lines, st.integers(0, 4))
        def check(old: list[bytes], new: list[bytes], context: int) -> None:
            outputs = []
            for differ in (breezy_diff.internal_diff, diff.unified_diff):
                out = _Bytes()
                try:
                    differ("old/f\t1", old, "new/f\t2", new, out, context_lines=context)
                except Exception as e:  # noqa: BLE001 - compared below
                    out.write(repr(type(e)).encode())
                outputs.append(out.value)
            self.assertEqual(outputs[0], outputs[1])

        check()


class _Bytes:
    def __init__(self) -> None:
        self.value = b""

    def write(self, data: bytes) -> None:
        self.value += data
