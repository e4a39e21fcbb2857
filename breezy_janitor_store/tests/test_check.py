"""``brz janitor-store check`` and ``backup`` on a real store: planted damage
of each kind is found; a backup taken while pushes go on is clean."""

from __future__ import annotations

import json
import os
import threading

from ..store.backup import backup_store
from ..store.check import check_store
from ..store.storage import Storage
from .support.fixtures import StoreTestCase, brz, plugin_env


class CheckTest(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store()
        self.work = self.push_branch(self.store, "sound/camp")
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "damaged/camp"),
            cwd=self.work,
        )
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "damaged/camp/role"),
            cwd=self.work,
        )

    def check(self, *args: str) -> tuple[int, str]:
        proc = brz(
            "janitor-store", "check", "-d", self.storage_dir, *args,
            env=plugin_env(), check=False,
        )  # fmt: skip
        return proc.returncode, self.out(proc)

    def problems(self, codebase: str = "damaged") -> list[tuple[str, str, str]]:
        (report,) = check_store(Storage(self.storage_dir, sync=False), [codebase])
        return [(p.where, p.kind, p.message) for p in report.problems]

    def damaged(self, *parts: str) -> str:
        return os.path.join(self.storage_dir, "damaged", *parts)

    def write(self, data: bytes, *parts: str) -> None:
        with open(self.damaged(*parts), "wb") as f:
            f.write(data)

    def assert_found(self, kind: str, where: str, text: str = "") -> None:
        found = self.problems()
        self.assertTrue(
            any(k == kind and w == where and text in m for w, k, m in found), found
        )
        self.assertEqual([], self.problems("sound"))

    def test_sound_store_is_clean(self) -> None:
        code, out = self.check()
        self.assertEqual(0, code, out)
        self.assertIn("2 codebases checked, no problems", out)

    def test_every_problem_of_every_codebase_is_reported(self) -> None:
        self.write(b"x", "stray")
        self.write(b"x", "camp", "role", ".bzr", "branch", "nested")
        code, out = self.check()
        self.assertEqual(1, code, out)
        self.assertIn("damaged: stray: layout:", out)
        self.assertIn("damaged: camp/role/.bzr/branch/nested: layout:", out)
        self.assertIn("1 damaged: damaged", out)
        code, out = self.check("--json", "damaged")
        document = json.loads(out)
        self.assertFalse(document["clean"])
        self.assertEqual(2, len(document["codebases"]["damaged"]["problems"]))

    def test_stray_files_and_symlinks(self) -> None:
        self.write(b"x", "camp", "file")
        os.symlink("/etc", self.damaged("camp", "link"))
        found = {w for w, k, _ in self.problems() if k == "layout"}
        self.assertEqual({"camp/file", "camp/link"}, found)

    def test_a_symlinked_codebase_is_reported_not_checked(self) -> None:
        outside = self.path("outside")
        os.makedirs(os.path.join(outside, ".bzr"))
        os.symlink(self.damaged(), os.path.join(self.storage_dir, "linked"))
        os.symlink(outside, os.path.join(self.storage_dir, "linked-out"))
        code, out = self.check()
        self.assertEqual(1, code, out)
        self.assertIn("linked: .: symlink: a symbolic link, not a codebase", out)
        self.assertIn("linked-out: .: symlink:", out)

    def test_branch_reference(self) -> None:
        self.write(
            b"Bazaar-NG Branch Reference Format 1\n",
            "camp",
            "role",
            ".bzr",
            "branch",
            "format",
        )
        self.write(
            b"http://example.com/\n", "camp", "role", ".bzr", "branch", "location"
        )
        self.assert_found("references", "camp/role/.bzr/branch/location")
        self.assert_found("references", "camp/role")

    def test_stacking_and_options_outside_the_allowed_set(self) -> None:
        self.write(
            b"stacked_on_location = /elsewhere\n",
            "camp",
            ".bzr",
            "branch",
            "branch.conf",
        )
        self.write(
            b"upload_location = /tmp/x\n",
            "camp",
            "role",
            ".bzr",
            "branch",
            "branch.conf",
        )
        self.assert_found(
            "references", "camp/.bzr/branch/branch.conf", "stacked_on_location"
        )
        self.assert_found(
            "references", "camp/role/.bzr/branch/branch.conf", "upload_location"
        )

    def test_tip_missing_from_the_repository(self) -> None:
        self.write(
            b"7 missing-revision-id\n", "camp", ".bzr", "branch", "last-revision"
        )
        self.assert_found("branch", "camp", "missing from the repository")

    def test_pack_names_naming_a_missing_pack(self) -> None:
        packs = self.damaged(".bzr", "repository", "packs")
        os.unlink(os.path.join(packs, os.listdir(packs)[0]))
        self.assert_found(
            "repository", ".bzr/repository/pack-names", "which is missing"
        )

    def test_truncated_index_and_pack_names(self) -> None:
        indices = self.damaged(".bzr", "repository", "indices")
        rix = next(n for n in os.listdir(indices) if n.endswith(".rix"))
        with open(os.path.join(indices, rix), "r+b") as f:
            f.truncate(10)
        self.assert_found(
            "repository", f".bzr/repository/indices/{rix}", "pack-names records"
        )
        with open(self.damaged(".bzr", "repository", "pack-names"), "r+b") as f:
            f.truncate(20)
        self.assert_found("repository", ".bzr/repository/pack-names", "unreadable")

    def test_upload_leftovers(self) -> None:
        leftover = self.damaged(".bzr", "repository", "upload", "abc.pack")
        self.write(b"partial", ".bzr", "repository", "upload", "abc.pack")
        self.assertEqual([], self.problems())  # a push may be writing it
        os.utime(leftover, (1, 1))
        self.assert_found("upload", ".bzr/repository/upload/abc.pack")

    def test_damaged_codebase_is_answered_clearly(self) -> None:
        packs = self.damaged(".bzr", "repository", "packs")
        os.unlink(os.path.join(packs, os.listdir(packs)[0]))
        proc = brz(
            "log", "-r-1", self.smart_url(self.store.admin, "damaged/camp"), check=False
        )
        self.assertEqual(3, proc.returncode, self.out(proc))
        self.assertIn("the repository of this codebase is damaged", self.out(proc))
        self.assertNotIn(self.storage_dir, self.out(proc))
        brz("log", "-r-1", self.smart_url(self.store.admin, "sound/camp"))


class BackupTest(StoreTestCase):
    def test_backup_under_concurrent_pushes_is_consistent(self) -> None:
        store = self.start_store()
        work = self.push_branch(store, "code/camp")
        pushed = threading.Event()
        stop = threading.Event()
        failures: list[str] = []

        def push() -> None:
            try:
                while not stop.is_set():
                    self.commit(work)
                    brz(
                        "push", "-q", self.smart_url(store.admin, "code/camp"), cwd=work
                    )
                    pushed.set()
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(str(e))
                pushed.set()

        thread = threading.Thread(target=push)
        thread.start()
        dest = self.path("backup")
        reports = []
        try:
            for _ in range(4):
                pushed.wait(120)
                pushed.clear()
                reports.append(backup_store(Storage(self.storage_dir), dest))
                (result,) = check_store(Storage(dest, sync=False))
                self.assertEqual([], result.problems)
        finally:
            stop.set()
            thread.join(300)
        self.assertEqual([], failures)
        for report in reports:
            self.assertEqual([], report.failed)
        # later backups link only what changed
        later = reports[-1].codebases[0]
        self.assertGreater(later.kept, 0)
        self.assertGreater(later.linked, 0)
        # restoring is serving the copy
        proc = brz(
            "janitor-store", "backup", "-d", self.storage_dir, dest,
            env=plugin_env(), check=False,
        )  # fmt: skip
        self.assertEqual(0, proc.returncode, self.out(proc))
        restored = StoreTestCase.start_store.__get__(self)
        self.storage_dir = dest
        copy = restored()
        brz(
            "branch",
            "-q",
            self.smart_url(copy.admin, "code/camp"),
            self.path("restored"),
        )
        self.assertEqual(
            brz("revision-info", cwd=work).stdout,
            brz("revision-info", cwd=self.path("restored")).stdout,
        )
