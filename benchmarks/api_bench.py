"""Speed of the janitor's HTTP API: listing, revision-info and diff.

    python -m benchmarks.api_bench [--cache DIR] [--runs N]

Targets: listing 10,000 codebases under 200 ms; revision-info
over 2,000 revisions under 150 ms; a diff over a 2,000-revision range
starts streaming (first body byte) within 200 ms.

The store is the benchmark corpus (``benchmarks.corpus``: 2,000 revisions
of 300 files) plus 10,000 more codebases, each a copy of a real empty shared
repository.  The server runs in its own process (the embedded paste server,
as ``brz janitor-store serve`` runs it); the client keeps one HTTP/1.1
connection and reports the median and 90th percentile of ``--runs`` timed
requests after two warm-up requests.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import corpus

CODEBASES = 10_000
_SERVE = """
import sys
from breezy_janitor_store.web.app import StoreApp
from breezy_janitor_store.web.server import make_server

server = make_server(StoreApp(sys.argv[1]), "127.0.0.1", 0)
print(server.server_address[1], flush=True)
server.serve_forever()
"""
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fill(store: str, count: int) -> None:
    """``count`` more codebases in ``store``: copies of an empty repository."""
    from breezy import controldir, urlutils
    from breezy.transport import get_transport_from_url

    template = os.path.join(store, ".template")
    fmt = controldir.format_registry.make_controldir("2a")
    os.mkdir(template)
    repo = fmt.initialize_on_transport(
        get_transport_from_url(urlutils.local_path_to_url(template))
    ).create_repository(shared=True)
    repo.set_make_working_trees(False)
    for i in range(count):
        shutil.copytree(template, os.path.join(store, f"codebase{i:05d}"))
    shutil.rmtree(template)


class Client:
    """One kept-alive connection to the server."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port)

    def get(self, path: str, accept: str = "*/*") -> tuple[float, float, int, bytes]:
        """Seconds to the first body byte and to the end, status, body."""
        start = time.perf_counter()
        self.conn.request("GET", path, headers={"Accept": accept})
        resp = self.conn.getresponse()
        first = resp.read(1)
        ttfb = time.perf_counter() - start
        body = first + resp.read()
        total = time.perf_counter() - start
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()  # the next request reconnects
        return ttfb, total, resp.status, body


def measure(client: Client, path: str, runs: int, accept: str = "*/*") -> dict:
    for _ in range(2):
        client.get(path, accept)
    firsts, totals = [], []
    for _ in range(runs):
        ttfb, total, status, body = client.get(path, accept)
        if status != 200:
            raise SystemExit(f"{path}: {status} {body[:200]!r}")
        firsts.append(ttfb)
        totals.append(total)
    return {
        "ttfb": statistics.median(firsts),
        "median": statistics.median(totals),
        "p90": sorted(totals)[max(0, int(len(totals) * 0.9) - 1)],
        "bytes": len(body),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache",
        default=os.path.join(tempfile.gettempdir(), "bjs-bench-cache"),
        help="where the corpus is built and kept",
    )
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    built = corpus.build(args.cache, revisions=2000)
    work = tempfile.mkdtemp(prefix="bjs-api-bench-")
    try:
        store = os.path.join(work, "store")
        shutil.copytree(built.store, store)
        t = time.perf_counter()
        _fill(store, CODEBASES)
        print(f"store: {CODEBASES} codebases added in {time.perf_counter() - t:.1f} s")
        path = [_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        server = subprocess.Popen(
            [sys.executable, "-c", _SERVE, store], env=env, stdout=subprocess.PIPE
        )
        try:
            port = int(server.stdout.readline())
            client = Client(port)
            old, new = "rev-00001", "rev-02000"
            cb = corpus.CODEBASE
            cases = [
                ("listing, JSON (10,001 codebases)", "/", "application/json", 0.200),
                ("listing, text/plain", "/", "text/plain", 0.200),
                ("listing, HTML", "/", "text/html", 0.200),
                ("/repositories", "/repositories", "*/*", 0.200),
                (
                    "revision-info, 2,000 revisions",
                    f"/{cb}/revision-info?old=null:&new={new}",
                    "*/*",
                    0.150,
                ),
                (
                    "revision-info, 1,999 revisions",
                    f"/{cb}/revision-info?old={old}&new={new}",
                    "*/*",
                    0.150,
                ),
            ]
            print(f"{'case':42} {'median':>9} {'p90':>9} {'bytes':>9}  target")
            for name, path, accept, target in cases:
                r = measure(client, path, args.runs, accept)
                verdict = "ok" if r["median"] < target else "SLOW"
                print(
                    f"{name:42} {r['median'] * 1000:7.1f}ms {r['p90'] * 1000:7.1f}ms "
                    f"{r['bytes']:9d}  <{target * 1000:.0f} ms {verdict}"
                )
            r = measure(client, f"/{cb}/diff?old={old}&new={new}", args.runs)
            verdict = "ok" if r["ttfb"] < 0.200 else "SLOW"
            print(
                f"{'diff rev 1..2000, first byte':42} {r['ttfb'] * 1000:7.1f}ms "
                f"{'':9} {'':9}  <200 ms {verdict}"
            )
            print(
                f"{'diff rev 1..2000, whole body':42} {r['median'] * 1000:7.1f}ms "
                f"{r['p90'] * 1000:7.1f}ms {r['bytes']:9d}"
            )
        finally:
            server.terminate()
            server.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
