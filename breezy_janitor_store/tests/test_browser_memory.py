"""Large files through the code browser: exact bytes, bounded memory.

A branch whose one commit adds three large text files is pushed with the
real ``brz`` to a store serving in its own process (so its memory is its
own).  Its raw bytes, file page and tarball must give back exactly what was
committed, and the server's peak resident size (Linux ``VmHWM``, reset
before each request) must grow by well under one file's size: breezy's own
reading holds each text whole, several times over.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import shutil
import tarfile
import unittest
import urllib.parse

from breezy import branchbuilder, urlutils
from breezy.repository import Repository
from breezy.transport import get_transport_from_url

from ..store import textstream
from .support import hostile
from .support.fixtures import FREE_PORTS, StoreTestCase, brz, http_request, start_serve

MIB = 1024 * 1024
#: Size of each large file; three are committed at once.
FILE_BYTES = 16 * MIB
NAMES = ("big0.txt", "big1.txt", "big2.txt")


def text(seed: str, size: int) -> bytes:
    """``size`` bytes of distinct lines (compressible, as source is)."""
    lines, total, n = [], 0, 0
    while total < size:
        line = hashlib.sha256(f"{seed}-{n}".encode()).hexdigest().encode()
        line += b" line %d\n" % n
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)[:size]


def _host_port(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port


@unittest.skipUnless(
    os.path.exists(f"/proc/{os.getpid()}/clear_refs"),
    "needs Linux /proc/PID/clear_refs",
)
class LargeFileTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.texts = {name: text(name, FILE_BYTES) for name in NAMES}
        local = self.path("local")
        builder = branchbuilder.BranchBuilder(
            get_transport_from_url(urlutils.local_path_to_url(local)), format="2a"
        )
        builder.start_series()
        try:
            self.r1 = builder.build_snapshot(
                None,
                [
                    ("add", ("", b"root-id", "directory", None)),
                    ("add", ("small.txt", b"small", "file", b"small\n")),
                ],
            )
            self.r2 = builder.build_snapshot(
                [self.r1],
                [
                    ("add", (name, name.encode(), "file", data))
                    for name, data in self.texts.items()
                ],
            )
        finally:
            builder.finish_series()
        self.proc, admin, public = start_serve(
            self, "-d", self.storage_dir, *FREE_PORTS
        )
        self.public_root = public.rsplit("/bzr", 1)[0] if "/bzr" in public else public
        brz("push", "-d", local, f"bzr+{admin}/pkg/lintian-fixes")

    def url(self, view: str, path: str | None = None, rev: bytes | None = None) -> str:
        where = f"+{view}" if path is None else f"+{view}/{path}"
        rev = urllib.parse.quote((rev or self.r2).decode(), safe="")
        return f"{self.public_root}/bzr/pkg/{where}?rev={rev}"

    def fetch(self, url: str) -> bytes:
        status, _, body = http_request(url)
        self.assertEqual(status, 200, url)
        return body

    def growth(self, url: str) -> tuple[int, bytes]:
        """The server's peak memory growth while ``url`` is fetched."""
        pid = self.proc.pid
        before = hostile.memory_kib(pid)["VmRSS"]
        hostile.reset_peak_memory(pid)
        body = self.fetch(url)
        return (hostile.memory_kib(pid)["VmHWM"] - before) * 1024, body

    def test_large_files_exact_and_bounded(self) -> None:
        # Warm up on the first revision (no large file): load the code
        # every view runs.
        self.fetch(self.url("raw", "small.txt", self.r1))
        self.fetch(self.url("file", "small.txt", self.r1))
        self.fetch(self.url("tarball", rev=self.r1))

        page, body = self.growth(self.url("file", "big2.txt"))
        self.assertIn(b"line 1<", body.replace(b"</span>", b"<"))
        raw, body = self.growth(self.url("raw", "big1.txt"))
        self.assertEqual(body, self.texts["big1.txt"])
        tarball, body = self.growth(self.url("tarball"))
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as archive:
            found = {
                m.name.split("/", 1)[1]: archive.extractfile(m).read()
                for m in archive.getmembers()
                if m.isfile()
            }
        self.assertEqual(found, {**self.texts, "small.txt": b"small\n"})

        report = (
            f"server memory growth: raw {raw / MIB:.1f} MiB, page {page / MIB:.1f} "
            f"MiB, tarball {tarball / MIB:.1f} MiB, for files of "
            f"{FILE_BYTES // MIB} MiB"
        )
        print(report)
        # Holding one text whole (let alone breezy's copies of it) would
        # take a whole file's size.
        self.assertLess(raw, FILE_BYTES // 2, report)
        self.assertLess(page, FILE_BYTES // 2, report)
        self.assertLess(tarball, FILE_BYTES // 2, report)

    def test_streams_from_the_pack_on_this_breezy(self) -> None:
        """The pieces come from the pack (not breezy's whole-text path) for
        a large fulltext, and breezy's path serves a text stored as a delta
        after a repack: both exact."""
        repo = Repository.open(os.path.join(self.storage_dir, "pkg"))
        with repo.lock_read():
            tree = repo.revision_tree(self.r2)
            for name in NAMES:
                size = tree.get_file_size(name)
                opened = textstream._open_fulltext(repo, tree, name, size)
                self.assertIsNotNone(opened, name)
                opened[0].close()
                pieces = list(textstream.text_chunks(repo, tree, name))
                self.assertLessEqual(max(map(len, pieces)), textstream.CHUNK)
                self.assertEqual(b"".join(pieces), self.texts[name])

    def test_corrupt_pack_cuts_the_answer(self) -> None:
        """A pack whose bytes were damaged on disk: the answer stops short
        (never wrong bytes sent as whole), and the server goes on."""
        packs = os.path.join(self.storage_dir, "pkg", ".bzr", "repository", "packs")
        (name,) = [
            n
            for n in os.listdir(packs)
            if os.path.getsize(os.path.join(packs, n)) > MIB
        ]
        damaged = os.path.join(packs, name)
        shutil.copy(damaged, self.path("pack-copy"))
        with open(damaged, "r+b") as f:
            f.seek(os.path.getsize(damaged) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
        host, port = _host_port(self.public_root)
        noticed = []
        for big in NAMES:
            conn = http.client.HTTPConnection(host, port, timeout=120)
            try:
                conn.request("GET", self.url("raw", big).split(str(port), 1)[1])
                response = conn.getresponse()
                try:
                    body = response.read()
                except http.client.IncompleteRead as e:
                    body = e.partial
            finally:
                conn.close()
            if response.status == 200 and len(body) == FILE_BYTES:
                self.assertEqual(body, self.texts[big], big)
            else:
                noticed.append(big)
        self.assertTrue(noticed, "the damaged pack went unnoticed")
        self.assertEqual(self.fetch(self.url("raw", "small.txt")), b"small\n")
