"""A store attacked with raw smart requests: the base of the hostile tests."""

from __future__ import annotations

import atexit
import collections
import os
import shutil
import tempfile
from typing import ClassVar

from breezy.bzr import vf_search
from breezy.bzr.smart.repository import _stream_to_byte_stream
from breezy.workingtree import WorkingTree

from ...web.smart import INCOMPLETE_RESPONSE
from . import hostile
from .fixtures import StoreTestCase, brz, http_request, tree_digest

CAMPAIGNS = ["lintian-fixes", "fresh-releases"]


#: Hostile requests sent, by test (see docs/security.md, "Hostile requests").
TRIED: collections.Counter = collections.Counter()


_TEMPLATE: dict = {}


def _template(case: StoreTestCase) -> dict:
    """A storage directory with branches, built once and copied per test."""
    if _TEMPLATE:
        return _TEMPLATE
    top = tempfile.mkdtemp(prefix="bjs-hostile-")
    atexit.register(shutil.rmtree, top, True)
    store_dir = os.path.join(top, "store")
    os.mkdir(store_dir)
    from .fixtures import RunningStore

    running = RunningStore(store_dir, campaigns=CAMPAIGNS)
    try:
        work = os.path.join(top, "work")
        brz("init", "-q", work)
        case.commit(work, 2)
        admin = case.smart_url(running.admin, "")
        brz("push", "-q", admin + "hello/lintian-fixes", cwd=work)
        brz("push", "-q", admin + "hello/lintian-fixes/upstream", cwd=work)
        tip = WorkingTree.open(work).branch.last_revision()
        other = os.path.join(top, "other")
        brz("branch", "-q", work, other)
        case.commit(other, 1)  # other/lintian-fixes is at revno 3
        brz("push", "-q", admin + "other/lintian-fixes", cwd=other)
    finally:
        running.stop()
    _TEMPLATE.update(store=store_dir, work=work, tip=tip)
    return _TEMPLATE


class HostileTestCase(StoreTestCase):
    """A store holding ``hello`` and ``other``, plus secrets to protect."""

    store_kwargs: ClassVar[dict] = {}

    def setUp(self) -> None:
        super().setUp()
        template = _template(self)
        os.rmdir(self.storage_dir)
        shutil.copytree(template["store"], self.storage_dir, symlinks=True)
        self.tip = template["tip"]
        self.work = self.path("work")
        shutil.copytree(template["work"], self.work, symlinks=True)
        # Things no request may reach: outside the storage directory, at
        # its top, and in another codebase.
        self.secrets = {
            self.path("secret"): b"SECRET-OUTSIDE-" + os.urandom(6).hex().encode(),
            os.path.join(self.storage_dir, "secret"): b"SECRET-TOP-"
            + os.urandom(6).hex().encode(),
            os.path.join(self.storage_dir, "other", ".bzr", "secret"): b"SECRET-OTHER-"
            + os.urandom(6).hex().encode(),
        }
        for path, content in self.secrets.items():
            with open(path, "wb") as f:
                f.write(content)
        self.store = self.start_store(campaigns=CAMPAIGNS, **self.store_kwargs)
        self.before = tree_digest(self.storage_dir)

    # -- assertions --

    def assertClean(self, data: bytes, what: object = "") -> None:
        """No traceback, server path or secret in ``data``."""
        self.assertEqual(hostile.leaks(data, self.tmp), [], what)
        for secret in self.secrets.values():
            self.assertNotIn(secret, data, what)

    def assertCleanCLI(self, proc, what: object = "") -> None:
        """No server path or secret in a brz client's output (the client may
        print its own tracebacks and local paths)."""
        data = proc.stdout + proc.stderr
        self.assertNotIn(self.storage_dir.encode(), data, what)
        self.assertNotIn(os.path.realpath(self.storage_dir).encode(), data, what)
        for secret in self.secrets.values():
            self.assertNotIn(secret, data, what)

    def assertRefusedHTTP(self, raw: bytes, what: object) -> int:
        status = hostile.split_response(raw)[0]
        self.assertTrue(400 <= status < 500, f"{what}: {raw[:300]!r}")
        self.assertClean(raw, what)
        return status

    def assertStillServing(self) -> None:
        for base in (self.store.admin, self.store.public_root):
            self.assertEqual(http_request(base + "/health")[::2], (200, b"ok"))
        url = self.smart_url(self.store.public, "hello/lintian-fixes")
        self.assertEqual(brz("revno", url).stdout.strip(), b"2")

    def assertUnchanged(self) -> None:
        self.assertStillServing()
        self.assertEqual(tree_digest(self.storage_dir), self.before)

    def stream_chunks(self) -> list[bytes]:
        """A real insert-stream body: the work branch's revisions."""
        branch = WorkingTree.open(self.work).branch
        repo = branch.repository
        with repo.lock_read():
            source = repo._get_source(repo._format)
            stream = source.get_stream(
                vf_search.PendingAncestryResult([branch.last_revision()], repo)
            )
            return list(_stream_to_byte_stream(stream, repo._format))

    def digest_outside(self, codebase: str) -> dict[str, str]:
        """Checksums of everything but ``codebase`` (and the test's own files)."""
        digests = {
            name: tree_digest(os.path.join(self.storage_dir, name))
            for name in os.listdir(self.storage_dir)
            if name != codebase and os.path.isdir(os.path.join(self.storage_dir, name))
        }
        for path in self.secrets:
            with open(path, "rb") as f:
                digests[path] = f.read()
        return digests

    def assertSound(self, codebase: str, revnos: dict[str, int]) -> None:
        """``brz check`` passes on the codebase; its branches are at ``revnos``."""
        proc = brz("check", os.path.join(self.storage_dir, codebase), check=False)
        self.assertEqual(proc.returncode, 0, self.out(proc))
        for location, revno in revnos.items():
            url = self.smart_url(self.store.public, f"{codebase}/{location}")
            self.assertEqual(brz("revno", url).stdout.strip(), str(revno).encode())

    def faces(self) -> list[tuple[str, str]]:
        """``(name, base URL of branches)`` of both faces."""
        return [("admin", self.store.admin), ("public", self.store.public)]

    def smart_post(self, url: str, body: bytes) -> bytes:
        """POST ``body`` to a smart URL (``http://...``); the raw response."""
        path = "/" + url.split("//", 1)[1].split("/", 1)[1]
        head = f"POST {path} HTTP/1.1\r\nContent-Length: {len(body)}".encode()
        return hostile.raw_http(url, head, body)

    def assertIncomplete(self, raw: bytes) -> None:
        """A 200 with the smart error breezy's own app sends for a body its
        decoder wants more of."""
        status, _, body = hostile.split_response(raw)
        self.assertEqual((status, body), (200, INCOMPLETE_RESPONSE), raw[:200])

    def assertSmartRefusal(self, raw: bytes, what: object) -> None:
        """A 4xx, or a 200 carrying a smart error response."""
        status, _, body = hostile.split_response(raw)
        self.assertClean(raw, what)
        if 400 <= status < 500:
            return
        self.assertEqual(status, 200, f"{what}: {raw[:300]!r}")
        ok, args = hostile.decode_response(body)
        self.assertFalse(ok, f"{what}: answered {args!r}")
