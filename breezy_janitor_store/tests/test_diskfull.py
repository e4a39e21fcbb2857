"""Disk full, read-only or permission denied while a push writes.

Where the test may mount (root, or passwordless ``sudo``), the storage
directory is a small ``tmpfs``: the kernel's own ``ENOSPC`` and, remounted
read-only, ``EROFS``.  Everywhere, a disk transport that fails on demand
(``ENOSPC``, ``EACCES``) at chosen points of a push covers the rest.  The
client must get a clear error naming no server path, the repository must
pass ``brz check`` with the branch at its old tip and no upload left, and
once the disk is writable again a push must succeed.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
from typing import ClassVar

from breezy import urlutils
from breezy.transport.local import LocalTransport

from ..store.storage import Storage
from ..web.app import ADMIN, StoreApp
from ..web.server import make_server
from .support.fixtures import StoreTestCase, brz

CAMPAIGNS = ["lintian-fixes"]


def _mount_command() -> list[str] | None:
    """How to run ``mount`` here: directly as root, or with ``sudo -n``."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if (
        sudo
        and subprocess.run(
            [sudo, "-n", "true"], check=False, capture_output=True
        ).returncode
        == 0
    ):
        return [sudo, "-n"]
    return None


class _FaultyTransport(LocalTransport):
    """The local disk, whose writes fail while ``fault(method, path)`` says.

    The error carries the disk path, as the kernel's do: the client must
    never see it.
    """

    fault = None  # callable(method, abspath) -> errno or None
    #: Bytes a new file may take before "write" faults apply.
    FREE = 64 * 1024

    def _check(self, method: str, relpath: str) -> None:
        path = self._abspath(relpath)
        code = self.fault(method, path) if self.fault else None
        if code:
            raise OSError(code, os.strerror(code), path)

    def put_file(self, relpath, f, mode=None):
        self._check("put", relpath)
        return super().put_file(relpath, f, mode)

    def put_bytes(self, relpath, raw_bytes, mode=None):
        self._check("put", relpath)
        return super().put_bytes(relpath, raw_bytes, mode)

    def append_bytes(self, relpath, data, mode=None):
        self._check("append", relpath)
        return super().append_bytes(relpath, data, mode)

    def mkdir(self, relpath, mode=None):
        self._check("mkdir", relpath)
        return super().mkdir(relpath, mode)

    def rename(self, rel_from, rel_to):
        self._check("rename", rel_to)
        return super().rename(rel_from, rel_to)

    def move(self, rel_from, rel_to):
        self._check("rename", rel_to)
        return super().move(rel_from, rel_to)

    def open_write_stream(self, relpath, mode=None):
        stream = super().open_write_stream(relpath, mode)
        check = self._check
        write = stream.write
        written = [0]

        def failing_write(data: bytes) -> None:
            # like a disk filling up: the first bytes of a pack still fit
            if written[0] + len(data) > self.FREE:
                check("write", relpath)
            written[0] += len(data)
            write(data)

        stream.write = failing_write
        return stream


class _FaultyStorage(Storage):
    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.fault = None

    def _codebase_transport(self, codebase: str):
        transport = _FaultyTransport(
            urlutils.local_path_to_url(self.path(codebase)) + "/"
        )
        transport.fault = lambda method, path: self.fault and self.fault(method, path)
        return transport


class DiskTestCase(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.work = self.make_branch(revisions=1)

    def serve(self, storage: Storage) -> str:
        """Serve the admin face on ``storage``; the push URL of the branch."""
        app = StoreApp(face=ADMIN, storage=storage, campaigns=CAMPAIGNS)
        server = make_server(app, "127.0.0.1", 0)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        port = server.server_address[1]
        return f"bzr+http://127.0.0.1:{port}/hello/lintian-fixes"

    def grow(self, size: int) -> None:
        with open(os.path.join(self.work, f"blob{size}"), "wb") as f:
            f.write(os.urandom(size))
        brz("add", "-q", cwd=self.work)
        brz("commit", "-q", "-m", "grow", cwd=self.work)

    def assertRefusedCleanly(self, proc, *reasons: str) -> None:
        """The push failed with one of ``reasons``, no server path in sight."""
        out = self.out(proc)
        self.assertNotEqual(proc.returncode, 0, out)
        self.assertTrue(any(r in out for r in reasons), out)
        self.assertNotIn(self.storage_dir, out)
        self.assertNotIn(os.path.realpath(self.storage_dir), out)

    def assertConsistent(self, url: str, revno: int, upload: bool = True) -> None:
        proc = brz("check", os.path.join(self.storage_dir, "hello"), check=False)
        self.assertEqual(proc.returncode, 0, self.out(proc))
        self.assertEqual(brz("revno", url).stdout.strip(), str(revno).encode())
        if upload:  # the aborted write group took its pack away
            path = os.path.join(
                self.storage_dir, "hello", ".bzr", "repository", "upload"
            )
            self.assertEqual(os.listdir(path), [])


class RealFilesystemTests(DiskTestCase):
    """A small tmpfs: the kernel's own disk-full and read-only errors."""

    def setUp(self) -> None:
        super().setUp()
        self.mount = _mount_command()
        if self.mount is None:
            # Not silently: the fault-injection tests below run everywhere.
            self.skipTest(
                "mounting a tmpfs needs root or passwordless sudo; "
                "FaultInjectionTests cover the same paths"
            )
        self.mounted(
            "-t", "tmpfs", "-o", f"size=8m,mode=0777,uid={os.getuid()}", "tmpfs"
        )
        self.addCleanup(self.mounted, "-l", umount=True)
        self.url = self.serve(Storage(self.storage_dir))
        brz("push", "-q", self.url, cwd=self.work)

    def mounted(self, *args: str, umount: bool = False) -> None:
        command = "umount" if umount else "mount"
        subprocess.run(
            [*self.mount, command, *args, self.storage_dir],
            check=True,
            capture_output=True,
        )

    def test_disk_full(self) -> None:
        self.grow(12 * 1024 * 1024)  # more than the whole filesystem
        proc = brz("push", self.url, cwd=self.work, check=False)
        self.assertRefusedCleanly(proc, "No space left on device")
        self.assertConsistent(self.url, 1)
        # space back (the big revision dropped): the store takes pushes again
        brz("uncommit", "-q", "--force", cwd=self.work)
        brz("revert", "-q", "--no-backup", cwd=self.work)
        os.remove(os.path.join(self.work, "blob12582912"))
        self.grow(64 * 1024)
        brz("push", "-q", self.url, cwd=self.work)
        self.assertConsistent(self.url, 2)

    def test_read_only_filesystem(self) -> None:
        self.grow(64 * 1024)
        self.mounted("-o", "remount,ro")
        proc = brz("push", self.url, cwd=self.work, check=False)
        self.assertRefusedCleanly(proc, "Read-only file system")
        self.assertConsistent(self.url, 1)
        self.mounted("-o", "remount,rw")
        brz("push", "-q", self.url, cwd=self.work)
        self.assertConsistent(self.url, 2)


class FaultInjectionTests(DiskTestCase):
    """Writes failing on demand at each stage of a push."""

    #: (what fails, where, errno, the client's reason).  Once a new pack
    #: is whole, breezy leaves it in upload/ when a later step fails: the
    #: repository does not refer to it (brz check passes), it is garbage.
    CASES: ClassVar[list] = [
        ("write", "/upload/", errno.ENOSPC, "No space left on device"),
        ("rename", "/packs/", errno.ENOSPC, "No space left on device"),
        ("put", "/pack-names", errno.EACCES, "Permission denied"),
        ("put", "/last-revision", errno.EACCES, "Permission denied"),
        ("mkdir", "/lock/", errno.EACCES, "Permission denied"),
        ("put", "/branch/", errno.EROFS, "Read-only file system"),
    ]

    def test_each_stage(self) -> None:
        storage = _FaultyStorage(self.storage_dir)
        url = self.serve(storage)
        writes = []
        storage.fault = lambda method, path: writes.append((method, path))
        brz("push", "-q", url, cwd=self.work)
        # a new pack is renamed into place, never copied there
        self.assertIn("rename", {m for m, p in writes if "/packs/" in p})
        self.assertNotIn("put", {m for m, p in writes if "/packs/" in p})
        revno = 1
        for method, where, code, reason in self.CASES:
            with self.subTest(method=method, where=where):
                self.grow(256 * 1024)
                storage.fault = lambda m, p, method=method, where=where, code=code: (
                    code if m == method and where in p else None
                )
                proc = brz("push", url, cwd=self.work, check=False)
                storage.fault = None
                self.assertRefusedCleanly(proc, reason, "Could not acquire lock")
                self.assertConsistent(url, revno, upload=method == "write")
                # writable again: the push goes through
                brz("push", "-q", url, cwd=self.work)
                revno = int(brz("revno", cwd=self.work).stdout)
                self.assertConsistent(url, revno, upload=False)
