"""Three store processes on one storage directory, rounds of concurrent pushes.

``python -m benchmarks multiprocess [--rounds 20] [--pushes 12]``

The big version of ``tests/test_multiprocess.py``: three ``brz janitor-store
serve`` processes share one storage directory; each round, ``--pushes`` real
``brz push`` clients spread over them push new revisions to campaigns and
roles of one codebase at once, crossing breezy's autopack thresholds again
and again; ``brz check`` after every round.  Reports pushes, lock
contentions, other failures (must be 0), autopacks, check problems (must be
none) and the wall time; results in ``benchmarks/results/multiprocess.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack

from .servers import Server, brz_env

__all__ = ["main"]

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks multiprocess")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--pushes", type=int, default=12)
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--json", default=os.path.join(HERE, "results", "multiprocess.json"))
    args = p.parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="bjs-multiprocess-")
    home = os.path.join(scratch, "home")
    os.makedirs(home)
    os.environ.update(brz_env(home))
    # The test module's scenario, with this run's environment.
    from breezy_janitor_store.tests.test_multiprocess import CODEBASE, run_rounds

    storage = os.path.join(scratch, "store")
    os.makedirs(storage)
    work = os.path.join(scratch, "work", "base")
    os.makedirs(os.path.dirname(work))
    brz = [sys.executable, "-m", "breezy"]
    subprocess.run([*brz, "init", "-q", work], check=True)
    for i in range(8):
        with open(os.path.join(work, "file"), "a") as f:
            f.write(f"line {i}\n")
        subprocess.run([*brz, "add", "-q"], cwd=work, check=True)
        subprocess.run([*brz, "commit", "-q", "-m", f"base {i}"], cwd=work, check=True)
    try:
        with ExitStack() as stack:
            servers = [
                stack.enter_context(Server("store", storage, home))
                for _ in range(args.processes)
            ]
            bases = [s.http_base for s in servers]
            subprocess.run(
                [*brz, "push", "-q", f"bzr+{bases[0]}/{CODEBASE}/campaign0"],
                cwd=work,
                check=True,
            )
            start = time.monotonic()
            result = run_rounds(work, storage, bases, args.rounds, args.pushes)
            seconds = time.monotonic() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out = {
        "processes": args.processes,
        "rounds": args.rounds,
        "pushes_per_round": args.pushes,
        "pushes": result.pushes,
        "succeeded": result.pushes - result.contended - len(result.failures),
        "lock_contention": result.contended,
        "failures": result.failures,
        "autopacks": result.autopacks,
        "packs_after_each_round": result.packs,
        "check_problems": result.check_problems,
        "seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps({k: v for k, v in out.items() if k != "packs_after_each_round"}))
    return 0 if not result.failures and not result.check_problems else 1
