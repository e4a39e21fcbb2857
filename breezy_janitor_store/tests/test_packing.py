"""The pack lock (``.bzr/repository/pack-lock``): held, dead and stale holders.

A holder on another host that is still packing keeps the lock; one that
died on this host is taken over (breezy's ``locks.steal_dead``); one held
longer than :data:`~breezy_janitor_store.store.patches.packing.STALE_AFTER` (a host that
died) is broken and logged.  The many-process behaviour is in
``tests/test_multiprocess.py``.
"""

from __future__ import annotations

import os
import subprocess
import time

from breezy.errors import LockContention
from breezy.lockdir import LockDir, LockHeldInfo
from breezy.osutils import get_host_name, rand_chars

from ..store import layout
from ..store.patches.packing import PACK_LOCK, STALE_AFTER, pack_lock
from ..store.storage import Storage
from .support.fixtures import StoreTestCase

CODEBASE = "hello"


class PackLockTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        storage = Storage(self.storage_dir)
        storage.ensure_repository(CODEBASE)
        self.repository = storage.transport(
            CODEBASE, writable=True, is_campaign=layout.is_valid_name
        ).clone(layout.CONTROL + "/repository")

    def plant(self, **info) -> None:
        """A pack lock held as ``info`` says (as another process left it)."""
        held = os.path.join(
            self.storage_dir, CODEBASE, ".bzr", "repository", PACK_LOCK, "held"
        )
        os.makedirs(held)
        record = {
            "hostname": "another-host",
            "pid": 4242,
            "nonce": rand_chars(20),
            "start_time": int(time.time()),
            "user": "janitor-store",
            **info,
        }
        with open(os.path.join(held, "info"), "wb") as f:
            f.write(LockHeldInfo(record).to_bytes())

    def holder(self):
        return LockDir(self.repository, PACK_LOCK).peek()

    def test_taken_and_released(self) -> None:
        with pack_lock(self.repository) as held:
            self.assertTrue(held)
            self.assertIsNotNone(self.holder())
            with pack_lock(self.repository) as again:
                self.assertFalse(again)  # one holder, even in one process
        self.assertIsNone(self.holder())

    def test_a_live_holder_elsewhere_keeps_it(self) -> None:
        self.plant()
        with pack_lock(self.repository) as held:
            self.assertFalse(held)
        with self.assertRaises(LockContention), pack_lock(self.repository, wait=0.1):
            pass
        self.assertEqual(self.holder().get("hostname"), "another-host")

    def test_a_stale_holder_is_broken(self) -> None:
        self.plant(start_time=int(time.time() - STALE_AFTER - 60))
        logs = self.assertLogs("breezy_janitor_store.store.patches.packing", "WARNING")
        with logs as logged, pack_lock(self.repository) as held:
            self.assertTrue(held)
            self.assertEqual(self.holder().get("hostname"), get_host_name())
        self.assertIn("stale pack lock", logged.output[0])
        self.assertIsNone(self.holder())

    def test_a_dead_holder_on_this_host_is_taken_over(self) -> None:
        dead = subprocess.Popen(["true"])
        dead.wait()
        holder = LockHeldInfo.for_this_process(None)
        self.plant(hostname=get_host_name(), pid=dead.pid, user=holder.get("user"))
        with pack_lock(self.repository) as held:
            self.assertTrue(held)
