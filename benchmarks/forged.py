"""What the forged-revision defence costs a janitor push.

``python -m benchmarks forged [--revisions N] [--files F] [--repeat R]``

A store on a loopback port (this process, public face with two workers),
the real ``brz push`` as the client, and a local history of N revisions
over F files.  Three pushes, each timed with and without the defence
(without: breezy's own insert path and no writer record, as before the
defence; alternating which runs first), on a fresh storage directory for
each:

* ``first``: worker-1 pushes the history to a new codebase;
* ``shared``: worker-2 then pushes the same history plus one commit of its
  own to another campaign: without the defence it sends one revision; with
  it, the history too (its first push of revisions worker-1 stored);
* ``again``: worker-2 pushes one more commit (its next run): one revision
  either way.

Prints, and writes to ``benchmarks/results/forged.json``, the median time of
each push and the ratio with/without, and the repository's size after
``shared`` (a resent history's packs stay until the next repack).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager

from breezy.controldir import ControlDir

from breezy_janitor_store.policy.auth import BasicAuth, CredentialsFile, add_worker
from breezy_janitor_store.store import contentcheck, provenance
from breezy_janitor_store.store.storage import Storage
from breezy_janitor_store.web.app import PUBLIC, StoreApp
from breezy_janitor_store.web.server import make_server

from .servers import REPO, brz_env

WORKERS = {"worker-1": "password-one", "worker-2": "password-two"}
RESULTS = os.path.join(REPO, "benchmarks", "results", "forged.json")


def make_history(path: str, revisions: int, files: int) -> None:
    """A standalone branch: ``files`` files, then ``revisions - 1`` commits
    changing three of them each."""
    rng = random.Random(42)
    tree = ControlDir.create_standalone_workingtree(path)
    names = [f"src/file{i:04d}.c" for i in range(files)]
    os.mkdir(os.path.join(path, "src"))
    for name in names:
        with open(os.path.join(path, name), "w") as f:
            f.writelines(f"line {n} of {name}\n" for n in range(60))
    tree.add(["src", *names])
    tree.commit("import", rev_id=b"upstream-0001")
    for n in range(1, revisions):
        for name in rng.sample(names, 3):
            with open(os.path.join(path, name), "a") as f:
                f.write(f"change {n}\n")
        tree.commit(f"change {n}", rev_id=f"upstream-{n + 1:04d}".encode())


def commit(path: str, message: str) -> None:
    tree = ControlDir.open(path).open_workingtree()
    with open(os.path.join(path, "debian-changelog"), "a") as f:
        f.write(message + "\n")
    if not tree.is_versioned("debian-changelog"):
        tree.add(["debian-changelog"])
    tree.commit(message)


@contextmanager
def defence(enabled: bool):
    """The store with the defence, or as before it (breezy's insert path,
    no writer: nothing filtered, recorded or checked at the tip)."""
    if enabled:
        yield
        return
    saved = contentcheck.insert_stream, provenance.writing_as
    contentcheck.insert_stream = (
        lambda repo, stream, src_format, tokens, where: repo._get_sink().insert_stream(
            stream, src_format, tokens
        )
    )
    provenance.writing_as = lambda writer: saved[1](None)
    try:
        yield
    finally:
        contentcheck.insert_stream, provenance.writing_as = saved


def du(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(top, f))
        for top, _, files in os.walk(path)
        for f in files
    )


def one_run(work: str, template: str, enabled: bool, env: dict) -> dict:
    storage_dir = os.path.join(work, "store")
    os.mkdir(storage_dir)
    credentials = os.path.join(work, "credentials")
    for name, password in WORKERS.items():
        add_worker(credentials, name, password)
    app = StoreApp(
        face=PUBLIC,
        storage=Storage(storage_dir),
        write_policy=BasicAuth(CredentialsFile(credentials)),
    )
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    port = server.server_address[1]

    def push(worker: str, path: str, location: str) -> float:
        url = f"bzr+http://{worker}:{WORKERS[worker]}@127.0.0.1:{port}/bzr/{location}"
        start = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "breezy", "push", "-q", url],
            cwd=path,
            env=env,
            check=True,
            capture_output=True,
        )
        return time.monotonic() - start

    try:
        one = os.path.join(work, "one")
        two = os.path.join(work, "two")
        shutil.copytree(template, one, symlinks=True)
        shutil.copytree(template, two, symlinks=True)
        with defence(enabled):
            result = {"first": push("worker-1", one, "hello/lintian-fixes")}
            commit(two, "worker-2's run 1")
            result["shared"] = push("worker-2", two, "hello/debian")
            result["bytes_after_shared"] = du(os.path.join(storage_dir, "hello"))
            commit(two, "worker-2's run 2")
            result["again"] = push("worker-2", two, "hello/debian")
        return result
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks forged")
    parser.add_argument("--revisions", type=int, default=500)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args(argv)
    top = tempfile.mkdtemp(prefix="bjs-forged-")
    try:
        home = os.path.join(top, "home")
        os.mkdir(home)
        env = brz_env(home)
        os.environ.update({k: env[k] for k in ("HOME", "BRZ_HOME", "BRZ_EMAIL")})
        template = os.path.join(top, "template")
        started = time.monotonic()
        make_history(template, args.revisions, args.files)
        print(f"history of {args.revisions} revisions made in "
              f"{time.monotonic() - started:.0f} s", flush=True)
        runs: dict[bool, list[dict]] = {True: [], False: []}
        for n in range(args.repeat):
            for enabled in (True, False) if n % 2 == 0 else (False, True):
                work = tempfile.mkdtemp(dir=top)
                runs[enabled].append(one_run(work, template, enabled, env))
                shutil.rmtree(work)
                print(("with   " if enabled else "without"), runs[enabled][-1], flush=True)
        summary: dict[str, object] = {
            "revisions": args.revisions,
            "files": args.files,
            "repeat": args.repeat,
        }
        for key in ("first", "shared", "again", "bytes_after_shared"):
            with_, without = (
                statistics.median(r[key] for r in runs[e]) for e in (True, False)
            )
            summary[key] = {
                "with": round(with_, 3),
                "without": round(without, 3),
                "ratio": round(with_ / without, 2),
            }
        print(json.dumps(summary, indent=2))
        with open(args.output, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
