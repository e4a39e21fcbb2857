"""Locks the store takes on a client's behalf name the worker, its address
and the request, in the lock record and in the store's listing."""

from __future__ import annotations

import json
import os
import unittest

from breezy.lockdir import LockHeldInfo

from ..store import holders, locks
from .support import hostile
from .support.auth import write_authentication_conf
from .support.fixtures import PASSWORD, WORKER, StoreTestCase, http_request


class LockHolderTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store_with_worker(campaigns=["lintian-fixes"])
        write_authentication_conf(self.store.public, WORKER, PASSWORD)
        self.work = self.push_branch(self.store, "hello/lintian-fixes")

    def record(self) -> LockHeldInfo:
        return LockHeldInfo.from_info_file_bytes(
            self.branch_lock_record("hello/lintian-fixes")
        )

    def lock_branch(self, base: str) -> None:
        """Take the branch's lock through the face at ``base`` (released at
        cleanup), as a smart client does."""
        client = hostile.smart_client(self.smart_url(base, "hello/lintian-fixes"))
        _, token, repo_token = client.call(b"Branch.lock_write", b".", b"", b"")
        self.addCleanup(client.call, b"Branch.unlock", b".", token, repo_token)

    def test_worker_lock_names_the_worker_address_and_request(self) -> None:
        self.lock_branch(self.store.public)
        fields = holders.holder_fields(self.record())
        self.assertEqual(fields["user"], "worker-1")
        self.assertEqual(fields["client"], "127.0.0.1")
        self.assertRegex(fields["request_id"] or "", r"^[0-9a-f]{32}$")
        self.assertEqual(fields["pid"], str(os.getpid()))  # the store's process
        # the store's listing shows the worker
        (held,) = [
            h
            for h in locks.list_locks(self.store.admin_app.storage, "hello")
            if h.lock == locks.BRANCH
        ]
        self.assertTrue(held.holder.startswith("worker-1 on "), held.holder)
        self.assertEqual(held.client, "127.0.0.1")
        self.assertEqual(held.request_id, fields["request_id"])
        # ... as do the admin face's list and break-lock
        (listed,) = [
            h
            for h in json.loads(http_request(self.store.admin + "/hello/locks")[2])
            if h["lock"] == locks.BRANCH
        ]
        self.assertEqual(listed["client"], "127.0.0.1")
        self.assertEqual(listed["request_id"], fields["request_id"])
        self.assertIn(
            f"held by worker-1 on {held.holder.split(' on ', 1)[1]}, for 127.0.0.1 "
            f"in request {fields['request_id']}",
            held.describe(),
        )

    def test_admin_face_lock_names_the_address_and_request(self) -> None:
        self.lock_branch(self.store.admin)
        fields = holders.holder_fields(self.record())
        self.assertEqual(fields["client"], "127.0.0.1")
        self.assertTrue(fields["request_id"])

    def test_locks_taken_outside_requests_are_breezy_s_own(self) -> None:
        self.assertEqual(holders.stamp(b"nonce: x\n"), b"nonce: x\n")


class StampTests(unittest.TestCase):
    """A stamped record reads back as breezy's, with the holder's fields."""

    def check(self, record: bytes, worker: str | None, client: str | None) -> None:
        with holders.acting_for(worker, client):
            stamped = holders.stamp(record)
        want = dict(LockHeldInfo.from_info_file_bytes(record).info_dict)
        want.update({"request_id": "-", "user": worker or want["user"]})
        if client:
            want["client"] = client
        self.assertEqual(LockHeldInfo.from_info_file_bytes(stamped).info_dict, want)

    def test_records_read_back_with_the_holder(self) -> None:
        mine = LockHeldInfo.for_this_process(None)
        odd = LockHeldInfo.for_this_process({"user": "a 'b': #c\n\u00e9"})
        for record in (mine.to_bytes(), odd.to_bytes()):
            for worker, client in (
                ("worker-1", "127.0.0.1"),
                (None, "::1"),
                ('w\u00f6rker "x": #y', None),
                ("\\" * 3, "10.0.0.1"),
            ):
                with self.subTest(record=record, worker=worker):
                    self.check(record, worker, client)
