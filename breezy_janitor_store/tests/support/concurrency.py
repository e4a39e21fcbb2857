"""A store with several clients writing at once."""

from __future__ import annotations

import os
import subprocess

from breezy.commit import NullCommitReporter
from breezy.workingtree import WorkingTree

from .fixtures import StoreTestCase, brz, brz_command

CLIENTS = 10


CONTENTION = ("Could not acquire lock", "LockContention")


class ConcurrencyTestCase(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store()
        self.work = self.make_branch(revisions=2)

    def url(self, location: str) -> str:
        return self.smart_url(self.store.admin, location)

    def variants(self, count: int) -> list[tuple[str, bytes]]:
        """``count`` local branches, each base + one commit of its own."""
        base = WorkingTree.open(self.work)
        out = []
        for i in range(count):
            path = self.path(f"client{i}")
            tree = base.branch.controldir.sprout(path).open_workingtree()
            with open(os.path.join(path, f"own-{i}"), "wb") as f:
                f.write(os.urandom(64 * 1024))
            tree.add([f"own-{i}"])
            out.append(
                (path, tree.commit(f"client {i}", reporter=NullCommitReporter()))
            )
        return out

    def push_all(
        self, jobs: list[tuple[str, str]], overwrite: bool = True
    ) -> list[subprocess.CompletedProcess]:
        """Run ``brz push [--overwrite] URL`` in each directory, all at once."""
        options = ["--overwrite"] if overwrite else []
        procs = [
            subprocess.Popen(
                [*brz_command(), "push", "-q", *options, url],
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for cwd, url in jobs
        ]
        results = []
        for proc, (cwd, url) in zip(procs, jobs):
            out, err = proc.communicate(timeout=300)
            results.append(
                subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
            )
        return results

    def tip(self, location: str) -> bytes:
        out = brz("revision-info", "-d", self.url(location)).stdout.split()
        return out[1]

    def assertChecked(self, codebase: str) -> None:
        proc = brz("check", os.path.join(self.storage_dir, codebase), check=False)
        self.assertEqual(proc.returncode, 0, self.out(proc))
        self.assertNotIn(b"error", proc.stderr.lower())
