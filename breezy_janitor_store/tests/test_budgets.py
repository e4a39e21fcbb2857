"""Budgets that hold against the slowest and most negative client, and fair
shares of the stream budget between workers.

Real stores on loopback, raw smart requests (``tests/hostile.py``) and the
real ``brz``; slots are watched on the :class:`StreamBudget` the store runs.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import threading

from breezy.branch import Branch
from breezy.bzr.smart.repository import _stream_to_byte_stream
from breezy.bzr.vf_search import PendingAncestryResult

from ..policy.auth import BasicAuth, CredentialsFile, add_worker
from ..smart.overrides import BUFFERED_READ_LIMIT, MAX_READV_RANGES
from ..smart.verbs import SMALL_BODY_LIMIT
from ..store.budget import VFS_READ_LIMIT, StreamBudget
from ..web.metrics import REGISTRY
from .support import hostile
from .support.auth import write_authentication_conf
from .support.fixtures import StoreTestCase, brz, http_request, wait_for
from .support.metrics import scrape, value

_PUBLIC_SMART = "/bzr/hello/lintian-fixes/.bzr/smart"
_ADMIN_SMART = "/hello/lintian-fixes/.bzr/smart"
MIB = 1024 * 1024


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _open_request(
    test: StoreTestCase,
    base: str,
    path: str,
    message: bytes,
    sent: int,
    headers: dict[str, str] | None = None,
) -> socket.socket:
    """A connection that sent a smart request's head and the first ``sent``
    bytes of ``message`` (whose whole length it announced), then nothing."""
    host, port = base.split("//", 1)[1].split("/", 1)[0].split(":")
    s = socket.create_connection((host, int(port)), timeout=120)
    test.addCleanup(s.close)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    s.sendall(
        (
            f"POST {path} HTTP/1.1\r\nHost: x\r\n{extra}"
            f"Content-Length: {len(message)}\r\n\r\n"
        ).encode()
        + message[:sent]
    )
    return s


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends on ``sock`` until it closes it."""
    sock.settimeout(120)
    chunks = []
    try:
        while data := sock.recv(1 << 16):
            chunks.append(data)
    except OSError:
        pass
    return b"".join(chunks)


def _call(base: str, path: str, message: bytes) -> tuple[int, bytes]:
    status, _, body = http_request(base + path, data=message)
    return status, body


def _insert_stream(branch: str, part: int = 64 * 1024) -> list[bytes]:
    """The repository stream of a local branch's history, as a client sends
    it in ``Repository.insert_stream_1.19``, in body parts of ``part`` bytes."""
    b = Branch.open(branch)
    repo = b.repository
    with repo.lock_read():
        source = repo._get_source(repo._format)
        stream = source.get_stream(PendingAncestryResult([b.last_revision()], repo))
        data = b"".join(_stream_to_byte_stream(stream, repo._format))
    return [data[i : i + part] for i in range(0, len(data), part)]


def _big_commit(test: StoreTestCase, work: str, size: int = 16 * MIB) -> None:
    with open(os.path.join(work, "big"), "wb") as f:
        f.write(os.urandom(size))  # incompressible
    brz("add", "-q", "big", cwd=work)
    brz("commit", "-q", "-m", "big", cwd=work)


class ReadvRangeTests(StoreTestCase):
    """``readv`` ranges are checked before anything is read."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store()
        work = self.make_branch()
        with open(os.path.join(work, "data"), "wb") as f:
            f.write(os.urandom(4 * MAX_READV_RANGES))
        brz("add", "-q", "data", cwd=work)
        brz("commit", "-q", "-m", "data", cwd=work)
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes"),
            cwd=work,
        )
        packs = os.path.join(self.storage_dir, "hello", ".bzr", "repository", "packs")
        self.pack = f".bzr/repository/packs/{os.listdir(packs)[0]}".encode()
        self.size = os.path.getsize(os.path.join(packs, os.listdir(packs)[0]))

    def readv(self, body: bytes) -> tuple[bool, tuple]:
        status, answer = _call(
            self.store.public,
            "/hello/.bzr/smart",
            hostile.encode_request(b"readv", self.pack, body=body),
        )
        self.assertEqual(status, 200, answer[:300])
        return hostile.decode_response(answer)

    def assertRefused(self, body: bytes, reason: bytes) -> None:
        ok, args = self.readv(body)
        self.assertFalse(ok, args)
        self.assertEqual(args[0], b"PermissionDenied", args)
        self.assertIn(reason, args[2])

    def test_negative_and_empty_ranges_are_refused(self) -> None:
        # breezy reads a whole file for a length of -1: once per range
        self.assertRefused(b"0,-1\n" * 1000, b"LENGTH > 0")
        self.assertRefused(b"-5,10", b"START >= 0")
        self.assertRefused(b"0,0", b"LENGTH > 0")

    def test_range_count_and_form_are_bounded(self) -> None:
        self.assertRefused(b"0,1\n" * (MAX_READV_RANGES + 1), b"at most 10000 ranges")
        self.assertRefused(b"0,1\n1,x", b"START,LENGTH")
        self.assertRefused(b"0,1,2", b"START,LENGTH")
        self.assertRefused(
            b"0,%d\n0,%d" % (VFS_READ_LIMIT, VFS_READ_LIMIT), b"at most 5242880"
        )

    def test_what_breezy_asks_is_answered(self) -> None:
        self.assertGreater(self.size, 2 * MAX_READV_RANGES)
        every_other = b"\n".join(b"%d,1" % (2 * i) for i in range(MAX_READV_RANGES))
        ok, args = self.readv(every_other)
        self.assertEqual((ok, args), (True, (b"readv",)))
        ok, args = self.readv(b"0,10\n20,5")
        self.assertEqual((ok, args), (True, (b"readv",)))
        ok, args = self.readv(b"%d,10" % self.size)
        self.assertFalse(ok)
        self.assertEqual(args[0], b"ShortReadvError", args)


class StalledBodyTests(StoreTestCase):
    """A request body that does not arrive holds no slot, unless it is a
    writer's insert stream moving at least the minimum rate."""

    def setUp(self) -> None:
        super().setUp()
        self.budget = StreamBudget(1, wait=0.5, stall_window=3600)
        self.store = self.start_store(stream_budget=self.budget)
        self.work = self.push_branch(self.store, "hello/lintian-fixes")
        self.url = self.smart_url(self.store.admin, "hello/lintian-fixes")

    def get_stream(self) -> bytes:
        return hostile.encode_request(
            b"Repository.get_stream_1.19",
            b"../",
            hostile.format_names()["repository"],
            body=b"ancestry-of\n" + b"null:\n" * 40_000,
        )

    def test_stalled_get_stream_bodies_take_no_slot(self) -> None:
        message = self.get_stream()  # 240 kB: more than the first read
        for _ in range(2):
            _open_request(self, self.store.public_root, _PUBLIC_SMART, message, 100_000)
        copy = self.path("copy")
        brz("branch", "-q", self.url, copy)  # 503 if it waited for a slot
        self.assertEqual(self.budget.in_use, 0)

    def test_a_refused_insert_stream_takes_no_slot(self) -> None:
        """An anonymous insert stream on the read-only public face is refused
        before the budget, whether its body is small or large."""
        small = hostile.encode_request(
            b"Repository.insert_stream_1.19", b"../", b"", b"", chunks=[b"x" * 200_000]
        )
        large = hostile.encode_request(
            b"Repository.insert_stream_1.19",
            b"../",
            b"",
            b"",
            chunks=[b"x" * (SMALL_BODY_LIMIT + 200_000)],
        )
        stalled = [
            _open_request(self, self.store.public_root, _PUBLIC_SMART, small, 100_000)
            for _ in range(2)
        ]
        refused = _open_request(
            self, self.store.public_root, _PUBLIC_SMART, large, 100_000
        )
        status, _, body = hostile.split_response(_answer(refused))
        self.assertEqual(status, 413, body)
        self.commit(self.work)
        brz("push", "-q", self.url, cwd=self.work)  # 503 if it waited
        self.assertEqual(self.budget.writers, 0)
        # the small ones, once whole, are answered ReadOnlyError
        stalled[0].sendall(small[100_000:])
        status, _, body = hostile.split_response(_answer(stalled[0]))
        self.assertEqual(status, 200)
        self.assertEqual(hostile.decode_response(body), (False, (b"ReadOnlyError",)))

    def test_a_writer_slower_than_the_floor_is_cut(self) -> None:
        self.budget.stall_window = 1.0
        _big_commit(self, self.work)
        parts = _insert_stream(self.work)
        message = hostile.encode_request(
            b"Repository.insert_stream_1.19", b"../", b"", b"", chunks=parts
        )
        self.assertGreater(len(message), 2 * SMALL_BODY_LIMIT)
        upload = os.path.join(self.storage_dir, "hello", ".bzr", "repository", "upload")
        held = _open_request(
            self, self.store.admin, _ADMIN_SMART, message, len(message) // 2
        )
        wait_for(lambda: os.listdir(upload), "the insert to start its write group")
        wait_for(lambda: self.budget.writers == 0, "the stalled writer to be cut")
        self.assertEqual(os.listdir(upload), [])  # its write group aborted
        held.shutdown(socket.SHUT_WR)
        status, _, body = hostile.split_response(_answer(held))
        self.assertEqual(status, 408, body)
        self.assertIn(b"too slow", body)
        # the repository lock was given back: a push goes through
        self.budget.stall_window = 3600
        brz("push", "-q", self.url, cwd=self.work)
        self.assertEqual(brz("revno", self.url).stdout.strip(), b"2")


class FileLevelAnswerTests(StoreTestCase):
    """``get`` and ``readv`` answers larger than a small buffer hold a
    reader slot and are read from disk as the client takes them."""

    def setUp(self) -> None:
        super().setUp()
        self.budget = StreamBudget(1, wait=0.5, stall_window=3600)
        self.store = self.start_store(stream_budget=self.budget)
        work = self.make_branch()
        _big_commit(self, work, 4 * MIB)
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes"),
            cwd=work,
        )
        packs = os.path.join(self.storage_dir, "hello", ".bzr", "repository", "packs")
        name = max(os.listdir(packs), key=lambda n: os.path.getsize(f"{packs}/{n}"))
        self.pack = f".bzr/repository/packs/{name}".encode()
        with open(os.path.join(packs, name), "rb") as f:
            self.content = f.read()
        self.assertGreater(len(self.content), 3 * MIB)

    def test_a_reader_that_never_reads_holds_a_slot_not_memory(self) -> None:
        get = hostile.encode_request(b"get", self.pack)
        stalled = socket.socket()
        self.addCleanup(stalled.close)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, port = self.store.public_root.split("//")[1].split(":")
        stalled.connect((host, int(port)))
        stalled.sendall(
            f"POST /bzr/hello/.bzr/smart HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(get)}\r\n\r\n".encode()
            + get
        )
        wait_for(lambda: self.budget.in_use == 1, "the answer to take a slot")
        # another large answer waits its turn, then is refused
        status, body = _call(self.store.public, "/hello/.bzr/smart", get)
        self.assertEqual(status, 503, body)
        # small answers are buffered, without a slot
        status, body = _call(
            self.store.public,
            "/hello/.bzr/smart",
            hostile.encode_request(b"get", b".bzr/repository/format"),
        )
        self.assertEqual(hostile.decode_response(body)[0], True)
        stalled.close()
        wait_for(lambda: self.budget.in_use == 0, "the slot to be given back")

    def test_streamed_answers_are_the_file(self) -> None:
        status, body = _call(
            self.store.public,
            "/hello/.bzr/smart",
            hostile.encode_request(b"get", self.pack),
        )
        self.assertEqual(status, 200)
        self.assertEqual(_body_bytes(body), self.content)
        ranges = [(10, BUFFERED_READ_LIMIT), (MIB, 2 * MIB), (5, 3)]
        status, body = _call(
            self.store.public,
            "/hello/.bzr/smart",
            hostile.encode_request(
                b"readv",
                self.pack,
                body=b"\n".join(b"%d,%d" % r for r in ranges),
            ),
        )
        self.assertEqual(status, 200)
        self.assertEqual(
            _body_bytes(body), b"".join(self.content[s : s + n] for s, n in ranges)
        )
        self.assertEqual(self.budget.in_use, 0)


def _body_bytes(answer: bytes) -> bytes:
    """The body of a successful v3 smart response."""
    recorder = hostile._Recorder()
    decoder = hostile.protocol.ProtocolThreeDecoder(
        recorder, expect_version_marker=True
    )
    decoder.accept_bytes(answer)
    if recorder.status != b"S":
        raise AssertionError(f"not a success: {recorder.structures}")
    return b"".join(recorder.body)


class FairShareTests(StoreTestCase):
    """No worker holds every writer slot; a freed slot goes to the identity
    holding the fewest."""

    def test_one_worker_pushing_many_leaves_room_for_another(self) -> None:
        credentials = self.path("credentials")
        add_worker(credentials, "worker-1", "one")
        add_worker(credentials, "worker-2", "two")
        budget = StreamBudget(2, wait=0.5, stall_window=3600)
        store = self.start_store(
            stream_budget=budget,
            public={"write_policy": BasicAuth(CredentialsFile(credentials))},
        )
        work = self.push_branch(store, "hello/lintian-fixes")
        before = scrape(store.admin)
        # worker-1 sends four large insert streams at once, slowly
        message = hostile.encode_request(
            b"Repository.insert_stream_1.19",
            b"../",
            b"",
            b"",
            chunks=[b"x" * (SMALL_BODY_LIMIT + 200_000)],
        )
        auth = {"Authorization": _basic("worker-1", "one")}
        pushes = [
            _open_request(
                self, store.public_root, _PUBLIC_SMART, message, 100_000, auth
            )
            for _ in range(4)
        ]
        wait_for(lambda: budget.writers == 1, "worker-1 to hold its share")
        during = scrape(store.admin)
        # its other three queued behind, then were refused
        answered = wait_for(
            lambda: len(ready := select.select(pushes, [], [], 0)[0]) == 3 and ready,
            "three of the four to be answered",
        )
        answers = [hostile.split_response(_answer(s)) for s in answered]
        self.assertEqual([a[0] for a in answers], [503, 503, 503], answers)
        [holding] = set(pushes) - set(answered)
        # worker-2's push takes the slot left
        write_authentication_conf(store.public, "worker-2", "two")
        self.commit(work)
        public = self.smart_url(store.public, "hello/lintian-fixes")
        brz("push", "-q", public, cwd=work)
        self.assertEqual(brz("revno", public).stdout.strip(), b"2")
        self.assertEqual(budget.held(("worker", "worker-1"), writer=True), 1)
        after = scrape(store.admin)

        def delta(samples: dict, name: str) -> float:
            return value(samples, name, kind="writer") - value(
                before, name, kind="writer"
            )

        self.assertEqual(delta(during, "bzr_store_stream_slots_in_use"), 1)
        self.assertEqual(delta(during, "bzr_store_stream_holders"), 1)
        self.assertEqual(
            value(during, "bzr_store_stream_most_held_by_one", kind="writer"), 1
        )
        self.assertEqual(delta(after, "bzr_store_stream_refused_total"), 3)
        holding.close()
        wait_for(lambda: budget.writers == 0, "the stalled push to end")

    def test_a_freed_slot_goes_to_the_identity_holding_fewest(self) -> None:
        budget = StreamBudget(3, wait=60)  # each identity holds at most 2
        for holder in ("a", "a", "b"):
            self.assertTrue(budget.acquire(True, holder))
        granted: list[str] = []

        def waiters() -> float:
            return (
                REGISTRY.get_sample_value(
                    "bzr_store_stream_waiters", {"kind": "writer"}
                )
                or 0.0
            )

        def queued() -> float:
            return (
                REGISTRY.get_sample_value(
                    "bzr_store_stream_queued_total", {"kind": "writer"}
                )
                or 0.0
            )

        before, queued_before = waiters(), queued()

        def wait(holder: str) -> None:
            if budget.acquire(True, holder):
                granted.append(holder)

        threads = []
        for n, holder in enumerate(("a", "c", "b")):  # in this order
            threads.append(threading.Thread(target=wait, args=(holder,)))
            threads[-1].start()
            wait_for(lambda n=n: budget.waiting(True) == n + 1, "the queue")
        self.assertEqual(waiters() - before, 3)
        budget.release(True, "a")  # a: 1, b: 1, c: 0 -> c
        wait_for(lambda: granted == ["c"], "c to be served first")
        budget.release(True, "b")  # a: 1, b: 0, c: 1 -> b, before a's earlier
        wait_for(lambda: granted == ["c", "b"], "b to be served next")
        budget.release(True, "c")
        wait_for(lambda: granted == ["c", "b", "a"], "a last")
        for t in threads:
            t.join(10)
        self.assertEqual(budget.held("a", True), 2)
        self.assertEqual(waiters(), before)
        self.assertEqual(queued() - queued_before, 3)

    def test_trusted_clients_are_not_capped(self) -> None:
        budget = StreamBudget(2, wait=0.1)
        self.assertTrue(budget.acquire(True, "w"))
        self.assertFalse(budget.acquire(True, "w"))  # its share is 1
        self.assertTrue(budget.acquire(True, "admin", capped=False))
        budget.release(True, "w")
        self.assertTrue(budget.acquire(True, "admin", capped=False))
        self.assertEqual(budget.held("admin", True), 2)
