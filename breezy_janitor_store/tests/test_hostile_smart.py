"""Adversarial smart requests against the store's verb registry.

Each test drives a real server (a ``serve`` subprocess where the attack
could take the process down) with raw smart requests (``tests/hostile.py``)
or the real ``brz`` client.
"""

from __future__ import annotations

import os
import socket
import struct

from breezy import controldir, errors
from breezy.branch import Branch

from ..store.budget import VFS_READ_LIMIT, StreamBudget
from .support import hostile
from .support.fixtures import (
    FREE_PORTS,
    StoreTestCase,
    brz,
    http_request,
    start_serve,
    tree_digest,
    wait_for,
)

_SMART = "/bzr/hello/lintian-fixes/.bzr/smart"


def _v3(*parts: bytes) -> bytes:
    """A v3 request message of raw ``parts`` (kind byte and payload each)."""
    return b"bzr message 3 (bzr 1.6)\n" + b"".join(parts) + b"e"


def _structure(encoded: bytes) -> bytes:
    return b"s" + struct.pack("!L", len(encoded)) + encoded


def _headers(encoded: bytes = b"de") -> bytes:
    return struct.pack("!L", len(encoded)) + encoded


def _deep(depth: int) -> bytes:
    """A bencoded list nested ``depth`` deep."""
    return b"l" * depth + b"e" * depth


def _post(base: str, path: str, body: bytes) -> tuple[int, bytes]:
    raw = hostile.raw_http(
        base,
        f"POST {path} HTTP/1.1\r\nContent-Length: {len(body)}".encode(),
        body,
        timeout=120,
    )
    status, _, response = hostile.split_response(raw)
    return status, response


class MalformedArgumentsTests(StoreTestCase):
    """A request structure the client nests as deep as it likes is refused
    before anything hashes, compares or formats it; the server lives on."""

    def test_deep_structures_get_a_smart_error_and_the_server_survives(self) -> None:
        proc, admin, public = start_serve(self, "-d", self.storage_dir, *FREE_PORTS)
        brz("push", "-q", f"bzr+{admin}/hello/lintian-fixes", cwd=self.make_branch())
        verb = hostile.bencoded((b"BzrDir.open_2.1", b"."))
        cases = {
            # the verb itself is a 200,000-deep list (+ as deep as the
            # 4 MiB read before the verb allows)
            "deep verb": _v3(_headers(), _structure(_deep(200_000))),
            "deeper verb": _v3(_headers(), _structure(_deep(1_900_000))),
            "deep argument": _v3(
                _headers(), _structure(b"l15:BzrDir.open_2.1" + _deep(200_000) + b"e")
            ),
            "non-bytes verb": _v3(_headers(), _structure(b"li1ee")),
            "deep second structure": _v3(
                _headers(), _structure(verb), _structure(_deep(200_000))
            ),
            "deep headers": _v3(_headers(b"d1:x" + _deep(200_000) + b"e")),
        }
        for name, body in cases.items():
            with self.subTest(name):
                status, response = _post(public, _SMART, body)
                self.assertEqual(proc.poll(), None, "the server died")
                self.assertEqual(status, 200, response[:300])
                ok, args = hostile.decode_response(response)
                if name == "deep second structure":  # answered before it
                    self.assertTrue(ok, args)
                else:
                    self.assertFalse(ok)
                    self.assertEqual(args[0], b"error", args)
                self.assertEqual(hostile.leaks(response, self.tmp), [])
                self.assertNotIn(b"Recursion", response)
                self.assertEqual(http_request(admin + "/health")[0], 200)
        # the malformed verb and argument got the store's own answer
        for name in ("deep verb", "deep argument", "non-bytes verb"):
            ok, args = hostile.decode_response(_post(public, _SMART, cases[name])[1])
            self.assertIn(b"malformed request", args[1])
        copy = self.path("copy")
        brz("branch", "-q", f"bzr+{public}/bzr/hello/lintian-fixes", copy)


class InternalErrorsTests(StoreTestCase):
    """A failure that is not a breezy error reaches the client as a generic
    smart error; breezy's own errors keep their meaning."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store()
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes"),
            cwd=self.make_branch(),
        )

    def call(self, base: str, path: str, message: bytes) -> tuple[bool, tuple, bytes]:
        status, body = http_request(base + path, data=message)[0::2]
        self.assertEqual(status, 200, body[:300])
        ok, args = hostile.decode_response(body)
        return ok, args, body

    def test_python_errors_are_not_sent(self) -> None:
        admin, public = self.store.admin, self.store.public_root
        cases = [
            (public, _SMART, hostile.encode_request(b"hello", b"extra")),
            (
                admin,
                "/hello/lintian-fixes/.bzr/smart",
                hostile.encode_request(
                    b"Repository.insert_stream_1.19",
                    b"../",
                    b"",
                    b"",
                    chunks=[b"garbage"],
                ),
            ),
            (
                public,
                _SMART,
                hostile.encode_request(b"Repository.get_parent_map", b"../", 1, 2),
            ),
        ]
        for base, path, message in cases:
            with self.subTest(message[:80]):
                ok, args, body = self.call(base, path, message)
                self.assertFalse(ok)
                self.assertEqual(
                    args, (b"error", b"the server could not handle this request")
                )
                for python in (b"TypeError", b"positional argument", b" at 0x"):
                    self.assertNotIn(python, body)
        # breezy's errors keep their meaning
        ok, args, _ = self.call(
            self.store.public_root, _SMART, hostile.encode_request(b"get", b"nothing")
        )
        self.assertEqual((ok, args[0]), (False, b"NoSuchFile"))
        ok, args, _ = self.call(
            self.store.public_root, _SMART, hostile.encode_request(b"no.such.verb")
        )
        self.assertEqual(args, (b"UnknownMethod", b"no.such.verb"))


def _initialize_ex(network_name: bytes, path: bytes) -> bytes:
    """``BzrDirFormat.initialize_ex_1.16`` as ``brz push`` sends it for a
    new branch in a shared repository, but for ``network_name``."""
    return hostile.encode_request(
        b"BzrDirFormat.initialize_ex_1.16",
        network_name,
        path,
        b"True",  # use_existing_dir
        b"False",  # create_prefix
        b"False",  # force_new_repo
        b"",  # stacked_on
        b"",  # stack_on_pwd
        b"",  # repo_format_name
        b"False",  # make_working_trees
        b"False",  # shared_repo
    )


class WriterRefusalsTests(StoreTestCase):
    """A writer's refused request changes nothing on disk: no control
    directory of a format that holds its own repository, no shared
    repository for a codebase the refused request named."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=["lintian-fixes", "f-weave"])
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes"),
            cwd=self.make_branch(),
        )

    def call(self, path: str, message: bytes) -> tuple[bool, tuple]:
        status, _, body = http_request(self.store.admin + path, data=message)
        self.assertEqual(status, 200, body[:300])
        return hostile.decode_response(body)

    def test_only_meta_directories_are_created(self) -> None:
        before = tree_digest(self.storage_dir)
        colo = controldir.format_registry.make_controldir("development-colo")
        for name in (b"Bazaar-NG branch, format 6\n", colo.network_name(), b"bogus"):
            for path, target in (
                ("/hello/lintian-fixes/.bzr/smart", b"../f-weave"),
                ("/hello/f-weave/.bzr/smart", b"."),
                ("/fresh/f-weave/.bzr/smart", b"."),
            ):
                with self.subTest(name=name, target=target, path=path):
                    ok, args = self.call(path, _initialize_ex(name, target))
                    self.assertFalse(ok)
                    self.assertEqual(args[0], b"PermissionDenied", args)
                    self.assertIn(b"meta directory", args[2])
                    self.assertEqual(tree_digest(self.storage_dir), before)
        self.assertEqual(os.listdir(self.storage_dir), ["hello"])
        # the meta directory brz push asks for is made
        meta = hostile.format_names()["bzrdir"]
        ok, args = self.call(
            "/hello/lintian-fixes/.bzr/smart", _initialize_ex(meta, b"../f-weave")
        )
        self.assertTrue(ok, args)

    def test_a_refused_write_to_a_new_codebase_leaves_nothing(self) -> None:
        cases = [
            hostile.encode_request(b"put", b"x", b"", body=b"data"),
            hostile.encode_request(b"mkdir", b".bzr", b""),
            hostile.encode_request(b"delete", b"../.bzr/repository/pack-names"),
            _initialize_ex(b"Bazaar-NG branch, format 6\n", b"."),
        ]
        for message in cases:
            with self.subTest(message[:60]):
                ok, args = self.call("/fresh/lintian-fixes/.bzr/smart", message)
                self.assertFalse(ok, args)
                self.assertEqual(os.listdir(self.storage_dir), ["hello"])

    def test_the_workers_first_push_still_creates_the_codebase(self) -> None:
        ok, args = self.call(
            "/fresh/.bzr/smart", hostile.encode_request(b"mkdir", b".", b"")
        )
        self.assertTrue(ok or args[0] == b"FileExists", args)
        self.assertIn("fresh", os.listdir(self.storage_dir))
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "fresh/lintian-fixes"),
            cwd=self.path("work"),
        )


def _get_stream_request(tip: bytes) -> bytes:
    """``Repository.get_stream_1.19`` of everything up to ``tip``."""
    return hostile.encode_request(
        b"Repository.get_stream_1.19",
        b"../",
        hostile.format_names()["repository"],
        body=b"ancestry-of\n" + tip,
    )


class SlowReaderTests(StoreTestCase):
    """Heavy streams: writers never wait behind readers, and a reader that
    stops reading loses its slot."""

    def setUp(self) -> None:
        super().setUp()
        self.budget = StreamBudget(1, wait=0.5, stall_window=3600)
        self.store = self.start_store(stream_budget=self.budget)
        self.work = self.make_branch()
        with open(os.path.join(self.work, "big"), "wb") as f:
            f.write(os.urandom(16 * 1024 * 1024))  # more than socket buffers hold
        brz("add", "-q", cwd=self.work)
        brz("commit", "-q", "-m", "big", cwd=self.work)
        self.url = self.smart_url(self.store.admin, "hello/lintian-fixes")
        brz("push", "-q", self.url, cwd=self.work)

    def stalled_reader(self) -> socket.socket:
        """A client asking for the whole repository and reading nothing."""
        tip = brz("revision-info", "-d", self.work).stdout.split()[1]
        message = _get_stream_request(tip)
        host, port = self.store.public_root.split("//")[1].split(":")
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        s.sendall(
            (
                f"POST {_SMART} HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {len(message)}\r\n\r\n"
            ).encode()
            + message
        )
        wait_for(lambda: self.budget.in_use == 1, "the reader took the slot")
        return s

    def test_writers_do_not_wait_behind_readers(self) -> None:
        reader = self.stalled_reader()
        self.commit(self.work)
        brz("push", "-q", self.url, cwd=self.work)  # 503 if it waited
        self.assertEqual(self.budget.in_use, 1)  # the reader still has its slot
        # another reader waits for it, and is refused
        proc = brz(
            "branch",
            self.smart_url(self.store.public, "hello/lintian-fixes"),
            self.path("refused"),
            check=False,
        )
        self.assertIn("503", self.out(proc))
        reader.close()
        wait_for(lambda: self.budget.in_use == 0, "the reader gave its slot back")

    def test_a_stalled_reader_is_cut(self) -> None:
        self.budget.stall_window = 1.0
        reader = self.stalled_reader()
        wait_for(lambda: self.budget.in_use == 0, "the stalled reader was cut")
        # it gets less than the whole stream, then the end of the connection
        received = 0
        reader.settimeout(60)
        while data := reader.recv(1 << 20):
            received += len(data)
        self.assertLess(received, 16 * 1024 * 1024)
        copy = self.path("copy")
        brz(
            "branch",
            "-q",
            self.smart_url(self.store.public, "hello/lintian-fixes"),
            copy,
        )
        self.assertEqual(brz("revno", copy).stdout.strip(), b"2")

    def tip(self) -> bytes:
        return brz("revision-info", "-d", self.work).stdout.split()[1]

    def call(self, message: bytes) -> tuple[bool, tuple]:
        status, _, body = http_request(
            self.store.public + "/hello/.bzr/smart", data=message
        )
        self.assertEqual(status, 200, body[:300])
        return hostile.decode_response(body)

    def test_reads_of_whole_files_and_histories_are_bounded(self) -> None:
        packs = os.path.join(self.storage_dir, "hello", ".bzr", "repository", "packs")
        pack = max(os.listdir(packs), key=lambda n: os.path.getsize(f"{packs}/{n}"))
        path = f".bzr/repository/packs/{pack}".encode()
        size = os.path.getsize(f"{packs}/{pack}")
        self.assertGreater(size, VFS_READ_LIMIT)
        for message in (
            hostile.encode_request(b"get", path),
            hostile.encode_request(b"readv", path, body=f"0,{size}".encode()),
            hostile.encode_request(b"readv", path, body=b"\n".join([b"0,4000000"] * 2)),
            hostile.encode_request(
                b"Repository.annotate_file_revision", b"", self.tip(), b"big"
            ),
        ):
            with self.subTest(message[:80]):
                ok, args = self.call(message)
                self.assertFalse(ok)
                self.assertEqual(args[0], b"PermissionDenied", args)
                self.assertIn(b"at most", args[2])
        # what breezy's client asks for is answered
        ok, args = self.call(
            hostile.encode_request(b"readv", path, body=b"0,100\n5000000,100")
        )
        self.assertEqual((ok, args), (True, (b"readv",)))
        ok, args = self.call(hostile.encode_request(b"get", b".bzr/repository/format"))
        self.assertTrue(ok, args)
        # whole-history answers wait for a slot like streams
        self.stalled_reader()
        tip = brz("revision-info", "-d", self.work).stdout.split()[1]
        for message in (
            hostile.encode_request(b"Repository.all_revision_ids", b""),
            hostile.encode_request(b"Repository.get_revision_graph", b"", b""),
            hostile.encode_request(b"Repository.gather_stats", b"", tip, b"no"),
            hostile.encode_request(
                b"Repository.annotate_file_revision", b"", tip, b"big-id", b"", b"no"
            ),
        ):
            with self.subTest(message[:80]):
                status = http_request(
                    self.store.public + "/hello/.bzr/smart", data=message
                )[0]
                self.assertEqual(status, 503)


class ReaderPreemptionTests(StoreTestCase):
    """A reader holding its slot for long gives it up to a waiting reader
    unless it reads fast; here there is no floor, so only that cuts it."""

    def setUp(self) -> None:
        super().setUp()
        self.budget = StreamBudget(
            1, wait=60, stall_window=0.4, min_rate=0, preempt_rate=1024 * 1024
        )
        self.store = self.start_store(stream_budget=self.budget)
        self.work = self.make_branch()
        with open(os.path.join(self.work, "big"), "wb") as f:
            f.write(os.urandom(16 * 1024 * 1024))  # more than socket buffers hold
        brz("add", "-q", cwd=self.work)
        brz("commit", "-q", "-m", "big", cwd=self.work)
        self.url = self.smart_url(self.store.admin, "hello/lintian-fixes")
        brz("push", "-q", self.url, cwd=self.work)

    stalled_reader = SlowReaderTests.stalled_reader

    def test_a_waiting_anonymous_reader_gets_a_long_held_slot(self) -> None:
        reader = self.stalled_reader()
        copy = self.path("copy")
        proc = brz(
            "branch",
            "-q",
            self.smart_url(self.store.public, "hello/lintian-fixes"),
            copy,
            check=False,
        )
        self.assertEqual(proc.returncode, 0, self.out(proc))
        self.assertEqual(brz("revno", copy).stdout.strip(), b"2")
        received = 0
        reader.settimeout(60)
        while data := reader.recv(1 << 20):
            received += len(data)
        self.assertLess(received, 16 * 1024 * 1024)  # cut short


class ImpossibleTipTests(StoreTestCase):
    """A tip a push never makes (a ghost, a revno other than the tip's)
    is refused before anything changes."""

    def test_ghost_tips_and_wrong_revnos_are_refused(self) -> None:
        self.store = self.start_store()
        work = self.make_branch(revisions=3)
        url = self.smart_url(self.store.admin, "hello/lintian-fixes")
        brz("push", "-q", url, cwd=work)
        tip = Branch.open(work).last_revision()
        first = Branch.open(work).get_rev_id(1)
        last = os.path.join(
            self.storage_dir,
            "hello",
            "lintian-fixes",
            ".bzr",
            "branch",
            "last-revision",
        )
        with open(last, "rb") as f:
            before = f.read()
        branch = Branch.open(url)
        for revno, revid, fragment in (
            (10**15, tip, "is not the revno"),
            (-5, tip, "not a revision number"),
            (0, tip, "not a revision number"),
            (2, tip, "is not the revno"),
            (3, first, "is not the revno"),
            (1, b"ghost-revision-id", "not in the repository"),
            (1, b"null:", "revno of null: is 0"),
        ):
            with self.subTest(revno=revno, revid=revid), branch.lock_write():
                with self.assertRaises(errors.TipChangeRejected) as caught:
                    branch.set_last_revision_info(revno, revid)
                self.assertIn(fragment, str(caught.exception))
            with open(last, "rb") as f:
                self.assertEqual(f.read(), before)
        with branch.lock_write():  # the real revnos are accepted
            branch.set_last_revision_info(1, first)
            branch.set_last_revision_info(3, tip)
        self.commit(work)
        brz("push", "-q", url, cwd=work)
        self.assertEqual(brz("revno", url).stdout.strip(), b"4")
