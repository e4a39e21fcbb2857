"""Lock leases: a worker that walks away from a lock does not lock others out.

Two workers push over the public face.  worker-1 takes the branch lock and
walks away: once it has been silent for the lease, worker-2's push breaks
the lock (logged with who held it) and succeeds.  A worker that keeps using
its lock past the lease (requests spaced under it, or an insert stream
whose body trickles in) keeps it, and completes.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import unittest

from breezy import errors, lockdir
from breezy.branch import Branch
from breezy.bzr.groupcompress_repo import RepositoryFormat2a
from breezy.bzr.smart.repository import _stream_to_byte_stream
from breezy.bzr.vf_search import PendingAncestryResult

from .. import leases, locks
from ..app import StoreApp
from ..auth import add_worker
from ..config import ConfigError
from ..serve import ServeSettings
from ..smart import SMALL_BODY_LIMIT
from . import hostile
from .fixtures import (
    FREE_PORTS,
    PASSWORD,
    WORKER,
    StoreTestCase,
    brz,
    http_request,
    start_serve,
    wait_for,
)
from .test_auth import write_authentication_conf

#: The second worker, who finds worker-1's lock in its way.
OTHER = "worker-2"
OTHER_PASSWORD = "battery staple"
LOCATION = "hello/lintian-fixes"
#: A short lease, so that the tests outlast it.
LEASE = 2

#: A breezy client that takes the branch lock and exits without unlocking.
WALK_AWAY = """\
import os, sys
import breezy
breezy.initialize()
import breezy.bzr
from breezy.branch import Branch
Branch.open(sys.argv[1]).lock_write()
os._exit(0)
"""


class LeaseTestCase(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store_with_worker(
            campaigns=["lintian-fixes"], lock_lease=LEASE
        )
        add_worker(self.path("credentials"), OTHER, OTHER_PASSWORD)
        # brz's own credentials are worker-1's; worker-2's are in its URLs
        write_authentication_conf(self.store.public, WORKER, PASSWORD)
        self.work = self.push_branch(self.store, LOCATION)
        # The server waits this long for a held lock (breezy's default is
        # 30 s), so a refused writer is told quickly.
        saved = lockdir._DEFAULT_TIMEOUT_SECONDS
        lockdir._DEFAULT_TIMEOUT_SECONDS = 1
        self.addCleanup(setattr, lockdir, "_DEFAULT_TIMEOUT_SECONDS", saved)

    def url(self, worker: str = WORKER) -> str:
        """The branch's smart URL on the public face, as ``worker``."""
        if worker == WORKER:
            return self.smart_url(self.store.public, LOCATION)
        host = self.store.public.split("//", 1)[1]
        password = OTHER_PASSWORD.replace(" ", "%20")
        return f"bzr+http://{worker}:{password}@{host}/{LOCATION}"

    def listed(self) -> dict | None:
        """The branch lock as ``GET /hello/locks`` lists it, if held."""
        status, _, body = http_request(self.store.admin + "/hello/locks")
        self.assertEqual(status, 200, body)
        found = [h for h in json.loads(body) if h["location"] == LOCATION]
        return found[0] if found else None

    def assertRivalRefused(self) -> None:
        """worker-2 cannot take the branch lock: it is held."""
        rival = hostile.smart_client(self.url(OTHER))
        with self.assertRaises(errors.ErrorFromSmartServer) as caught:
            rival.call(b"Branch.lock_write", b".", b"", b"")
        self.assertEqual(caught.exception.error_tuple[0], b"LockContention")

    def wait_half_lease(self) -> None:
        """Wait until the branch lock's holder has been silent for half
        the lease, as the store sees it."""
        wait_for(
            lambda: self.listed()["idle"] >= LEASE / 2,
            "half a lease of silence",
            interval=0.1,
        )

    def tip(self) -> bytes:
        return Branch.open(self.url()).last_revision()


class WalkedAwayTests(LeaseTestCase):
    def test_walked_away_lock_is_broken_after_the_lease(self) -> None:
        proc = subprocess.run(
            [sys.executable, "-c", WALK_AWAY, self.url()],
            capture_output=True,
            check=False,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        listed = self.listed()
        self.assertIsNotNone(listed, "the walked-away client left no lock")
        self.assertTrue(listed["holder"].startswith(WORKER + " on "), listed)
        # the listing shows the lease and when it expires
        self.assertEqual(listed["lease"], LEASE)
        self.assertLessEqual(listed["expires_in"], LEASE)
        self.assertRegex(listed["expires"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        wait_for(
            lambda: self.listed()["expires_in"] <= 0,
            "the lease to expire",
            interval=0.1,
        )
        self.commit(self.work)
        with self.assertLogs(locks.logger, "WARNING") as logs:
            brz("push", "-q", self.url(OTHER), cwd=self.work)
        self.assertIsNone(self.listed())
        self.assertEqual(self.tip(), Branch.open(self.work).last_revision())
        # who held it: the worker, its address, the request that took it
        (line,) = [m for m in logs.output if "expired lease" in m]
        self.assertIn(f"branch lock on {LOCATION}, held by {WORKER} on ", line)
        self.assertIn(f"for 127.0.0.1 in request {listed['request_id']}", line)
        self.assertIn(f"lease of {LEASE} s expired", line)

    def test_repository_lock_of_a_killed_request_expires(self) -> None:
        """The repository lock a request took (the store records packs
        under it) and never released, its process killed: after the lease,
        the next push breaks it."""
        from .. import holders

        storage = self.store.admin_app.storage
        repo = storage.transport("hello", writable=True, is_campaign=bool)
        with holders.acting_for(WORKER, "127.0.0.1"):
            lockdir.LockDir(repo, ".bzr/repository/lock").attempt_lock()

        def repository_lock() -> dict | None:
            body = http_request(self.store.admin + "/hello/locks")[2]
            found = [h for h in json.loads(body) if h["lock"] == locks.REPOSITORY]
            return found[0] if found else None

        self.assertEqual(repository_lock()["lease"], LEASE)
        wait_for(
            lambda: repository_lock()["expires_in"] <= 0,
            "the lease to expire",
            interval=0.1,
        )
        self.commit(self.work)
        with self.assertLogs(locks.logger, "WARNING") as logs:
            brz("push", "-q", self.url(OTHER), cwd=self.work)
        self.assertIn("expired lease of the repository lock on hello", logs.output[0])
        self.assertIsNone(repository_lock())
        self.assertEqual(self.tip(), Branch.open(self.work).last_revision())

    def test_without_a_lease_the_lock_stays(self) -> None:
        """Leases off (``--lock-lease 0``): the walked-away lock stays held."""
        self.store.public_app.lock_lease = None
        self.store.admin_app.lock_lease = None
        client = hostile.smart_client(self.url())
        client.call(b"Branch.lock_write", b".", b"", b"")
        listed = self.listed()
        self.assertIsNone(listed["lease"])
        self.assertIsNone(listed["expires"])
        wait_for(lambda: self.listed()["idle"] > LEASE, "a lease's silence")
        self.assertRivalRefused()


class ActiveHolderTests(LeaseTestCase):
    def test_holder_using_its_lock_keeps_it_past_the_lease(self) -> None:
        """worker-1 holds the lock for three leases, using it every half
        lease; worker-2 is refused throughout; worker-1's push completes."""
        holder = Branch.open(self.url())
        holder.lock_write()
        while self.listed()["age"] < 3 * LEASE:
            self.wait_half_lease()
            self.assertRivalRefused()
            # a request presenting the branch's lock token
            holder.set_last_revision_info(*holder.last_revision_info())
        listed = self.listed()
        self.assertGreater(listed["age"], LEASE)
        self.assertEqual(listed["lease"], LEASE)
        self.assertGreater(listed["expires_in"], 0)
        self.commit(self.work)
        local = Branch.open(self.work)
        local.push(holder)
        holder.unlock()
        self.assertIsNone(self.listed())
        self.assertEqual(self.tip(), local.last_revision())

    def start_insert_stream(self) -> tuple[http.client.HTTPConnection, list[bytes]]:
        """worker-1's insert stream of a new revision, as breezy's client
        sends it, started: its first 64 KiB sent and the insert begun.
        Returns the connection and the pieces left to send.  (Its body is
        larger than SMALL_BODY_LIMIT: a smaller one is read whole before
        its verb runs.)"""
        with open(os.path.join(self.work, "blob"), "wb") as f:
            f.write(os.urandom(SMALL_BODY_LIMIT + 512 * 1024))
        brz("add", "-q", cwd=self.work)
        brz("commit", "-q", "-m", "blob", cwd=self.work)
        local = Branch.open(self.work)
        message = hostile.encode_request(
            b"Repository.insert_stream_1.19",
            b"../",
            b"",
            chunks=_insert_stream(local, local.last_revision()),
        )
        conn = http.client.HTTPConnection(
            self.store.public.split("//")[1].split("/")[0]
        )
        self.addCleanup(conn.close)
        conn.putrequest("POST", f"/bzr/{LOCATION}/.bzr/smart")
        credentials = base64.b64encode(f"{WORKER}:{PASSWORD}".encode()).decode()
        conn.putheader("Authorization", f"Basic {credentials}")
        conn.putheader("Content-Length", str(len(message)))
        conn.endheaders()
        # (the store reads a large body 64 KiB at a time, each read in
        # steps of BODY_STEP bytes: each piece arriving shows progress)
        step = leases.BODY_STEP
        pieces = [message[i : i + step] for i in range(0, len(message), step)]
        first = 64 * 1024 // step
        conn.send(b"".join(pieces[:first]))
        # the verb is read and the insert has begun (its pack is made)
        upload = os.path.join(self.storage_dir, "hello", ".bzr", "repository", "upload")
        wait_for(lambda: os.listdir(upload), "the insert to begin")
        return conn, pieces[first:]

    def test_trickling_insert_stream_keeps_the_lock(self) -> None:
        """worker-1 takes the lock and sends its revisions in an insert
        stream whose body trickles in for longer than the lease: the lock
        is still its own when the stream ends and it unlocks."""
        client = hostile.smart_client(self.url())
        _, token, repo_token = client.call(b"Branch.lock_write", b".", b"", b"")
        self.wait_half_lease()
        conn, pieces = self.start_insert_stream()
        local = Branch.open(self.work)
        step = 0
        while pieces and self.listed()["age"] < 3 * LEASE:
            step += 1
            wait_for(
                lambda step=step: self.listed()["age"] >= step * LEASE / 2,
                "the stream to go on",
                interval=0.1,
            )
            self.assertRivalRefused()
            conn.send(pieces.pop(0))
        self.assertTrue(pieces, "the stream ended before it outlasted the lease")
        conn.send(b"".join(pieces))
        response = conn.getresponse()
        self.assertEqual(response.status, 200)
        ok, args = hostile.decode_response(response.read())
        self.assertTrue(ok, args)
        self.assertEqual(args, (b"ok",))
        # the token is still good: the lock was never broken
        self.assertRivalRefused()
        self.assertEqual(
            client.call(
                b"Branch.set_last_revision_info",
                b".",
                token,
                repo_token,
                str(local.revno()).encode(),
                local.last_revision(),
            ),
            (b"ok",),
        )
        self.assertEqual(
            client.call(b"Branch.unlock", b".", token, repo_token), (b"ok",)
        )
        self.assertIsNone(self.listed())
        self.assertEqual(self.tip(), local.last_revision())

    def test_stalled_insert_stream_does_not_keep_the_lock(self) -> None:
        """worker-1's insert stream stops mid-body, its connection open (a
        host gone without a reset): that is silence, and the lease expires."""
        client = hostile.smart_client(self.url())
        client.call(b"Branch.lock_write", b".", b"", b"")
        conn, _ = self.start_insert_stream()
        wait_for(
            lambda: self.listed()["expires_in"] <= 0,
            "the lease to expire",
            interval=0.1,
        )
        rival = hostile.smart_client(self.url(OTHER))
        with self.assertLogs(locks.logger, "WARNING"):
            answer = rival.call(b"Branch.lock_write", b".", b"", b"")
        self.assertEqual(answer[0], b"ok", answer)
        self.assertTrue(self.listed()["holder"].startswith(OTHER + " on "))
        rival.call(b"Branch.unlock", b".", answer[1], answer[2])
        conn.close()  # the stream ends short: its insert is undone


def _insert_stream(branch: Branch, revid: bytes) -> list[bytes]:
    """The body of an insert stream of ``revid`` and its ancestry, as
    breezy's client sends it."""
    repo = branch.repository
    with repo.lock_read():
        source = repo._get_source(RepositoryFormat2a())
        stream = source.get_stream(PendingAncestryResult([revid], repo))
        return list(_stream_to_byte_stream(stream, repo._format))


class ProcessesTests(StoreTestCase):
    def test_lease_renewed_in_one_process_holds_in_another(self) -> None:
        """Two ``serve`` processes on one storage directory: a holder using
        its lock through one keeps it against a writer of the other, who
        waits; the holder pushes and unlocks, then the writer gets it."""
        servers = [
            start_serve(
                self, "-d", self.storage_dir, "--lock-lease", str(LEASE), *FREE_PORTS
            )[1]
            for _ in range(2)
        ]
        url, rival_url = (self.smart_url(s, LOCATION) for s in servers)
        work = self.make_branch()
        brz("push", "-q", url, cwd=work)

        def listed() -> dict:
            status, _, body = http_request(servers[1] + "/hello/locks")
            self.assertEqual(status, 200, body)
            return json.loads(body)[0]

        holder = Branch.open(url)
        holder.lock_write()
        while listed()["age"] < 2 * LEASE:
            wait_for(
                lambda: listed()["idle"] >= LEASE / 2, "half a lease", interval=0.1
            )
            holder.set_last_revision_info(*holder.last_revision_info())
        # the other process sees the lease renewed
        self.assertEqual(listed()["lease"], LEASE)
        self.assertGreater(listed()["expires_in"], 0)
        # a writer of the other process waits for the lock (the server
        # waits up to 30 s), while the holder goes on using it
        answers = []
        rival = hostile.smart_client(rival_url)

        def take() -> None:
            try:
                answers.append(rival.call(b"Branch.lock_write", b".", b"", b""))
            except errors.ErrorFromSmartServer as e:
                answers.append(e.error_tuple)

        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 60)
        while thread.is_alive() and listed()["age"] < 4 * LEASE:
            wait_for(
                lambda: listed()["idle"] >= LEASE / 2, "half a lease", interval=0.1
            )
            holder.set_last_revision_info(*holder.last_revision_info())
        self.assertEqual(answers, [], "the writer broke the lock in use")
        self.commit(work)
        local = Branch.open(work)
        local.push(holder)
        holder.unlock()
        thread.join(60)
        # the writer had waited: the lock is now its own
        (answer,) = answers
        self.assertEqual(answer[0], b"ok", answer)
        self.assertEqual(listed()["nonce"], answer[1].decode())
        rival.call(b"Branch.unlock", b".", answer[1], answer[2])
        self.assertEqual(Branch.open(rival_url).last_revision(), local.last_revision())


class LeaseSettingTests(StoreTestCase):
    def test_option_environment_default(self) -> None:
        directory = self.storage_dir
        resolve = ServeSettings.resolve
        self.assertEqual(resolve(directory=directory).lock_lease, leases.DEFAULT_LEASE)
        self.assertLessEqual(leases.DEFAULT_LEASE, 300)
        self.assertEqual(resolve(directory=directory, lock_lease="30").lock_lease, 30)
        for off in ("0", "off", "OFF"):
            self.assertIsNone(resolve(directory=directory, lock_lease=off).lock_lease)
        os.environ["BZR_STORE_LOCK_LEASE"] = "off"
        self.addCleanup(os.environ.pop, "BZR_STORE_LOCK_LEASE", None)
        self.assertIsNone(resolve(directory=directory).lock_lease)
        self.assertEqual(resolve(directory=directory, lock_lease="5").lock_lease, 5)
        os.environ["BZR_STORE_LOCK_LEASE"] = "soon"
        with self.assertRaisesRegex(ConfigError, "BZR_STORE_LOCK_LEASE: 'soon'"):
            resolve(directory=directory)
        for bad in ("-1", "inf", "nan", "x"):
            with self.assertRaisesRegex(ConfigError, "--lock-lease"):
                resolve(directory=directory, lock_lease=bad)
        self.assertIn(
            "lock lease: 30 s", resolve(directory=directory, lock_lease="30").describe()
        )
        self.assertIsNone(StoreApp(directory, lock_lease=0).lock_lease)
        self.assertEqual(StoreApp(directory).lock_lease, leases.DEFAULT_LEASE)


class HolderMatchTests(unittest.TestCase):
    """An insert stream renews the branch lock of the worker and address
    that took it, however its record was stamped."""

    def test_stamped_records_match_their_holder_only(self) -> None:
        from breezy.lockdir import LockHeldInfo

        from .. import holders
        from ..layout import Location

        record = LockHeldInfo.for_this_process(None).to_bytes()
        for worker in ("worker-1", 'w\u00f6rker "x": #y', None):
            for client in ("127.0.0.1", "::1"):
                with self.subTest(worker=worker, client=client):
                    with holders.acting_for(worker, client):
                        stamped = holders.stamp(record)

                    def holds(
                        w: str | None, c: str | None, raw: bytes = stamped
                    ) -> bool:
                        request = leases.RequestLeases(
                            None, Location("hello", "lintian-fixes"), LEASE, w, c
                        )
                        return request._holds(raw)

                    self.assertTrue(holds(worker, client))
                    self.assertFalse(holds("someone-else", client))
                    self.assertFalse(holds(worker, "10.0.0.9"))
                    self.assertFalse(holds(worker, None))
