"""Time spent in syncs during a push, counted in the store's own process.

Usage: ``python -m benchmarks.sync_cost [--repeat N]`` (after
``python -m benchmarks.sync`` has built the 2,000-revision corpus).  An
in-process store on loopback, its ``durable.sync_file`` and
``sync_directory`` timed; ``brz push`` of the whole history into a new
codebase, then of the 10 extra revisions.  Unlike the end-to-end ratio of
``benchmarks.sync``, this does not depend on the machine's other load.
Results: ``benchmarks/results/sync-cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from . import corpus as _corpus
from .run import HERE, log


def measure(corpus: _corpus.Corpus) -> dict:
    from breezy_janitor_store.store import durable
    from breezy_janitor_store.web.app import StoreApp
    from breezy_janitor_store.web.server import make_server

    spent = {"syncs": 0, "seconds": 0.0}

    def timed(sync):
        def run(path: str) -> None:
            start = time.perf_counter()
            sync(path)
            spent["seconds"] += time.perf_counter() - start
            spent["syncs"] += 1

        return run

    originals = durable.sync_file, durable.sync_directory
    durable.sync_file, durable.sync_directory = map(timed, originals)
    root = tempfile.mkdtemp(prefix="bjs-sync-cost-", dir=HERE)
    try:
        store = os.path.join(root, "store")
        os.mkdir(store)
        server = make_server(StoreApp(store), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"bzr+http://127.0.0.1:{server.server_address[1]}/full/camp"
        out = {}
        for label, source in (("push-full", corpus.source), ("push-10", corpus.extra)):
            spent.update(syncs=0, seconds=0.0)
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "breezy", "--no-plugins", "push", "-q", "-d", source, url],
                check=True, env=dict(os.environ, HOME=root),
            )  # fmt: skip
            push = time.perf_counter() - start
            out[label] = {
                "push_s": push,
                "syncs": spent["syncs"],
                "sync_s": spent["seconds"],
                "share": spent["seconds"] / push,
            }
        server.shutdown()
        return out
    finally:
        durable.sync_file, durable.sync_directory = originals
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sync_cost")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument(
        "--cache",
        default=os.environ.get("BJS_BENCH_CACHE", os.path.join(HERE, ".cache")),
    )
    p.add_argument("--json", default=os.path.join(HERE, "results", "sync-cost.json"))
    args = p.parse_args(argv)
    corpus = _corpus.build(args.cache, log=log)
    runs = [measure(corpus) for _ in range(args.repeat)]
    with open(args.json, "w") as f:
        json.dump({"runs": runs}, f, indent=2)
    for run in runs:
        print(
            json.dumps(
                {k: {m: round(v, 4) for m, v in r.items()} for k, r in run.items()}
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
