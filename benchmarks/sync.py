"""What syncing every acknowledged write costs: the store against itself
with ``--no-sync``, in one run, alternating which goes first.

Usage (from the repository root)::

    python -m benchmarks.sync            # 2,000 revisions, 5 repetitions
    python -m benchmarks.sync --big      # also check's memory on a 300 MB codebase

Measures ``push-full`` (the whole 2,000-revision history into a new
codebase), ``push-10`` (10 new revisions onto an existing branch) and
``branch``; the ratio of each is the median of the per-repetition ratios
(synced / not synced).  Then a backup of the synced store while a full push
runs into it, and ``check`` of the copy.  With ``--big``, the peak memory
of ``brz janitor-store check`` on the 300 MB corpus.  Results:
``benchmarks/results/sync.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time

from . import corpus as _corpus
from .run import HERE, Bench, log, machine
from .servers import REPO, Server, brz_env

KINDS = ("store", "store-nosync")
OPERATIONS = ("push-full", "push-10", "branch")


def _store_cli(home: str, *args: str) -> subprocess.CompletedProcess:
    env = brz_env(
        home,
        BRZ_PLUGINS_AT="janitor_store@"
        + os.path.join(REPO, "breezy_janitor_store", "plugin"),
    )
    return subprocess.run(
        [sys.executable, "-m", "breezy", "janitor-store", *args],
        env=env, capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    corpus = _corpus.build(args.cache, revisions=args.revisions, log=log)
    bench = Bench(args, corpus)
    result: dict = {
        "machine": machine(),
        "revisions": args.revisions,
        "reps": args.reps,
    }
    try:
        for kind in KINDS:
            shutil.copytree(corpus.store, bench.directory(kind))
        servers = {
            kind: Server(kind, bench.directory(kind), bench.home) for kind in KINDS
        }
        for s in servers.values():
            s.__enter__()
        try:
            for rep in range(args.reps):
                order = KINDS if rep % 2 == 0 else KINDS[::-1]
                for op in OPERATIONS:
                    for kind in order:
                        getattr(bench, "op_" + op.replace("-", "_"))(servers[kind], rep)
                log(f"repetition {rep + 1}/{args.reps} done")
            result["backup"] = _backup_under_push(bench, servers["store"])
        finally:
            for s in servers.values():
                s.__exit__()
        ops = {}
        for op in OPERATIONS:
            synced = [s["seconds"] for s in bench.samples[op]["store"]][: args.reps]
            unsynced = [s["seconds"] for s in bench.samples[op]["store-nosync"]][: args.reps]
            ratios = [a / b for a, b in zip(synced, unsynced, strict=True)]
            ops[op] = {
                "sync_median_s": statistics.median(synced),
                "nosync_median_s": statistics.median(unsynced),
                "ratio_median": statistics.median(ratios),
                "ratios": ratios,
            }
        result["operations"] = ops
    finally:
        bench.close()
    if args.big:
        result["check_big"] = _check_big(args)
    return result


def _backup_under_push(bench: Bench, server: Server) -> dict:
    """Back the store up while a full push runs into it; check the copy."""
    dest = os.path.join(bench.scratch, "backup")
    pushing = threading.Thread(target=bench.op_push_full, args=(server, 999))
    pushing.start()
    start = time.perf_counter()
    backups = []
    while pushing.is_alive() or not backups:
        out = _store_cli(bench.home, "backup", "-d", server.directory, dest)
        backups.append({"seconds": time.perf_counter() - start, "rc": out.returncode,
                        "report": out.stdout.strip().splitlines()})  # fmt: skip
        start = time.perf_counter()
    pushing.join()
    check = _store_cli(bench.home, "check", "-d", dest)
    return {
        "backups_during_push": len(backups),
        "backups": backups,
        "check_rc": check.returncode,
        "check": check.stdout.strip().splitlines()[-1:],
    }


def _check_big(args: argparse.Namespace) -> dict:
    big = _corpus.build(args.cache, big_megabytes=args.big_mb, log=log)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    out = _store_cli(os.path.join(big.root, "home"), "check", "-d", big.store)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "megabytes": args.big_mb,
        "packed_bytes": big.packed_bytes(),
        "seconds": seconds,
        "rc": out.returncode,
        "output": out.stdout.strip().splitlines()[-1:],
        "peak_rss_kib": peak if peak > before else None,
    }


def main(argv: list[str] | None = None) -> int:
    import breezy

    breezy.initialize(setup_ui=False)
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.sync", description=__doc__.split("\n")[0]
    )
    p.add_argument("--revisions", type=int, default=2000)
    p.add_argument("--files", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--big", action="store_true")
    p.add_argument("--big-mb", type=int, default=300)
    p.add_argument(
        "--cache",
        default=os.environ.get("BJS_BENCH_CACHE", os.path.join(HERE, ".cache")),
    )
    p.add_argument("--json", default=os.path.join(HERE, "results", "sync.json"))
    args = p.parse_args(argv)
    result = run(args)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    for op, r in result.get("operations", {}).items():
        print(f"{op}: sync {r['sync_median_s']:.2f} s, no sync {r['nosync_median_s']:.2f} s, "
              f"ratio {r['ratio_median']:.3f}")  # fmt: skip
    print("backup during push:", json.dumps(result.get("backup", {}))[:400])
    if "check_big" in result:
        print("check of the big corpus:", result["check_big"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
