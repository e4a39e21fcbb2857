"""Stale locks: a client killed mid-push, the lock it leaves, breaking it.

The whole story with the real ``brz``: a push is SIGKILLed while it holds
the branch lock; the admin face lists the lock; a later push fails with
breezy's lock-contention error; the lock is broken (admin face, command
line, or the automatic policy) and the next push succeeds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import ClassVar

from breezy import lockdir

from ..store import locks
from ..store.layout import Location
from ..store.locks import break_lock, list_locks
from .support.fixtures import (
    StoreTestCase,
    brz,
    brz_command,
    http_request,
    plugin_env,
    wait_for,
)

CAMPAIGNS = ["lintian-fixes", "fresh-releases"]


class StaleLockTests(StoreTestCase):
    store_kwargs: ClassVar[dict | None] = None

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=CAMPAIGNS, **(self.store_kwargs or {}))
        self.work = self.make_branch(revisions=1)
        self.url = self.smart_url(self.store.admin, "hello/lintian-fixes")
        brz("push", "-q", self.url, cwd=self.work)
        self.storage = self.store.admin_app.storage
        # Make a push that lasts: a few MiB of incompressible data.
        with open(os.path.join(self.work, "blob"), "wb") as f:
            f.write(os.urandom(6 * 1024 * 1024))
        brz("add", "-q", cwd=self.work)
        brz("commit", "-q", "-m", "blob", cwd=self.work)
        # The server waits this long for a held lock before giving up
        # (breezy's default is 30 s: the contention check would be slow).
        saved = lockdir._DEFAULT_TIMEOUT_SECONDS
        lockdir._DEFAULT_TIMEOUT_SECONDS = 1
        self.addCleanup(setattr, lockdir, "_DEFAULT_TIMEOUT_SECONDS", saved)

    def kill_push_holding_lock(self, location: str = "hello/lintian-fixes") -> None:
        """Start ``brz push`` and SIGKILL it once it holds the branch lock."""
        url = self.smart_url(self.store.admin, location)
        proc = subprocess.Popen(
            [*brz_command(), "push", "-q", "--overwrite", url],
            cwd=self.work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(
                lambda: self.held(location) or proc.poll() is not None,
                "the push to take its lock",
            )
            self.assertIsNone(proc.poll(), "the push ended before it could be killed")
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
        # the server finishes what the client had sent (a request in flight
        # may still hold the repository's names lock), notices the client is
        # gone and aborts the insert
        self.store.wait_idle()
        wait_for(lambda: not os.listdir(self.upload_dir()), "the aborted upload to go")

    def upload_dir(self) -> str:
        return os.path.join(self.storage_dir, "hello", ".bzr", "repository", "upload")

    def held(self, location: str = "hello/lintian-fixes"):
        return [h for h in list_locks(self.storage, "hello") if h.location == location]

    def push(self, check: bool = True) -> subprocess.CompletedProcess:
        return brz("push", "-q", "--overwrite", self.url, cwd=self.work, check=check)

    def assertAtNewTip(self) -> None:
        self.assertEqual(brz("revno", self.url).stdout.strip(), b"2")
        self.assertEqual(
            brz("check", os.path.join(self.storage_dir, "hello")).returncode, 0
        )

    def locks_json(self) -> list:
        status, headers, body = http_request(self.store.admin + "/hello/locks")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Content-Type"], "application/json")
        return json.loads(body)

    def post_break(self, request: dict) -> tuple[int, bytes]:
        status, _, body = http_request(
            self.store.admin + "/hello/locks",
            data=json.dumps(request).encode(),
            method="POST",
        )
        return status, body


class BreakThroughAdminFaceTests(StaleLockTests):
    def test_kill_see_break_push(self) -> None:
        self.assertEqual(self.locks_json(), [])
        self.kill_push_holding_lock()
        # the lock is listed, with its holder and age
        [listed] = self.locks_json()
        self.assertEqual(listed["location"], "hello/lintian-fixes")
        self.assertEqual(listed["lock"], "branch")
        self.assertIn("process", listed["holder"])
        self.assertGreaterEqual(listed["age"], 0)
        # every later push fails on it, with breezy's lock-contention error
        proc = self.push(check=False)
        self.assertEqual(proc.returncode, 3, self.out(proc))
        self.assertIn("Could not acquire lock", self.out(proc))
        # refusals: wrong holding, nothing there, bad names, wrong codebase
        self.assertEqual(
            self.post_break({"location": "hello/lintian-fixes", "nonce": "x"})[0], 409
        )
        self.assertEqual(self.post_break({"location": "hello/fresh-releases"})[0], 404)
        self.assertEqual(self.post_break({"location": "hello/../etc"})[0], 400)
        self.assertEqual(self.post_break({"location": "other/lintian-fixes"})[0], 400)
        self.assertEqual(self.post_break({"older_than": "soon"})[0], 400)
        self.assertEqual(
            http_request(self.store.admin + "/hello/locks", data=b"[1]", method="POST")[
                0
            ],
            400,
        )
        self.assertEqual(self.held()[0].nonce, listed["nonce"])
        # the public face has no such route
        status = http_request(self.store.public + "/hello/locks")[0]
        self.assertEqual(status, 404)
        # break exactly the holding that was listed
        status, body = self.post_break(
            {"location": "hello/lintian-fixes", "nonce": listed["nonce"]}
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["broken"]["nonce"], listed["nonce"])
        self.assertEqual(self.locks_json(), [])
        self.push()
        self.assertAtNewTip()

    def test_repository_lock(self) -> None:
        """The shared repository's lock (held during pack updates) too."""
        repo = self.storage.transport("hello", writable=True, is_campaign=bool)
        held = lockdir.LockDir(repo, ".bzr/repository/lock")
        held.attempt_lock()  # as a server killed while recording packs
        [listed] = self.locks_json()
        self.assertEqual((listed["location"], listed["lock"]), ("hello", "repository"))
        self.assertEqual(self.post_break({})[0], 200)  # the codebase's own lock
        self.assertEqual(self.locks_json(), [])
        self.push()
        self.assertAtNewTip()


class BreakFromCommandLineTests(StaleLockTests):
    def test_break_lock_command(self) -> None:
        self.kill_push_holding_lock()
        cmd = ("janitor-store", "break-lock", "-d", self.storage_dir)
        env = plugin_env()
        # too young to break with --older-than
        out = brz(*cmd, "--older-than", "3600", "hello/lintian-fixes", env=env)
        self.assertIn(
            b"No lock older than 3600 s held on hello/lintian-fixes", out.stdout
        )
        self.assertTrue(self.held())
        proc = brz(*cmd, "hello/../etc", env=env, check=False)
        self.assertEqual(proc.returncode, 3, self.out(proc))
        proc = brz(*cmd, "nowhere/lintian-fixes", env=env, check=False)
        self.assertIn(b"no codebase nowhere", proc.stderr)
        out = brz(*cmd, "hello/lintian-fixes", env=env).stdout.decode()
        self.assertIn("Broke the branch lock on hello/lintian-fixes, held by", out)
        self.assertEqual(self.held(), [])
        out = brz(*cmd, "hello/lintian-fixes", env=env).stdout.decode()
        self.assertIn("No lock held on hello/lintian-fixes", out)
        self.push()
        self.assertAtNewTip()

    def test_role_branch(self) -> None:
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes/upstream"),
            cwd=self.work,
        )
        self.commit(self.work)
        self.kill_push_holding_lock("hello/lintian-fixes/upstream")
        self.assertEqual(
            [h.location for h in list_locks(self.storage, "hello")],
            ["hello/lintian-fixes/upstream"],
        )
        broken = break_lock(
            self.storage, Location("hello", "lintian-fixes", "upstream")
        )
        self.assertEqual(broken.lock, "branch")
        self.assertEqual(list_locks(self.storage, "hello"), [])


class AutomaticPolicyTests(StaleLockTests):
    store_kwargs: ClassVar[dict] = {"break_locks_older_than": 1}

    def test_stale_lock_is_broken_by_the_next_push(self) -> None:
        self.kill_push_holding_lock()
        self.assertTrue(self.held())
        # the lock records whole seconds: wait until it is surely over 1 s old
        wait_for(
            lambda: self.held() and self.held()[0].age > 2.5,
            "the lock to grow old",
            interval=0.1,
        )
        with self.assertLogs(locks.logger, "WARNING") as logs:
            self.push()
        self.assertIn("broke stale branch lock on hello/lintian-fixes", logs.output[0])
        self.assertAtNewTip()

    def test_young_lock_is_kept(self) -> None:
        self.store.admin_app.break_locks_older_than = 3600
        self.kill_push_holding_lock()
        proc = self.push(check=False)
        self.assertIn("Could not acquire lock", self.out(proc))
        self.assertTrue(self.held())
