"""``python -m benchmarks browse``: the public face's pages beside loggerhead.

Both serve the same corpus branch (:mod:`benchmarks.corpus`, 2,000
revisions over 300 files by default) from their own process: the store's
public face (``StoreApp``, paste's threaded server) and loggerhead's
``BranchWSGIApp`` (``pip install loggerhead``) on paste too; the store's
start-up objects are kept from the garbage collector as its ``serve`` and
``wsgi`` keep them.  For each
page kind (changelog, revision, tree, file view, annotate) the first
request after start (cold) and the median of ``--repeat`` more (warm) are
timed from this process over loopback; ``--runs N`` starts both servers
N times (alternating which goes first) and reports each figure's median.
Prints a table; ``--out FILE`` also writes it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from . import corpus as _corpus

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

_STORE = """
import sys
from paste import httpserver
from breezy_janitor_store.web.app import StoreApp
from breezy_janitor_store.store.storage import Storage
from breezy_janitor_store.serve import freeze_startup_objects
app = StoreApp(face="public", storage=Storage(sys.argv[1]), campaigns=[sys.argv[2]])
freeze_startup_objects()  # as the store's ``serve`` and ``wsgi`` do
httpserver.serve(app, host="127.0.0.1", port=sys.argv[3], use_threadpool=True,
                 threadpool_workers=8)
"""
_LOGGERHEAD = """
import sys, logging
import breezy
breezy.initialize().__enter__()
from breezy.branch import Branch
from paste import httpserver
from loggerhead.apps.branch import BranchWSGIApp
branch = Branch.open(sys.argv[1])
app = BranchWSGIApp(branch, friendly_name="bench").app
httpserver.serve(app, host="127.0.0.1", port=sys.argv[2], use_threadpool=True,
                 threadpool_workers=8)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as resp:
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}: {resp.status}")
    return time.perf_counter() - start


def _serve(code: str, *args: str, log: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def _measure(urls: dict[str, str], repeat: int) -> dict[str, tuple[float, float]]:
    found = {}
    for kind, url in urls.items():
        cold = _get(url)
        warm = statistics.median(_get(url) for _ in range(repeat))
        found[kind] = (cold, warm)
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks browse")
    parser.add_argument("--revisions", type=int, default=2000)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--runs", type=int, default=1, help="start both servers this many times"
    )
    parser.add_argument(
        "--cache",
        default=os.environ.get("BJS_BENCH_CACHE", os.path.join(HERE, ".cache")),
    )
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    corpus = _corpus.build(args.cache, args.revisions, args.files, log=print)
    tmp = tempfile.mkdtemp(prefix="bjs-browse-bench-")
    try:
        store = os.path.join(tmp, "store")
        shutil.copytree(corpus.store, store, symlinks=True)
        branch_dir = os.path.join(store, _corpus.CODEBASE, _corpus.CAMPAIGN)
        from breezy.branch import Branch

        branch = Branch.open(branch_dir)
        with branch.lock_read():
            revno, tip = branch.last_revision_info()
            mid = branch.get_rev_id(revno // 2)
            tree = branch.repository.revision_tree(tip)
            files = sorted(
                (tree.get_file_size(p), p)
                for p, _, kind, _ in tree.list_files()
                if kind == "file"
            )
        path = files[len(files) // 2][1]
        quote = urllib.parse.quote
        rev = quote(tip, safe="@:-._~")
        sport, lport = _port(), _port()
        s_base = f"http://127.0.0.1:{sport}/bzr/{_corpus.CODEBASE}"
        l_base = f"http://127.0.0.1:{lport}"
        store_urls = {
            "changelog": f"{s_base}/{_corpus.CAMPAIGN}/",
            "revision": f"{s_base}/+revision/{quote(mid, safe='@:+-._~')}",
            "tree": f"{s_base}/+tree/?rev={rev}",
            "file view": f"{s_base}/+file/{quote(path)}?rev={rev}",
            "annotate": f"{s_base}/+annotate/{quote(path)}?rev={rev}",
        }
        lh_urls = {
            "changelog": f"{l_base}/changes",
            "revision": f"{l_base}/revision/{revno // 2}",
            "tree": f"{l_base}/files",
            "file view": f"{l_base}/view/head:/{quote(path)}",
            "annotate": f"{l_base}/annotate/head:/{quote(path)}",
        }
        servers = [
            ("store", _STORE, (store, _corpus.CAMPAIGN, str(sport)), sport, store_urls),
            ("loggerhead", _LOGGERHEAD, (branch_dir, str(lport)), lport, lh_urls),
        ]
        runs: dict[str, list[dict[str, tuple[float, float]]]] = {}
        for run in range(args.runs):
            # alternate which server goes first (the machine's load drifts)
            for name, code, server_args, port, urls in servers[:: -1 if run % 2 else 1]:
                log = os.path.join(tmp, f"{name}.log")
                proc = _serve(code, *server_args, log=log)
                try:
                    _wait(port, proc)
                    runs.setdefault(name, []).append(_measure(urls, args.repeat))
                finally:
                    proc.terminate()
                    proc.wait(30)
        results = {
            name: {
                kind: tuple(
                    statistics.median(r[kind][i] for r in found) for i in (0, 1)
                )
                for kind in store_urls
            }
            for name, found in runs.items()
        }
        title = (
            f"Pages of a {revno}-revision, {len(files)}-file branch "
            f"(file {path}, {files[len(files) // 2][0]} bytes); ms, "
            f"cold (first request) / warm (median of {args.repeat})"
            + (f", medians of {args.runs} runs" if args.runs > 1 else "")
        )
        lines = [
            title,
            "",
            "| page | store cold | store warm | loggerhead cold | loggerhead warm |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for kind in store_urls:
            sc, sw = results["store"][kind]
            lc, lw = results["loggerhead"][kind]
            lines.append(
                f"| {kind} | {sc * 1000:.1f} | {sw * 1000:.1f} "
                f"| {lc * 1000:.1f} | {lw * 1000:.1f} |"
            )
        table = "\n".join(lines)
        print(table)
        if args.out:
            with open(args.out, "w") as f:
                f.write(table + "\n")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
