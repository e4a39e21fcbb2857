"""File texts that do not match their inventory, served by the code browser.

The store refuses such texts on push (:mod:`..store.contentcheck`), but a
repository may hold some: stored before that check, or damaged on disk.
Here they are written straight into the store's repository (breezy's own
sink, not the store's), under a revision whose inventory names other texts:
a small text longer than its inventory's size, and a large text (streamed
from its pack) of the right size with other bytes.  The raw answer carries
the inventory's size as its ``Content-Length``: it must never get more
bytes than that (the rest would be read as the next answer on the
connection) nor a whole body of wrong bytes.
"""

from __future__ import annotations

import http.client
import os
import urllib.parse

from breezy import osutils
from breezy.branch import Branch
from breezy.bzr import vf_search
from breezy.bzr.versionedfile import FulltextContentFactory
from breezy.controldir import ControlDir
from breezy.repository import Repository

from ..store import textstream
from .support.fixtures import StoreTestCase, brz, http_request

REV = b"damaged-1"
SMALL = b"honest\n"
#: What the repository holds for the small file: a whole HTTP answer, which
#: a client would read as the answer to its next request.
SMUGGLED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 21\r\n\r\n"
    b"<script>evil</script>"
) * 100
BIG = b"".join(b"line %07d of the large file\n" % n for n in range(80000))
OTHER = BIG.replace(b"large", b"LARGE")


class DamagedTextTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.assertGreaterEqual(len(BIG), textstream.STREAM_FROM)
        self.assertEqual(len(OTHER), len(BIG))
        self.store = self.start_store()
        self.push_branch(self.store, "pkg/lintian-fixes")
        local = self.path("local")
        tree = ControlDir.create_standalone_workingtree(local)
        for name, data in (("small.txt", SMALL), ("big.txt", BIG)):
            with open(os.path.join(local, name), "wb") as f:
                f.write(data)
        tree.add(["small.txt", "big.txt"], ids=[b"small-id", b"big-id"])
        tree.commit("two files", rev_id=REV)
        stored = Repository.open(os.path.join(self.storage_dir, "pkg"))
        replaced = {(b"small-id", REV): SMUGGLED, (b"big-id", REV): OTHER}
        with stored.lock_write():
            sink = stored._get_sink()
            result = sink.insert_stream(
                _replaced(tree.branch.repository, stored, replaced),
                tree.branch.repository._format,
                [],
            )
        self.assertEqual(result, ([], set()))
        branch = Branch.open(os.path.join(self.storage_dir, "pkg", "lintian-fixes"))
        with branch.lock_write():
            branch.generate_revision_history(REV)

    def raw(self, name: str) -> tuple[int, int | None, bytes]:
        """Status, Content-Length and every byte the server sent after the
        head of ``+raw/NAME`` on a connection it may keep open."""
        parts = urllib.parse.urlsplit(self.store.public_root)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("GET", f"/bzr/pkg/+raw/{name}?rev={REV.decode()}")
            response = conn.getresponse()
            length = response.getheader("Content-Length")
            response.length = None  # read to the connection's end
            response.will_close = True
            conn.sock.shutdown(1)  # no next request: the server closes
            try:
                body = response.read()
            except http.client.IncompleteRead as e:
                body = e.partial
        finally:
            conn.close()
        return response.status, None if length is None else int(length), body

    def test_small_text_longer_than_its_inventory(self) -> None:
        status, length, body = self.raw("small.txt")
        if length is not None:
            self.assertLessEqual(len(body), length)
        self.assertNotIn(b"<script>", body)
        self.assertNotEqual(status, 200)
        status, _, page = http_request(
            self.store.public_root + f"/bzr/pkg/+file/small.txt?rev={REV.decode()}"
        )
        self.assertNotIn(b"evil", page)
        self.assertNotIn(b"Traceback", page)

    def test_large_text_with_other_bytes_is_never_whole(self) -> None:
        repo = Repository.open(os.path.join(self.storage_dir, "pkg"))
        with repo.lock_read():  # read from its pack, not through breezy
            tree = repo.revision_tree(REV)
            opened = textstream._open_fulltext(repo, tree, "big.txt", len(BIG))
            self.assertIsNotNone(opened)
            opened[0].close()
        status, length, body = self.raw("big.txt")
        self.assertEqual((status, length), (200, len(BIG)))
        self.assertLess(len(body), length)  # cut: the client knows
        self.assertTrue(OTHER.startswith(body))
        # the server goes on
        status, _, body = http_request(
            self.store.public_root + f"/bzr/pkg/+raw/small.txt?rev={REV.decode()}"
        )
        self.assertNotIn(b"<script>", body)
        brz("revno", "bzr+" + self.store.public + "/pkg/lintian-fixes")


def _replaced(local: Repository, target: Repository, replaced: dict):
    """``local``'s stream of :data:`REV` for ``target``, with the texts of
    the keys in ``replaced`` swapped for other bytes (each with its own
    SHA-1, so breezy stores it)."""
    source = local._get_source(target._format)
    search = vf_search.PendingAncestryResult([REV], local)
    with local.lock_read():
        for kind, substream in source.get_stream(search):
            if kind != "texts":
                yield kind, substream
                continue
            records = []
            for record in substream:
                data = replaced.get(record.key, record.get_bytes_as("fulltext"))
                records.append(
                    FulltextContentFactory(
                        record.key, record.parents, osutils.sha_string(data), data
                    )
                )
            yield kind, iter(records)
