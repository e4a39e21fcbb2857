"""``python -m benchmarks.parallel_branch``: server memory under parallel branches.

Anonymous clients branching one large file at once each make the server read
and send it: this measures the peak resident growth of ``brz janitor-store
serve`` (``VmHWM`` over idle, fresh server per run) while N ``brz branch
--no-tree`` of a branch holding one file of ``--megabytes`` incompressible
bytes run in parallel on the public face, against one alone, and prints the
ratio.  The branch is built once and cached in ``benchmarks/.cache/``.

    python -m benchmarks.parallel_branch                 # 200 MB, 1 vs 4 clients
    python -m benchmarks.parallel_branch --megabytes 50 --clients 1 2 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import breezy.bzr  # noqa: F401 - registers the bzr formats
from breezy import branchbuilder, controldir
from breezy.transport import get_transport_from_path

from .corpus import CAMPAIGN, CODEBASE, COMMITTER, EPOCH
from .servers import REPO, brz_env, peak_kib, reset_peak, rss_kib

CACHE = os.path.join(REPO, "benchmarks", ".cache")
RESULTS = os.path.join(REPO, "benchmarks", "results", "parallel_branch.json")
_URLS = re.compile(rb"^(http://\S+)$", re.MULTILINE)


def build_store(megabytes: int, seed: int = 1) -> str:
    """A storage directory whose ``CODEBASE/CAMPAIGN`` holds one file of
    ``megabytes`` random bytes (cached); its path."""
    root = os.path.join(CACHE, f"onefile-{megabytes}mb-s{seed}")
    store = os.path.join(root, "store")
    if os.path.exists(os.path.join(root, "complete")):
        return store
    print(f"building {root} (cached for later runs)", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(store, CODEBASE))
    fmt = controldir.format_registry.make_controldir("2a")
    repo = fmt.initialize_on_transport(
        get_transport_from_path(os.path.join(store, CODEBASE))
    ).create_repository(shared=True)
    repo.set_make_working_trees(False)
    builder = branchbuilder.BranchBuilder(
        get_transport_from_path(os.path.join(store, CODEBASE, CAMPAIGN)), format="2a"
    )
    data = random.Random(seed).randbytes(megabytes * 1024 * 1024)
    builder.build_snapshot(
        None,
        [
            ("add", ("", b"root-id", "directory", None)),
            ("add", ("big.bin", b"big-id", "file", data)),
        ],
        message="one big file",
        timestamp=EPOCH,
        timezone=0,
        committer=COMMITTER,
        revision_id=b"big-1",
    )
    with open(os.path.join(root, "complete"), "w") as f:
        f.write("ok\n")
    return store


def measure(store: str, clients: int, home: str) -> dict:
    """One fresh server, ``clients`` parallel branches of the public face."""
    env = brz_env(
        home,
        BRZ_PLUGINS_AT="janitor_store@"
        + os.path.join(REPO, "breezy_janitor_store", "plugin"),
    )
    log = os.path.join(home, f"serve-{clients}-{time.time_ns()}.log")
    args = ["janitor-store", "serve", "-d", store, "--listen", "127.0.0.1"]
    args += ["--port", "0", "--public-port", "0", "--gc-interval", "0"]
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "breezy", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with open(log, "rb") as f:
                urls = _URLS.findall(f.read())
            if len(urls) >= 2:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                with open(log, "rb") as f:
                    raise RuntimeError(f"serve did not start: {f.read()[-2000:]!r}")
            time.sleep(0.05)
        public = "bzr+" + urls[1].decode().rstrip("/")
        time.sleep(1)  # idle
        idle = rss_kib(server.pid)
        reset_peak(server.pid)
        start = time.monotonic()
        branches = [
            subprocess.Popen(
                [sys.executable, "-m", "breezy", "branch", "--no-tree", "-q"]
                + [f"{public}/bzr/{CODEBASE}/{CAMPAIGN}"]
                + [os.path.join(home, f"copy-{clients}-{i}")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for i in range(clients)
        ]
        outputs = [b.communicate()[0].decode(errors="replace") for b in branches]
        wall = time.monotonic() - start
        peak = peak_kib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    for i in range(clients):
        shutil.rmtree(os.path.join(home, f"copy-{clients}-{i}"), ignore_errors=True)
    failed = [o for b, o in zip(branches, outputs) if b.returncode != 0]
    return {
        "clients": clients,
        "idle_mib": round(idle / 1024, 1),
        "growth_mib": round((peak - idle) / 1024, 1),
        "wall_s": round(wall, 1),
        "succeeded": clients - len(failed),
        "failures": [o[-500:] for o in failed],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--output", default=RESULTS)
    options = parser.parse_args(argv)
    store = build_store(options.megabytes)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bjs-parallel-") as home:
        for _ in range(options.repeat):
            for clients in options.clients:
                run = measure(store, clients, home)
                print(json.dumps(run), flush=True)
                runs.append(run)
    growth = {}
    for run in runs:
        growth.setdefault(run["clients"], []).append(run["growth_mib"])
    one = min(growth.get(1, [0])) or None
    print(f"\nOne file of {options.megabytes} MB; server peak growth over idle, MiB:")
    print("| clients | growth, MiB | vs one | wall, s | succeeded |")
    print("|---:|---:|---:|---:|---:|")
    for run in runs:
        ratio = f"{run['growth_mib'] / one:.2f}×" if one else "–"
        print(
            f"| {run['clients']} | {run['growth_mib']} | {ratio} | {run['wall_s']} "
            f"| {run['succeeded']}/{run['clients']} |"
        )
    with open(options.output, "w") as f:
        json.dump(
            {"megabytes": options.megabytes, "cpus": os.cpu_count(), "runs": runs},
            f,
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
