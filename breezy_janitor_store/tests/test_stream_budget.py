"""Heavy streams share a per-process budget; the excess waits, then gets 503."""

from __future__ import annotations

import os
import socket
import threading

from ..serve import ServeSettings, build_apps
from ..smart.verbs import SMALL_BODY_LIMIT
from ..store.budget import StreamBudget
from .support import hostile
from .support.fixtures import StoreTestCase, brz, plugin_env, wait_for


class StreamBudgetTests(StoreTestCase):
    def test_a_long_held_reader_must_move_faster_while_another_waits(self) -> None:
        """The preemption rule: only for a reader, only past the grace
        period, only while a request waits that could take its slot (here
        of the same identity, as every anonymous client is one)."""
        budget = StreamBudget(1, wait=100, stall_window=10, min_rate=100)
        self.assertEqual((budget.preempt_after, budget.preempt_rate), (40, 1600))
        self.assertEqual(StreamBudget(1, wait=30).preempt_after, 15)
        floor = (100, 10)
        self.assertTrue(budget.acquire(holder="anonymous"))
        self.assertEqual(budget.pace(False, "anonymous", 0.0, now=1e6), floor)
        got: list[bool] = []
        waiter = threading.Thread(
            target=lambda: got.append(budget.acquire(holder="anonymous"))
        )
        waiter.start()
        wait_for(lambda: budget.waiting() == 1, "another reader waits")
        self.assertEqual(budget.pace(False, "anonymous", 0.0, now=39.0), floor)
        self.assertEqual(budget.pace(False, "anonymous", 0.0, now=41.0), (1600, 2.5))
        self.assertEqual(budget.pace(True, "anonymous", 0.0, now=1e6), floor)
        self.assertEqual(budget.pace(False, "admin", 0.0, now=1e6, capped=False), floor)
        budget.release(holder="anonymous")
        waiter.join()
        self.assertEqual(got, [True])
        budget.release(holder="anonymous")

    def test_excess_streams_wait_then_get_503_with_retry_after(self) -> None:
        budget = StreamBudget(1, wait=0.5, stall_window=3600)
        self.store = self.start_store(stream_budget=budget)
        work = self.make_branch()
        url = self.smart_url(self.store.admin, "hello/lintian-fixes")
        brz("push", "-q", url, cwd=work)
        self.assertEqual(budget.in_use, 0)

        # A writer's insert stream larger than a small body, whose body has
        # not all arrived, holds the one slot while the client keeps sending
        # (at least the budget's minimum rate).
        message = hostile.encode_request(
            b"Repository.insert_stream_1.19",
            b"../",
            b"",
            b"",
            chunks=[b"x" * (SMALL_BODY_LIMIT + 200_000)],
        )
        head = (
            "POST /hello/lintian-fixes/.bzr/smart HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(message)}\r\n\r\n"
        ).encode()
        host, port = self.store.admin.split("//")[1].split(":")
        held = socket.create_connection((host, int(port)), timeout=60)
        held.sendall(head + message[:100_000])
        wait_for(lambda: budget.in_use == 1, "the insert stream took the slot")

        # A branch's get_stream waits its turn, then is refused.
        get_stream = hostile.encode_request(
            b"Repository.get_stream_1.19",
            b"../",
            hostile.format_names()["repository"],
            body=b"ancestry-of\nnull:",
        )
        raw = hostile.raw_http(
            self.store.public,
            (
                "POST /bzr/hello/lintian-fixes/.bzr/smart HTTP/1.1\r\n"
                f"Content-Length: {len(get_stream)}"
            ).encode(),
            get_stream,
        )
        status, headers, body = hostile.split_response(raw)
        self.assertEqual(status, 503, raw[:300])
        self.assertEqual(headers.get("retry-after"), "10")
        self.assertIn(b"busy", body)
        proc = brz(
            "branch",
            self.smart_url(self.store.public, "hello/lintian-fixes"),
            self.path("refused"),
            check=False,
        )
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("503", self.out(proc))

        # The held stream ends (its client is gone): the slot is free again.
        held.close()
        wait_for(lambda: budget.in_use == 0, "the aborted insert gave its slot back")
        copy = self.path("copy")
        brz(
            "branch",
            "-q",
            self.smart_url(self.store.public, "hello/lintian-fixes"),
            copy,
        )
        self.assertEqual(brz("revno", copy).stdout.strip(), b"1")
        self.assertEqual(budget.in_use, 0)

    def test_default_budget_is_per_process_and_as_many_as_cpus(self) -> None:
        store = self.start_store()
        self.assertIs(store.admin_app.stream_budget, store.public_app.stream_budget)
        self.assertEqual(store.admin_app.stream_budget.slots, os.cpu_count())


class ServeStreamBudgetTests(StoreTestCase):
    def test_max_streams_sets_one_budget_for_both_faces(self) -> None:
        admin, public = build_apps(
            ServeSettings.resolve(directory=self.storage_dir, max_streams=3)
        )
        self.assertIs(admin.stream_budget, public.stream_budget)
        self.assertEqual(admin.stream_budget.slots, 3)

    def test_max_streams_must_be_positive(self) -> None:
        proc = brz(
            "janitor-store",
            "serve",
            "-d",
            self.storage_dir,
            "--max-streams",
            "0",
            env=plugin_env(),
            check=False,
        )
        self.assertEqual(proc.returncode, 3)
        self.assertEqual(
            proc.stderr.decode().strip(), "brz: ERROR: max-streams must be positive"
        )
