"""Concurrent writers and crashed clients, with the real ``brz``.

* ten clients push different revisions to one branch at once;
* ten clients push to ten campaigns of one codebase at once;
* a client is SIGKILLed at random points of a large push, many times.

Afterwards ``brz check`` passes on the repository and every branch is at
a tip some client pushed (never in between).  ``CRASH_TRIALS`` and
``CRASH_SEED`` tune the crash trials (default 20, seed 6).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

from breezy.commit import NullCommitReporter
from breezy.workingtree import WorkingTree

from ..store.layout import Location
from ..store.locks import break_lock, list_locks
from .support.concurrency import CLIENTS, CONTENTION, ConcurrencyTestCase
from .support.fixtures import brz, brz_command


class ConcurrentPushTests(ConcurrencyTestCase):
    def test_ten_clients_one_branch(self) -> None:
        brz("push", "-q", self.url("hello/lintian-fixes"), cwd=self.work)
        variants = self.variants(CLIENTS)
        results = self.push_all(
            [(path, self.url("hello/lintian-fixes")) for path, _ in variants]
        )
        succeeded = [tip for (_, tip), r in zip(variants, results) if r.returncode == 0]
        for r in results:
            if r.returncode != 0:
                self.assertTrue(
                    any(c in self.out(r) for c in CONTENTION),
                    f"neither success nor lock contention: {self.out(r)}",
                )
        self.assertTrue(succeeded)
        self.store.wait_idle()
        # the branch is at one of the tips pushed successfully
        self.assertIn(self.tip("hello/lintian-fixes"), succeeded)
        self.assertEqual(list_locks(self.store.admin_app.storage, "hello"), [])
        self.assertChecked("hello")

    def test_ten_clients_ten_campaigns(self) -> None:
        variants = self.variants(CLIENTS)
        results = self.push_all(
            [
                (path, self.url(f"hello/campaign{i}"))
                for i, (path, _) in enumerate(variants)
            ]
        )
        for r in results:
            self.assertEqual(r.returncode, 0, self.out(r))
        self.store.wait_idle()
        for i, (_, tip) in enumerate(variants):
            self.assertEqual(self.tip(f"hello/campaign{i}"), tip)
        # one shared repository holds them all
        self.assertEqual(
            sorted(os.listdir(os.path.join(self.storage_dir, "hello"))),
            sorted([".bzr"] + [f"campaign{i}" for i in range(CLIENTS)]),
        )
        self.assertEqual(list_locks(self.store.admin_app.storage, "hello"), [])
        self.assertChecked("hello")


class CrashTests(ConcurrencyTestCase):
    """``brz push`` SIGKILLed at random points (seeded), again and again."""

    trials = int(os.environ.get("CRASH_TRIALS", "20"))
    seed = int(os.environ.get("CRASH_SEED", "6"))

    def grow(self, tree: WorkingTree, rng: random.Random, size: int) -> bytes:
        """Commit ``size`` new incompressible bytes; the new tip."""
        name = f"blob-{rng.randrange(1 << 30)}"
        with open(os.path.join(tree.basedir, name), "wb") as f:
            f.write(rng.randbytes(size))
        tree.add([name])
        return tree.commit("grow", reporter=NullCommitReporter())

    def test_sigkill_at_random_points(self) -> None:
        rng = random.Random(self.seed)
        tree = WorkingTree.open(self.work)
        url = self.url("hello/lintian-fixes")
        storage = self.store.admin_app.storage
        brz("push", "-q", url, cwd=self.work)
        old = tree.branch.last_revision()
        # calibrate: how long a whole push of one step takes here at best
        # (the fastest of three, so that most trials are cut short even
        # when the machine is busy and pushes take longer)
        times = []
        for _ in range(3):
            start = time.monotonic()
            self.grow(tree, rng, 1024 * 1024)
            brz("push", "-q", url, cwd=self.work)
            times.append(time.monotonic() - start)
        whole = min(times)
        old = tree.branch.last_revision()
        outcomes: dict[str, int] = {"killed": 0, "completed": 0, "lock left": 0}
        for trial in range(self.trials):
            new = self.grow(tree, rng, 1024 * 1024)
            delay = rng.uniform(0.0, whole * 1.2)
            proc = subprocess.Popen(
                [*brz_command(), "push", "-q", "--overwrite", url],
                cwd=self.work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                proc.wait(timeout=delay)
                outcomes["completed"] += 1
                self.assertEqual(proc.returncode, 0, proc.stderr.read())
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                outcomes["killed"] += 1
            finally:
                proc.stderr.close()
            self.store.wait_idle()
            what = f"trial {trial} (seed {self.seed}, killed after {delay:.2f} s)"
            tip = self.tip("hello/lintian-fixes")
            self.assertIn(tip, (old, new), what)
            self.assertChecked("hello")
            upload = os.path.join(
                self.storage_dir, "hello", ".bzr", "repository", "upload"
            )
            self.assertEqual(os.listdir(upload), [], what)
            held = list_locks(storage, "hello")
            if held:  # killed between lock and unlock: the stale-lock story
                self.assertEqual(
                    [h.location for h in held], ["hello/lintian-fixes"], what
                )
                break_lock(storage, Location("hello", "lintian-fixes"))
                outcomes["lock left"] += 1
            old = tip
        # the store still takes pushes, and the last one lands whole
        brz("push", "-q", "--overwrite", url, cwd=self.work)
        self.assertEqual(self.tip("hello/lintian-fixes"), tree.branch.last_revision())
        self.assertChecked("hello")
        self.assertGreater(outcomes["killed"], self.trials // 2, outcomes)
        if os.environ.get("BJS_REPORT_COUNTS"):
            print(f"\ncrash trials: {self.trials} {outcomes}")
