"""Request bodies are limited per verb, and refused before they are read.

Only a writer's insert stream may send up to ``client_max_size``; every other
verb gets :data:`~breezy_janitor_store.smart.exchange.SMALL_BODY_LIMIT`.  A real
``brz janitor-store serve`` runs as a subprocess and its resident memory is
read from ``/proc/PID``: an anonymous 64 MB body must be answered 413 with
the server's memory growing by far less than the body.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from ..smart.verbs import SMALL_BODY_LIMIT
from .support import hostile
from .support.fixtures import FREE_PORTS, StoreTestCase, brz, start_serve
from .support.smart_messages import post, post_message

MIB = 1024 * 1024
#: The body sent to a verb that takes a small one.
BIG_BODY = 64 * MIB
#: Largest growth of the server's resident memory allowed for it.
LIMIT_KIB = 64 * 1024
#: Figures measured (printed with BJS_REPORT_COUNTS=1).
MEASURED: dict[str, object] = {}


def big_message(
    verb: bytes, *args: bytes, body_size: int, line: bytes
) -> Iterator[bytes]:
    """A v3 request whose one body part is ``body_size`` bytes of ``line``
    repeated, produced piece by piece."""
    yield hostile.encode_request(verb, *args)[:-1]  # all but the end
    yield b"b" + struct.pack("!L", body_size)
    block = line * (MIB // len(line))
    left = body_size
    while left > 0:
        yield block[:left]
        left -= len(block)
    yield b"e"






def post_big(base: str, path: str, verb: bytes, *args: bytes, line: bytes) -> bytes:
    """POST ``verb`` with a body of :data:`BIG_BODY` bytes."""
    size = sum(len(p) for p in big_message(verb, *args, body_size=0, line=line))
    pieces = big_message(verb, *args, body_size=BIG_BODY - size, line=line)
    return post(base, path, pieces, BIG_BODY)


class BodyLimitTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        work = self.make_branch()
        self.proc, self.admin, self.public = start_serve(
            self, "-d", self.storage_dir, *FREE_PORTS
        )
        brz("push", "-q", f"bzr+{self.admin}/hello/lintian-fixes", cwd=work)

    def test_big_bodies_of_small_verbs_are_refused_unread(self) -> None:
        pid = self.proc.pid
        target = "/bzr/hello/lintian-fixes/.bzr/smart"
        calls = [
            (b"readv", b".bzr/branch/last-revision", b"0,1\n"),
            (b"Repository.get_parent_map", b"../", b"null:\n"),
        ]
        # warm up: code loaded, caches filled
        raw = post_big(self.public, target, *calls[0][:-1], line=b"0,1\n")
        self.assertEqual(hostile.split_response(raw)[0], 413, raw[:300])
        for verb, *args, line in calls:
            with self.subTest(verb=verb):
                before = hostile.memory_kib(pid)["VmRSS"]
                hostile.reset_peak_memory(pid)
                raw = post_big(self.public, target, verb, *args, line=line)
                growth = hostile.memory_kib(pid)["VmHWM"] - before
                MEASURED[verb] = {"growth MiB": round(growth / 1024, 1)}
                status, headers, body = hostile.split_response(raw)
                self.assertEqual(status, 413, raw[:300])
                self.assertEqual(headers.get("connection"), "close")
                self.assertIn(b"exceeds the limit of", body)
                self.assertLessEqual(growth, LIMIT_KIB, MEASURED)
        # and the server still answers
        self.assertEqual(
            brz("revno", f"bzr+{self.public}/bzr/hello/lintian-fixes").stdout.strip(),
            b"1",
        )

    def test_small_bodies_and_pushes_still_work(self) -> None:
        """A body just under the small limit is read; a writer's push, whose
        insert stream is larger than the small limit, goes through."""
        target = "/hello/lintian-fixes/.bzr/smart"
        pieces = list(
            big_message(
                b"Repository.get_parent_map",
                b"../",
                b"null:",
                body_size=SMALL_BODY_LIMIT - 4096,
                line=b"null:\n",
            )
        )
        raw = post_message(self.admin, target, pieces)
        self.assertEqual(hostile.split_response(raw)[0], 200, raw[:300])
        big = self.path("big")
        brz("branch", "-q", self.path("work"), big)
        with open(os.path.join(big, "blob"), "wb") as f:
            f.write(os.urandom(2 * SMALL_BODY_LIMIT))
        brz("add", "-q", cwd=big)
        brz("commit", "-q", "-m", "blob", cwd=big)
        brz("push", "-q", f"bzr+{self.admin}/hello/lintian-fixes", cwd=big)
        self.assertEqual(
            brz("revno", f"bzr+{self.public}/bzr/hello/lintian-fixes").stdout.strip(),
            b"2",
        )


def tearDownModule() -> None:
    if MEASURED and os.environ.get("BJS_REPORT_COUNTS"):
        print("\nbody limits:", MEASURED)
