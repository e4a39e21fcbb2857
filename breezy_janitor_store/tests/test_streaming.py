"""Big smart exchanges stream both ways: the server never holds a body whole.

A real store runs in its own process (so its memory is its own), wrapped in
a probe that records how the request body is read and how the response is
written.  A branch of incompressible content several times the memory bound
is pushed to it and branched back with the real ``brz``; the server's peak
resident size over each operation (Linux ``VmHWM``, reset before it) must
grow by less than half the content.  Holding either body whole would grow
it by more than the content itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unittest

from breezy import branchbuilder, urlutils
from breezy.transport import get_transport_from_url

from ..smart.verbs import MAX_CHUNK
from .support.fixtures import StoreTestCase, brz, http_request, python_env, reap

MIB = 1024 * 1024
#: Incompressible content pushed and branched: FILES files of 1 MiB.
FILES = 128
#: Largest growth of the server's resident memory allowed per operation.
LIMIT = FILES * MIB // 2

#: The store in a process of its own, wrapped in a probe answering /_probe.
_SERVER = r"""
import json, sys
from breezy_janitor_store.web import app as app_mod, server as server_mod
store = app_mod.StoreApp(sys.argv[1])
probe = {}

def reset():
    probe.update(reads=0, max_read=0, read_bytes=0, chunks=0, max_chunk=0)

class Input:
    def __init__(self, f):
        self.f = f
    def read(self, *args):
        data = self.f.read(*args)
        probe["reads"] += 1
        probe["read_bytes"] += len(data)
        probe["max_read"] = max(probe["max_read"], len(data))
        return data
    def readline(self, *args):
        return self.f.readline(*args)

def app(environ, start_response):
    if environ["PATH_INFO"] == "/_probe":
        body = json.dumps(probe).encode()
        reset()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    environ["wsgi.input"] = Input(environ["wsgi.input"])
    return _counted(store(environ, start_response))

def _counted(result):
    try:
        for chunk in result:
            probe["chunks"] += 1
            probe["max_chunk"] = max(probe["max_chunk"], len(chunk))
            yield chunk
    finally:
        getattr(result, "close", lambda: None)()

reset()
server = server_mod.make_server(app, "127.0.0.1", 0)
print(server_mod.server_url(server), flush=True)
server.serve_forever()
"""


# -- a process's memory, from Linux's /proc --


def has_proc_memory() -> bool:
    return os.path.exists(f"/proc/{os.getpid()}/clear_refs")


def rss(pid: int) -> int:
    """Resident size of ``pid`` in bytes."""
    return _status(pid, "VmRSS")


def peak_rss(pid: int) -> int:
    """Peak resident size of ``pid`` in bytes since the last reset."""
    return _status(pid, "VmHWM")


def reset_peak_rss(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def growth_during(pids: list[int], action) -> int:
    """How far the processes' summed resident size rose above its start."""
    start = sum(rss(p) for p in pids)
    for p in pids:
        reset_peak_rss(p)
    action()
    return sum(peak_rss(p) for p in pids) - start


def build_incompressible_branch(path: str, files: int) -> None:
    """A standalone branch whose revisions add ``files`` random 1 MiB files."""
    builder = branchbuilder.BranchBuilder(
        get_transport_from_url(urlutils.local_path_to_url(path)), format="2a"
    )
    builder.start_series()
    try:
        builder.build_snapshot(None, [("add", ("", b"root-id", "directory", None))])
        for start in range(0, files, 16):
            builder.build_snapshot(
                None,
                [
                    ("add", (f"blob{i}", f"blob-{i}".encode(), "file", os.urandom(MIB)))
                    for i in range(start, min(start + 16, files))
                ],
            )
    finally:
        builder.finish_series()


@unittest.skipUnless(has_proc_memory(), "needs Linux /proc/PID/clear_refs")
class StreamingTests(StoreTestCase):
    def start_probed_store(self) -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, self.storage_dir],
            stdout=subprocess.PIPE,
            env=python_env(),
        )
        self.addCleanup(reap, proc)
        url = proc.stdout.readline().decode().strip().rstrip("/")
        self.assertTrue(url.startswith("http://"), "the probed store did not start")
        return proc, url

    def probe(self, url: str) -> dict:
        status, _, body = http_request(url + "/_probe")
        self.assertEqual(status, 200)
        return json.loads(body)

    def test_push_and_branch_stream_in_bounded_memory(self) -> None:
        big = self.path("big")
        build_incompressible_branch(big, FILES)
        small = self.make_branch("small")
        proc, url = self.start_probed_store()
        # Warm up: the first push and branch load code and fill caches.
        brz("push", "-d", small, f"bzr+{url}/warm/camp")
        brz("branch", "--no-tree", f"bzr+{url}/warm/camp", self.path("warm"))
        self.probe(url)

        target = f"bzr+{url}/big/camp"
        pushed = growth_during([proc.pid], lambda: brz("push", "-d", big, target))
        push = self.probe(url)
        copy = self.path("copy")
        branched = growth_during(
            [proc.pid], lambda: brz("branch", "--no-tree", target, copy)
        )
        fetch = self.probe(url)

        self.assertEqual(
            brz("revision-info", "-d", copy).stdout,
            brz("revision-info", "-d", big).stdout,
        )
        report = (
            f"server memory growth: push {pushed / MIB:.0f} MiB, branch "
            f"{branched / MIB:.0f} MiB of {FILES} MiB; push {push}; branch {fetch}"
        )
        # The push's body was read in bounded pieces, all of it...
        self.assertGreater(push["read_bytes"], FILES * MIB, report)
        self.assertLessEqual(push["max_read"], MAX_CHUNK, report)
        # ...and the branch's response went out in many pieces.
        self.assertGreater(fetch["chunks"], FILES // 8, report)
        self.assertLess(fetch["max_chunk"], FILES * MIB // 8, report)
        # Neither was held whole, nor piled up behind a slower consumer.
        self.assertLess(pushed, LIMIT, report)
        self.assertLess(branched, LIMIT, report)
