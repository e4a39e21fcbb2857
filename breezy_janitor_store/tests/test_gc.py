"""``brz janitor-store gc``: abandoned uploads and obsolete packs.

A store killed in the middle of a push leaves the push's pack in
``.bzr/repository/upload/`` for good; ``gc`` removes it once it is old
enough, never the files of a write group in progress, and ``brz check``
stays clean.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from breezy import errors
from breezy.commit import NullCommitReporter
from breezy.lockdir import LockDir
from breezy.repository import Repository
from breezy.workingtree import WorkingTree

from ..store.gc import DEFAULT_OLDER_THAN, UPLOAD_MIN_AGE, collect
from ..store.patches.packing import PACK_LOCK
from ..store.storage import Storage
from .support.fixtures import (
    FREE_PORTS,
    StoreTestCase,
    brz,
    brz_command,
    plugin_env,
    start_serve,
    wait_for,
)

CODEBASE = "hello"
#: Size of the file whose push is cut short.
BIG = 48 * 1024 * 1024
TWO_DAYS = 2 * 24 * 3600


class GcTestCase(StoreTestCase):
    def repository_dir(self, *parts: str) -> str:
        return os.path.join(self.storage_dir, CODEBASE, ".bzr", "repository", *parts)

    def listing(self, directory: str) -> list[str]:
        try:
            return sorted(os.listdir(self.repository_dir(directory)))
        except FileNotFoundError:
            return []

    def backdate(self, directory: str, seconds: float) -> None:
        """Make the files of ``directory`` look modified ``seconds`` ago."""
        when = time.time() - seconds
        for name in self.listing(directory):
            os.utime(self.repository_dir(directory, name), (when, when))

    def gc(self, *args: str) -> str:
        proc = brz(
            "janitor-store", "gc", "-d", self.storage_dir, *args, env=plugin_env()
        )
        return proc.stdout.decode()

    def assertChecked(self) -> None:
        proc = brz("check", os.path.join(self.storage_dir, CODEBASE), check=False)
        self.assertEqual(proc.returncode, 0, self.out(proc))
        self.assertNotIn(b"error", proc.stderr.lower())

    def suspended_write_group(self) -> list[str]:
        """Leave a suspended write group in the codebase's repository (as a
        push does between two of its requests); its resume tokens."""
        repo = Repository.open(os.path.join(self.storage_dir, CODEBASE))
        with repo.lock_write():
            repo.start_write_group()
            repo.texts.add_lines((b"file-id", b"rev-id"), [], [b"content\n"])
            return repo.suspend_write_group()


class KilledPushTests(GcTestCase):
    def test_gc_removes_the_upload_of_a_push_cut_by_a_killed_store(self) -> None:
        proc, admin, _ = start_serve(
            self, "-d", self.storage_dir, *FREE_PORTS, "--gc-interval", "0"
        )
        url = f"bzr+{admin}/{CODEBASE}/lintian-fixes"
        work = self.make_branch()
        brz("push", "-q", url, cwd=work)
        tree = WorkingTree.open(work)
        with open(os.path.join(work, "big"), "wb") as f:
            f.write(os.urandom(BIG))
        tree.add(["big"])
        tip = tree.commit("big", reporter=NullCommitReporter())
        push = subprocess.Popen(
            [*brz_command(), "push", "-q", url],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(push.wait)

        def streaming() -> bool:
            for name in self.listing("upload"):
                try:
                    if os.path.getsize(self.repository_dir("upload", name)) > 1 << 20:
                        return True
                except FileNotFoundError:
                    pass
            return False

        wait_for(streaming, "the push's pack to grow in upload/")
        proc.send_signal(signal.SIGKILL)  # the store dies mid-push
        proc.wait()
        self.assertNotEqual(push.wait(120), 0)
        left = self.listing("upload")
        self.assertTrue(left)
        # a restarted store takes the push; the cut upload stays behind
        admin = start_serve(self, "-d", self.storage_dir, *FREE_PORTS)[1]
        brz("push", "-q", f"bzr+{admin}/{CODEBASE}/lintian-fixes", cwd=work)
        self.assertEqual(self.listing("upload"), left)
        # young: kept, even when asked for everything
        out = self.gc("--older-than", "0")
        self.assertIn("kept 1 recent uploads", out)
        self.assertIn("freed 0 bytes in 0 files", out)
        self.assertEqual(self.listing("upload"), left)
        # old: removed, and reported
        self.backdate("upload", TWO_DAYS)
        out = self.gc()
        self.assertIn(f"{CODEBASE}: {len(left)} files (", out)
        self.assertIn("from upload/", out)
        self.assertRegex(out, r"freed [0-9.]+ MiB in [0-9]+ files")
        self.assertEqual(self.listing("upload"), [])
        self.assertChecked()
        out = brz("revision-info", "-d", f"bzr+{admin}/{CODEBASE}/lintian-fixes")
        self.assertEqual(out.stdout.split()[1], tip)

    def test_gc_refuses_an_unknown_codebase(self) -> None:
        proc = brz(
            "janitor-store",
            "gc",
            "-d",
            self.storage_dir,
            "nope",
            env=plugin_env(),
            check=False,
        )
        self.assertEqual(proc.returncode, 3)
        self.assertIn(b"no codebase nope", proc.stderr)


class CollectTests(GcTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store()
        self.storage = Storage(self.storage_dir)
        self.work = self.make_branch()
        self.url = self.smart_url(self.store.admin, f"{CODEBASE}/lintian-fixes")
        brz("push", "-q", self.url, cwd=self.work)

    def test_a_suspended_write_group_is_kept_until_old(self) -> None:
        tokens = self.suspended_write_group()
        self.assertTrue(self.listing("upload"))
        report = collect(self.storage, older_than=0)
        self.assertEqual((report.files, report.kept_uploads), (0, 1))
        # a day later nobody resumed it: removed, and it cannot be resumed
        later = time.time() + DEFAULT_OLDER_THAN + 1
        self.assertEqual(collect(self.storage, now=later - 60).files, 0)
        report = collect(self.storage, now=later)
        self.assertGreater(report.files, 0)
        self.assertEqual(self.listing("upload"), [])
        repo = Repository.open(os.path.join(self.storage_dir, CODEBASE))
        with repo.lock_write():
            self.assertRaises(
                errors.UnresumableWriteGroup, repo.resume_write_group, tokens
            )
        self.assertChecked()

    def test_upload_min_age_holds_whatever_older_than_says(self) -> None:
        self.suspended_write_group()
        now = time.time() + UPLOAD_MIN_AGE - 60
        self.assertEqual(collect(self.storage, older_than=0, now=now).files, 0)

    def test_obsolete_packs_are_removed_and_the_repository_stays_whole(self) -> None:
        for _ in range(2):
            self.commit(self.work)
            brz("push", "-q", self.url, cwd=self.work)
        # packing moves the packs it combines to obsolete_packs (as an autopack)
        brz("pack", os.path.join(self.storage_dir, CODEBASE))
        obsolete = self.listing("obsolete_packs")
        self.assertTrue(obsolete)
        self.assertEqual(collect(self.storage).files, 0)  # younger than a day
        report = collect(self.storage, [CODEBASE], older_than=0)
        self.assertEqual(report.files, len(obsolete))
        self.assertEqual(self.listing("obsolete_packs"), [])
        self.assertChecked()
        brz("branch", "-q", self.url, self.path("copy"))
        self.commit(self.work)
        brz("push", "-q", self.url, cwd=self.work)

    def test_a_planted_symlink_stops_only_its_codebase(self) -> None:
        """gc reports a codebase it cannot collect, collects the others,
        and exits non-zero at the end."""
        other = self.smart_url(self.store.admin, "other/lintian-fixes")
        brz("push", "-q", other, cwd=self.work)
        outside = self.path("outside")
        os.makedirs(os.path.join(outside, "sub"))
        os.makedirs(self.repository_dir("upload"), exist_ok=True)
        os.symlink(outside, self.repository_dir("upload", "dir"))
        self.suspended_write_group()  # an upload of "hello", kept (recent)
        other_upload = os.path.join(
            self.storage_dir, "other", ".bzr", "repository", "upload"
        )
        os.makedirs(other_upload, exist_ok=True)
        stale = os.path.join(other_upload, "0" * 32 + ".pack")
        with open(stale, "wb") as f:
            f.write(b"abandoned")
        when = time.time() - TWO_DAYS
        os.utime(stale, (when, when))
        proc = brz(
            "janitor-store",
            "gc",
            "-d",
            self.storage_dir,
            "--older-than",
            "0",
            env=plugin_env(),
            check=False,
        )
        self.assertEqual(proc.returncode, 1, self.out(proc))
        self.assertIn(b"hello: not collected:", proc.stdout)
        self.assertFalse(os.path.exists(stale))  # "other" was collected
        self.assertTrue(os.path.isdir(os.path.join(outside, "sub")))

    def test_a_codebase_whose_pack_lock_is_held_is_skipped(self) -> None:
        repo = Repository.open(os.path.join(self.storage_dir, CODEBASE))
        lock = LockDir(repo.controldir.transport.clone("repository"), PACK_LOCK)
        lock.attempt_lock()
        try:
            # nothing to remove: not even looked at under the lock
            self.assertEqual(collect(self.storage).busy, [])
            self.suspended_write_group()
            self.backdate("upload", TWO_DAYS)
            report = collect(self.storage)
        finally:
            lock.unlock()
        self.assertEqual((report.files, report.busy), (0, [CODEBASE]))
        self.assertIn(f"{CODEBASE}: skipped, its pack lock is held", report.lines())
        self.assertGreater(collect(self.storage).files, 0)


class PeriodicGcTests(GcTestCase):
    def test_serve_collects_every_gc_interval(self) -> None:
        work = self.make_branch()
        admin = start_serve(
            self, "-d", self.storage_dir, *FREE_PORTS, "--gc-interval", "0.2"
        )[1]
        brz("push", "-q", f"bzr+{admin}/{CODEBASE}/lintian-fixes", cwd=work)
        self.suspended_write_group()
        self.assertTrue(self.listing("upload"))
        self.backdate("upload", TWO_DAYS)
        wait_for(lambda: not self.listing("upload"), "the periodic gc")
        self.assertChecked()
