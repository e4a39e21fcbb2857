"""Server memory and deadline of diffs of big files.

    python -m benchmarks.diff_memory [--code DIR] [--cache DIR]

Two codebases, each one revision changing one file of the next:
``big40`` a 40 MB file of 1,600,000 short lines (one line changed),
``atcap`` a file at the diff limits (250,000 lines, 5 MiB) whose every
line changes.  Each measurement runs in a fresh process serving the public
face on loopback (``--code``: the checkout to measure, default this one):
the growth of its peak RSS (``VmHWM``) over its RSS after a warm-up, for
one diff and for six diffs in parallel; and, with a deadline of 0.5 s,
how long after the deadline the diff's worker thread ends.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

_MEASURE = r"""
import sys, threading, time, urllib.request
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from breezy_janitor_store.web.app import StoreApp

store, codebase, clients, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

def memory():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return [int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")]

app = StoreApp(store, face="public", diff_timeout=timeout)
server = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/bzr/{codebase}/diff?old=r1&new=r2"
urllib.request.urlopen(url.replace("old=r1", "old=r2")).read()
base = memory()[0]
sizes = []

def client():
    try:
        with urllib.request.urlopen(url) as response:
            sizes.append(len(response.read()))
    except Exception as e:
        sizes.append(type(e).__name__)

def workers():
    return [t for t in threading.enumerate() if t.name.startswith("store-diff-")]

start = time.monotonic()
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
while workers():
    time.sleep(0.01)
ended = time.monotonic() - start
print(f"{memory()[1] - base:.0f} {ended:.2f} {sizes[0]}")
"""


def build(store: str) -> None:
    """The two codebases, made with breezy's API on the local disk."""
    import breezy.bzr  # noqa: F401
    from breezy import branchbuilder, controldir

    fmt = controldir.format_registry.make_controldir("2a")
    lines = [b"line %d of a big file\n" % i for i in range(1_600_000)]
    old40 = b"".join(lines)
    lines[800_000] = b"changed\n"
    n = 250_000
    width = 5 * 1024 * 1024 // n - 1
    cases = {
        "big40": (old40, b"".join(lines)),
        "atcap": (
            b"".join(b"%0*d\n" % (width, i % 2) for i in range(n)),
            b"".join(b"%0*d\n" % (width, (i + 1) % 2) for i in range(n)),
        ),
    }
    for name, (old, new) in cases.items():
        path = os.path.join(store, name)
        if os.path.exists(path):
            continue
        controldir.ControlDir.create(path, format=fmt).create_repository(shared=True)
        branch = controldir.ControlDir.create(
            os.path.join(path, "lintian-fixes"), format=fmt
        ).create_branch()
        builder = branchbuilder.BranchBuilder(branch=branch)
        builder.start_series()
        builder.build_snapshot(
            None,
            [
                ("add", ("", b"root", "directory", None)),
                ("add", ("big.txt", b"big", "file", old)),
            ],
            message="old",
            revision_id=b"r1",
            committer="Bench <bench@example.com>",
        )
        builder.build_snapshot(
            [b"r1"],
            [("modify", ("big.txt", new))],
            message="new",
            revision_id=b"r2",
            committer="Bench <bench@example.com>",
        )
        builder.finish_series()


def measure(code: str, store: str, codebase: str, clients: int, timeout: float):
    env = dict(os.environ, PYTHONPATH=code)
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, store, codebase, str(clients), str(timeout)],
        env=env,
        cwd=code,  # python -c puts the working directory first on the path
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), out[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--code", default=here, help="checkout to measure")
    parser.add_argument("--cache", help="keep the store here")
    args = parser.parse_args()
    store = args.cache or tempfile.mkdtemp(prefix="bjs-diff-memory-")
    os.makedirs(store, exist_ok=True)
    build(store)
    for codebase in ("big40", "atcap"):
        for clients in (1, 6):
            growth, ended, size = measure(args.code, store, codebase, clients, 300)
            print(
                f"{codebase}: {clients} diff(s): peak RSS +{growth:.0f} MiB, "
                f"all done in {ended:.2f} s, {size} bytes each"
            )
        _, ended, _ = measure(args.code, store, codebase, 1, 0.5)
        print(f"{codebase}: deadline 0.5 s: worker ended {ended - 0.5:+.2f} s after it")


if __name__ == "__main__":
    main()
