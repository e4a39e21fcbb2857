"""Anonymous requests naming many codebases leave nothing behind per name."""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import threading

from ..policy.auth import hash_password
from .support import hostile
from .support.fixtures import FREE_PORTS, StoreTestCase, start_serve

#: Requests naming a new random codebase each, and the growth allowed (bytes):
#: the bound asked for 20,000 names, held for twice as many.
NAMES = 40_000
MAX_GROWTH = 12 * 1024 * 1024
HELLO = hostile.encode_request(b"hello")


def rss(pid: int) -> int:
    """Resident set size of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _drain(pipe, sink) -> None:
    with contextlib.suppress(OSError, ValueError):  # closed at cleanup
        shutil.copyfileobj(pipe, sink)


class RandomCodebaseTests(StoreTestCase):
    def send(self, public: str, count: int) -> None:
        """``count`` anonymous smart requests, each naming a new codebase."""
        host, port = public.split("//", 1)[1].split("/", 1)[0].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            for _ in range(count):
                name = "cb" + secrets.token_hex(12)
                conn.request(
                    "POST",
                    f"/bzr/{name}/lintian-fixes/.bzr/smart",
                    HELLO,
                    {"Content-Type": "application/octet-stream"},
                )
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 200)
        finally:
            conn.close()

    def test_memory_stays_bounded(self) -> None:
        credentials = self.path("credentials")
        with open(credentials, "w") as f:
            f.write(f"worker:{hash_password('secret')}\n")
        proc, _, public = start_serve(
            self, "-d", self.storage_dir, "--credentials", credentials, *FREE_PORTS
        )
        # The access log goes to stderr: drain it, or the server blocks.
        with open(os.devnull, "wb") as sink:
            drain = threading.Thread(
                target=_drain, args=(proc.stderr, sink), daemon=True
            )
            drain.start()
            self.measure(proc, public)

    def measure(self, proc, public: str) -> None:
        # Warm up: every code path and allocator arena in use.
        self.send(public, 2_000)
        before = rss(proc.pid)
        self.send(public, NAMES)
        growth = rss(proc.pid) - before
        print(f"\n{NAMES} random codebases: RSS grew {growth / 2**20:.1f} MiB")
        self.assertLessEqual(growth, MAX_GROWTH)
        self.assertEqual(os.listdir(self.storage_dir), [])
