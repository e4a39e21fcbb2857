"""Load: concurrent mixed clients against 1, 2 and 4 server processes.

``python -m benchmarks load [--clients-scale K] [--seconds S] [--processes 1,2,4]
[--repeat R]``

Every client is a process of its own using the breezy API (no plugins),
looping over its operation until the run's time is up:

* workers push a new revision each time to a codebase of their own
  (``wN/lintian-fixes``; a commit, then ``Branch.push``);
* public users branch ``code/lintian-fixes`` (``sprout``, no tree) and ask
  its revno, alternately;
* the site asks the store's ``revision-info`` and ``diff`` over the whole
  branch history, alternately (the store only: breezy's servers have no
  such API).

Servers, all with the same storage layout (one shared repository per
codebase): the store (``breezy_janitor_store``, both faces from one port,
``/bzr/...`` for the public users) and breezy's stock smart WSGI app
(``breezy.transport.http.wsgi``, writable), each under gunicorn with 1, 2
and 4 ``gthread`` worker processes on one port; and ``brz serve
--allow-writes`` (``bzr://``, one process).  The comparison runs the same
workers and public users against each (``bzr`` mix); the store alone runs
again with the site added (``full`` mix).

Per run: operations per second, p50 and p99 latency per operation, errors
(must be 0) and the peak resident memory of the server's processes.  The
store and breezy's app are compared ``--repeat`` times at each process
count, which of them runs first alternating; the ratio reported is the
median of the repetitions' ratios (each one is listed too).  Results go to
``benchmarks/results/load.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from typing import TYPE_CHECKING

from .servers import REPO, _children, brz_env, peak_kib, reset_peak

if TYPE_CHECKING:
    from typing import Self

__all__ = ["main"]

HERE = os.path.dirname(os.path.abspath(__file__))
CODEBASE = "code"
CAMPAIGN = "lintian-fixes"
BRANCH = f"{CODEBASE}/{CAMPAIGN}"
#: Clients of each kind (times ``--clients-scale``).
WORKERS = 3
PUBLIC = 3
SITE = 2
#: Seconds for the clients to start and set up before a run's clock starts.
WARM_UP = 8.0


# -- the corpus: a shared repository per codebase, on disk --


def build_template(directory: str, revisions: int, home: str, scale: int) -> dict:
    """Storage layout every server starts from; the corpus' revision ids."""
    import breezy.bzr  # noqa: F401
    from breezy import controldir
    from breezy.commit import NullCommitReporter

    work = os.path.join(home, "corpus")
    fmt = controldir.format_registry.make_controldir("2a")
    tree = controldir.ControlDir.create_standalone_workingtree(work, format=fmt)
    ids = []
    for i in range(revisions):
        for n in range(5):
            path = os.path.join(work, f"file{n}")
            with open(path, "a") as f:
                f.write(f"revision {i} line of file {n}: {os.urandom(24).hex()}\n")
            if i == 0:
                tree.add([f"file{n}"])
        ids.append(tree.commit(f"change {i}", reporter=NullCommitReporter()).decode())
    codebases = [CODEBASE] + [f"w{i}" for i in range(WORKERS * scale)]
    for codebase in codebases:
        path = os.path.join(directory, codebase)
        os.mkdir(path)
        repo = fmt.initialize(path).create_repository(shared=True)
        repo.set_make_working_trees(False)
        tree.branch.controldir.sprout(
            os.path.join(path, CAMPAIGN), create_tree_if_local=False
        )
    return {"work": work, "revision_ids": ids}


# -- clients (``python -m benchmarks.load client ROLE ...``) --


def _client(
    role: str, index: int, base: str, site: str, start: float, deadline: float
) -> list:
    import breezy

    with breezy.initialize(setup_ui=False):
        return _client_loop(role, index, base, site, start, deadline)


def _client_loop(
    role: str, index: int, base: str, site: str, start: float, deadline: float
):
    import breezy.bzr  # noqa: F401 - registers the bzr formats
    from breezy.branch import Branch
    from breezy.commit import NullCommitReporter
    from breezy.controldir import ControlDir
    from breezy.errors import BzrError
    from breezy.workingtree import WorkingTree

    samples = []
    scratch = tempfile.mkdtemp(prefix=f"bjs-load-{role}{index}-")

    def timed(op: str, fn) -> None:
        if not samples:  # set up: wait for the others
            time.sleep(max(0.0, start - time.time()))
        began = time.perf_counter()
        try:
            fn()
            error = None
        except (BzrError, OSError, RuntimeError, http.client.HTTPException) as e:
            error = f"{type(e).__name__}: {e}"[:300]
        samples.append((op, time.perf_counter() - began, error))

    try:
        if role == "worker":
            tree = WorkingTree.open(os.environ["BJS_LOAD_WORK"])
            local = tree.branch.controldir.sprout(
                os.path.join(scratch, "w")
            ).open_workingtree()
            url = f"{base}/w{index}/{CAMPAIGN}"
            n = 0
            while time.time() < deadline:
                with open(os.path.join(local.basedir, "worker"), "a") as f:
                    f.write(f"{index} {n} {os.urandom(512).hex()}\n")
                if n == 0:
                    local.add(["worker"])
                local.commit(f"worker {index} push {n}", reporter=NullCommitReporter())
                n += 1
                timed("push", lambda: local.branch.push(Branch.open(url)))
        elif role == "public":
            url = f"{base}/{BRANCH}"
            n = 0
            while time.time() < deadline:
                target = os.path.join(scratch, f"b{n}")
                if n % 2 == 0:
                    timed(
                        "branch",
                        lambda target=target: ControlDir.open(url).sprout(
                            target, create_tree_if_local=False
                        ),
                    )
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    timed("revno", lambda: Branch.open(url).revno())
                n += 1
        elif role == "site":
            ids = json.loads(os.environ["BJS_LOAD_IDS"])
            parts = urllib.parse.urlsplit(site)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
            old, new = urllib.parse.quote(ids[0]), urllib.parse.quote(ids[-1])
            n = 0
            while time.time() < deadline:
                op = "revision-info" if n % 2 == 0 else "diff"
                path = f"/{CODEBASE}/{op}?old={old}&new={new}"

                def get(path=path) -> None:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{path}: {resp.status}")

                timed(op, get)
                n += 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return samples


# -- servers --


class LoadServer:
    """A server under test on one port: its URLs and processes."""

    def __init__(self, kind: str, directory: str, home: str, processes: int) -> None:
        self.kind, self.directory, self.home = kind, directory, home
        self.processes = processes
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        py = sys.executable
        env = brz_env(self.home, BJS_LOAD_DIR=self.directory)
        if self.kind == "brz-serve":
            cmd = [py, "-m", "breezy", "serve", "--allow-writes", "--listen"]
            cmd += ["127.0.0.1", "--port", "0", "--directory", self.directory]
        else:
            app = {"store": "store_app", "breezy-wsgi": "breezy_app"}[self.kind]
            cmd = [py, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers"]
            cmd += [str(self.processes), "--worker-class", "gthread", "--threads"]
            cmd += ["16", "--log-level", "info", f"benchmarks.load_wsgi:{app}"]
        self.log = os.path.join(self.home, f"{self.kind}-{time.time_ns()}.log")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 120
        while True:
            with open(self.log, errors="replace") as f:
                text = f.read()
            if self.kind == "brz-serve" and "listening on port: " in text:
                port = text.split("listening on port: ", 1)[1].split()[0]
                self.base = f"bzr://127.0.0.1:{port}"
                self.public = self.base
                self.site = ""
                break
            if (
                "Listening at: " in text
                and text.count("Booting worker") >= self.processes
            ):
                http_base = text.split("Listening at: ", 1)[1].split()[0].rstrip("/")
                self.base = "bzr+" + http_base
                self.public = self.base + ("/bzr" if self.kind == "store" else "")
                self.site = http_base if self.kind == "store" else ""
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"{self.kind} did not start:\n{text}")
            time.sleep(0.05)
        return self

    def pids(self) -> list[int]:
        return [self.proc.pid, *_children(self.proc.pid)]

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- one run --


def run_one(
    kind: str,
    processes: int,
    mix: str,
    template: str,
    corpus: dict,
    scratch: str,
    home: str,
    seconds: float,
    scale: int,
    repetition: int = 0,
) -> dict:
    directory = os.path.join(scratch, f"served-{kind}-{processes}-{mix}")
    shutil.copytree(template, directory, symlinks=True)
    roles = [("worker", i) for i in range(WORKERS * scale)]
    roles += [("public", i) for i in range(PUBLIC * scale)]
    if mix == "full":
        roles += [("site", i) for i in range(SITE * scale)]
    try:
        with LoadServer(kind, directory, home, processes) as server:
            pids = server.pids()
            for pid in pids:
                reset_peak(pid)
            start = time.time() + WARM_UP
            deadline = start + seconds
            env = brz_env(
                home,
                BJS_LOAD_WORK=corpus["work"],
                BJS_LOAD_IDS=json.dumps(corpus["revision_ids"]),
            )
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.load",
                        "client",
                        role,
                        str(index),
                        server.public if role == "public" else server.base,
                        server.site,
                        repr(start),
                        repr(deadline),
                        os.path.join(scratch, f"samples-{role}-{index}.json"),
                    ],
                    cwd=REPO,
                    env=env,
                )
                for role, index in roles
            ]
            samples = []
            for p, (role, index) in zip(procs, roles):
                p.wait(timeout=seconds + 600)
                with open(os.path.join(scratch, f"samples-{role}-{index}.json")) as f:
                    samples += json.load(f)
            wall = seconds
            peak = sum(_peak(pid) for pid in server.pids())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result = summarize(samples, wall, peak, kind, processes, mix, len(roles))
    result["repetition"] = repetition
    return result


def _peak(pid: int) -> int:
    try:
        return peak_kib(pid)
    except (OSError, KeyError):
        return 0


def summarize(samples, wall, peak_kib_, kind, processes, mix, clients) -> dict:
    ops: dict[str, dict] = {}
    errors: list[str] = []
    for op, seconds, error in samples:
        entry = ops.setdefault(op, {"latencies": [], "errors": 0})
        if error is None:
            entry["latencies"].append(seconds)
        else:
            entry["errors"] += 1
            errors.append(f"{op}: {error}")
    result = {
        "server": kind,
        "processes": processes,
        "mix": mix,
        "clients": clients,
        "wall_s": round(wall, 2),
        "ops_per_s": round(sum(len(e["latencies"]) for e in ops.values()) / wall, 2),
        "errors": sum(e["errors"] for e in ops.values()),
        "error_samples": errors[:5],
        "peak_rss_mib": round(peak_kib_ / 1024, 1),
        "ops": {},
    }
    for op, entry in sorted(ops.items()):
        lat = sorted(entry["latencies"])
        result["ops"][op] = {
            "count": len(lat),
            "per_s": round(len(lat) / wall, 2),
            "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
            "p99_ms": round(_percentile(lat, 0.99) * 1000, 1) if lat else None,
            "errors": entry["errors"],
        }
    return result


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


# -- report --


def markdown(result: dict) -> str:
    """A short table: throughput, latency and memory per server and count."""
    lines = [
        (
            f"{result['clients']['bzr']} clients ({WORKERS * result['scale']} "
            f"pushing, {PUBLIC * result['scale']} branching/revno), "
            f"{result['seconds']} s per run:"
        ),
        "",
        (
            "| server | processes | run | ops/s | push p50/p99 ms | branch p50/p99 ms "
            "| revno p50/p99 ms | errors | peak MiB |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        if run["mix"] != "bzr":
            continue
        cells = []
        for op in ("push", "branch", "revno"):
            o = run["ops"].get(op)
            cells.append(f"{o['p50_ms']:.0f}/{o['p99_ms']:.0f}" if o else "-")
        lines.append(
            f"| {run['server']} | {run['processes']} | {run.get('repetition', 0) + 1} "
            f"| {run['ops_per_s']:.1f} | "
            + " | ".join(cells)
            + f" | {run['errors']} | {run['peak_rss_mib']:.0f} |"
        )
    lines.append("")
    for n, ratio in sorted(result["ratios"].items()):
        each = ", ".join(f"{r:.2f}" for r in result.get("ratio_runs", {}).get(n, []))
        lines.append(
            f"- {n} process(es): store/breezy-wsgi throughput {ratio:.2f}× "
            f"(median of {each})"
        )
    if "brz_serve_ratio" in result:
        lines.append(
            f"- 1 process: store/brz serve throughput {result['brz_serve_ratio']:.2f}×"
        )
    for run in result["runs"]:
        if run["mix"] == "full":
            site = ", ".join(
                f"{op} p50 {run['ops'][op]['p50_ms']:.0f} ms p99 "
                f"{run['ops'][op]['p99_ms']:.0f} ms"
                for op in ("revision-info", "diff")
                if op in run["ops"]
            )
            lines.append(
                f"- store + site, {run['processes']} process(es): "
                f"{run['ops_per_s']:.1f} ops/s, errors {run['errors']}; {site}"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    if argv and argv[0] == "client":
        role, index, base, site, start, deadline, output = argv[1:8]
        samples = _client(role, int(index), base, site, float(start), float(deadline))
        with open(output, "w") as f:
            json.dump(samples, f)
        return 0
    p = argparse.ArgumentParser(prog="python -m benchmarks load", description=__doc__)
    p.add_argument("--seconds", type=float, default=20, help="per run (20)")
    p.add_argument("--clients-scale", type=int, default=1, help="client multiplier")
    p.add_argument("--processes", default="1,2,4", help="process counts (1,2,4)")
    p.add_argument("--revisions", type=int, default=200, help="corpus revisions")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="comparisons at each process count, the first to run alternating (3)",
    )
    p.add_argument(
        "--breezy-first",
        action="store_true",
        help="at each process count, run breezy's app first in the first comparison",
    )
    p.add_argument(
        "--json", default=os.path.join(HERE, "results", "load.json"), help="output"
    )
    args = p.parse_args(argv)
    counts = [int(n) for n in args.processes.split(",")]
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    scratch = tempfile.mkdtemp(prefix="bjs-load-")
    home = os.path.join(scratch, "home")
    os.makedirs(home)
    os.environ.update(brz_env(home))
    import breezy

    runs = []
    try:
        template = os.path.join(scratch, "template")
        os.makedirs(template)
        with breezy.initialize(setup_ui=False):
            corpus = build_template(template, args.revisions, home, args.clients_scale)

        def one(kind: str, n: int, mix: str, repetition: int = 0) -> dict:
            print(
                f"load: {kind}, {n} process(es), {mix} mix, run {repetition + 1}",
                file=sys.stderr,
            )
            run = run_one(
                kind,
                n,
                mix,
                template,
                corpus,
                scratch,
                home,
                args.seconds,
                args.clients_scale,
                repetition,
            )
            print(
                f"  {run['ops_per_s']} ops/s, errors {run['errors']}, "
                f"peak {run['peak_rss_mib']} MiB {run['error_samples']}",
                file=sys.stderr,
            )
            runs.append(run)
            return run

        ratio_runs: dict[str, list[float]] = {}
        for n in counts:
            for repetition in range(args.repeat):
                kinds = ["store", "breezy-wsgi"]
                if (repetition % 2 == 1) != args.breezy_first:
                    kinds.reverse()
                got = {kind: one(kind, n, "bzr", repetition) for kind in kinds}
                ratio_runs.setdefault(str(n), []).append(
                    got["store"]["ops_per_s"] / got["breezy-wsgi"]["ops_per_s"]
                )
        ratios = {n: statistics.median(r) for n, r in ratio_runs.items()}
        result = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "started": started,
            "seconds": args.seconds,
            "scale": args.clients_scale,
            "clients": {
                "bzr": (WORKERS + PUBLIC) * args.clients_scale,
                "full": (WORKERS + PUBLIC + SITE) * args.clients_scale,
            },
            "runs": runs,
            "ratios": ratios,
            "ratio_runs": ratio_runs,
            "repeat": args.repeat,
            "breezy_first": args.breezy_first,
        }
        if 1 in counts:
            serve = one("brz-serve", 1, "bzr")
            store_one = statistics.median(
                r["ops_per_s"]
                for r in runs
                if (r["server"], r["processes"], r["mix"]) == ("store", 1, "bzr")
            )
            result["brz_serve_ratio"] = store_one / serve["ops_per_s"]
        for n in counts:
            one("store", n, "full")
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")
    sys.stdout.write(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
