"""The benchmark: this store against breezy's own servers, one table.

Usage (from the repository root)::

    python -m benchmarks                 # default corpus, 7 repetitions
    python -m benchmarks --quick         # 2 repetitions, no scaling run
    python -m benchmarks --big           # also the 300 MB memory run

See ``python -m benchmarks --help`` and benchmarks/results/HISTORY.md.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from breezy import controldir, urlutils
from breezy.transport import get_transport_from_url

from . import corpus as _corpus
from . import overhead, scaling
from .servers import (
    KINDS,
    REPO,
    Server,
    brz_env,
    cpu_seconds,
    peak_kib,
    reset_peak,
    rss_kib,
)

__all__ = ["main"]

HERE = os.path.dirname(os.path.abspath(__file__))
BRANCH = f"{_corpus.CODEBASE}/{_corpus.CAMPAIGN}"
#: Operations timed against every server, in table order.
OPERATIONS = ("branch", "push-full", "push-10", "revno")
#: ``brz revno`` samples per repetition.
REVNO_SAMPLES = 3
#: Operations of the store's own HTTP API (store only).
API_OPERATIONS = ("revision-info", "diff")
_TITLES = {
    "branch": "brz branch --no-tree",
    "push-full": "brz push, whole history, new campaign",
    "push-10": "brz push, 10 new revisions",
    "revno": "brz revno",
    "revision-info": "GET revision-info, whole history",
    "diff": "GET diff, whole history",
}


def brz_cli(*args: str) -> list[str]:
    # No plugins on the client side: the same lean client for every server.
    return [sys.executable, "-m", "breezy", "--no-plugins", *args]


class Bench:
    """One run: servers, scratch space and the samples collected."""

    def __init__(self, args: argparse.Namespace, corpus: _corpus.Corpus) -> None:
        self.args = args
        self.corpus = corpus
        self.scratch = tempfile.mkdtemp(prefix="bjs-bench-")
        self.home = os.path.join(self.scratch, "home")
        os.makedirs(self.home)
        self.env = brz_env(self.home)
        #: samples[op][kind] = list of {"seconds", "peak_growth_kib", ...}
        self.samples: dict[str, dict[str, list[dict]]] = {}
        self.idle_kib: dict[str, int] = {}

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def directory(self, kind: str) -> str:
        return os.path.join(self.scratch, "served-" + kind)

    def measure(self, server: Server, op: str, fn) -> None:
        """Run ``fn()``: record its wall time, the CPU time of the server and
        of the client (``fn``'s subprocesses), and the server's peak memory
        growth."""
        pids = server.pids()
        idle = sum(rss_kib(p) for p in pids)
        for p in pids:
            reset_peak(p)
        server_cpu = sum(cpu_seconds(p) for p in pids)
        client_cpu = _children_cpu()
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
        client_cpu = _children_cpu() - client_cpu
        server_cpu = sum(cpu_seconds(p) for p in pids) - server_cpu
        peak = sum(peak_kib(p) for p in pids)
        self.samples.setdefault(op, {}).setdefault(server.kind, []).append(
            {
                "seconds": seconds,
                "server_cpu_s": server_cpu,
                "client_cpu_s": client_cpu,
                "idle_kib": idle,
                "peak_kib": peak,
                "peak_growth_kib": peak - idle,
            }
        )

    def brz(self, *args: str, cwd: str | None = None) -> str:
        proc = subprocess.run(
            brz_cli(*args),
            cwd=cwd,
            env=self.env,
            capture_output=True,
            timeout=3600,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"brz {' '.join(args)} failed:\n{proc.stdout.decode()}{proc.stderr.decode()}"
            )
        return proc.stdout.decode()

    # -- the operations; ``rep`` makes each repetition's targets fresh --

    def op_branch(self, server: Server, rep: int) -> None:
        target = os.path.join(self.scratch, f"branch-{server.kind}-{rep}")
        self.measure(
            server,
            "branch",
            lambda: self.brz("branch", "--no-tree", server.url(BRANCH), target),
        )
        revno = self.brz("revno", target).strip()
        if revno != str(self.corpus.revisions):
            raise RuntimeError(f"branch from {server.kind} has revno {revno}")
        shutil.rmtree(target)

    def op_push_full(self, server: Server, rep: int) -> None:
        codebase = f"full-{rep}"
        if not server.kind.startswith("store"):
            # breezy's servers need the shared repository in place; the
            # store creates it itself (inside the timing, as in production).
            _init_shared_repo(os.path.join(self.directory(server.kind), codebase))
        url = server.url(f"{codebase}/{_corpus.CAMPAIGN}")
        self.measure(
            server, "push-full", lambda: self.brz("push", "-d", self.corpus.source, url)
        )
        if self.brz("revno", url).strip() != str(self.corpus.revisions):
            raise RuntimeError(f"push to {server.kind} incomplete")
        shutil.rmtree(os.path.join(self.directory(server.kind), codebase))

    def op_push_10(self, server: Server, rep: int) -> None:
        codebase = f"inc-{rep}"
        where = os.path.join(self.directory(server.kind), codebase)
        shutil.copytree(os.path.join(self.corpus.store, _corpus.CODEBASE), where)
        url = server.url(f"{codebase}/{_corpus.CAMPAIGN}")
        self.measure(
            server, "push-10", lambda: self.brz("push", "-d", self.corpus.extra, url)
        )
        expected = str(self.corpus.revisions + _corpus.EXTRA_REVISIONS)
        if self.brz("revno", url).strip() != expected:
            raise RuntimeError(f"push to {server.kind} incomplete")
        shutil.rmtree(where)

    def op_revno(self, server: Server, rep: int) -> None:
        # A small round-trip is cheap and noisy: take a few samples a time.
        out: list[str] = []
        for _ in range(REVNO_SAMPLES):
            self.measure(
                server,
                "revno",
                lambda: out.append(self.brz("revno", server.url(BRANCH))),
            )
        if {o.strip() for o in out} != {str(self.corpus.revisions)}:
            raise RuntimeError(f"revno from {server.kind}: {out!r}")

    def op_api(self, server: Server, rep: int) -> None:
        tip = f"rev-{self.corpus.revisions:05d}"
        for op in API_OPERATIONS:
            url = f"{server.http_base}/{_corpus.CODEBASE}/{op}?old=null:&new={tip}"
            size = _get(url)  # also warms the server's caches up
            if size is None:
                self.samples.setdefault(op, {})["missing"] = True
                continue
            self.measure(server, op, functools.partial(_get, url))

    def run(self) -> None:
        reps = self.args.reps
        for kind in KINDS:
            shutil.copytree(self.corpus.store, self.directory(kind))
        servers = [Server(kind, self.directory(kind), self.home) for kind in KINDS]
        try:
            for s in servers:
                s.__enter__()
            for s in servers:  # warm up: imports, first open, page cache
                self.brz("revno", s.url(BRANCH))
                self.idle_kib[s.kind] = rss_kib(s.proc.pid)
            for rep in range(reps):
                log(f"repetition {rep + 1}/{reps}")
                for op in (
                    self.op_branch,
                    self.op_push_full,
                    self.op_push_10,
                    self.op_revno,
                ):
                    # rotate the server order so none is always first
                    for s in servers[rep % 3 :] + servers[: rep % 3]:
                        op(s, rep)
                self.op_api(servers[0], rep)
        finally:
            for s in servers:
                start = time.perf_counter()
                s.__exit__()
                log(f"{s.kind} stopped in {time.perf_counter() - start:.1f} s")


def _init_shared_repo(path: str) -> None:
    os.makedirs(path)
    fmt = controldir.format_registry.make_controldir("2a")
    bzrdir = fmt.initialize_on_transport(
        get_transport_from_url(urlutils.local_path_to_url(path))
    )
    repo = bzrdir.create_repository(shared=True)
    repo.set_make_working_trees(False)


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (the clients)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _get(url: str) -> int | None:
    """GET ``url`` fully; its size, or None if the endpoint does not exist."""
    try:
        with urllib.request.urlopen(url, timeout=600) as resp:
            return len(resp.read())
    except urllib.error.HTTPError as e:
        if e.code in (404, 405):
            return None
        raise


def log(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


# -- results --


def summarize(samples: dict) -> dict:
    """Medians per operation and server, and ratios to ``brz serve``."""
    table = {}
    for op, by_kind in samples.items():
        row: dict = {}
        for kind, runs in by_kind.items():
            if kind == "missing":
                row["missing"] = True
                continue
            if not runs:
                continue
            row[kind] = {
                "median_s": statistics.median(r["seconds"] for r in runs),
                "server_cpu_s": statistics.median(r["server_cpu_s"] for r in runs),
                "client_cpu_s": statistics.median(r["client_cpu_s"] for r in runs),
                "min_s": min(r["seconds"] for r in runs),
                "max_s": max(r["seconds"] for r in runs),
                "runs": len(runs),
                "peak_growth_mib": max(r["peak_growth_kib"] for r in runs) / 1024,
                "peak_rss_mib": max(r["peak_kib"] for r in runs) / 1024,
            }
        serve = row.get("brz-serve", {}).get("median_s")
        wsgi = row.get("breezy-wsgi", {}).get("median_s")
        for kind in ("store", "breezy-wsgi"):
            if kind in row and serve:
                row[kind]["ratio_to_brz_serve"] = row[kind]["median_s"] / serve
        if "store" in row and wsgi:
            row["store"]["ratio_to_breezy_wsgi"] = row["store"]["median_s"] / wsgi
        table[op] = row
    return table


def machine() -> dict:
    info = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    import breezy

    info["breezy"] = breezy.__version__
    return info


def _cells(row: dict, key: str, fmt: str) -> str:
    """``key`` of each server, store / breezy WSGI / brz serve."""
    return " / ".join(fmt.format(row[k][key]) if k in row else "–" for k in KINDS)


def _ratio(row: dict, kind: str, key: str) -> str:
    cell = row.get(kind, {})
    return f"{cell[key]:.2f}×" if key in cell else "–"


def markdown(result: dict) -> str:
    """The result as markdown tables (as in benchmarks/results/HISTORY.md)."""
    m = result["machine"]
    c = result["corpus"]
    lines = [
        (
            f"Corpus: {c['revisions']} revisions, {c['files']} files, "
            f"{c['packed_mib']:.1f} MiB packed; medians of {result['reps']} runs. "
            f"Machine: {m.get('cpu', '?')}, {m['nproc']} cores, "
            f"{m.get('memory_gib', '?')} GiB RAM; Python {m['python']}, "
            f"breezy {m['breezy']}.  Triples are store / breezy WSGI / brz serve."
        ),
        "",
        (
            "| operation | wall time, s | store / brz serve | WSGI / brz serve "
            "| store / WSGI | server CPU, s | client CPU, s | server memory growth, MiB |"
        ),
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for op, row in result["table"].items():
        if row.get("missing"):
            lines.append(f"| {_TITLES[op]} | endpoint missing | | | | | | |")
            continue
        cells = [
            _cells(row, "median_s", "{:.2f}"),
            _ratio(row, "store", "ratio_to_brz_serve"),
            _ratio(row, "breezy-wsgi", "ratio_to_brz_serve"),
            _ratio(row, "store", "ratio_to_breezy_wsgi"),
            _cells(row, "server_cpu_s", "{:.2f}"),
            _cells(row, "client_cpu_s", "{:.2f}"),
            _cells(row, "peak_growth_mib", "{:.0f}"),
        ]
        lines.append(f"| {_TITLES[op]} | " + " | ".join(cells) + " |")
    if "overhead" in result:
        lines += ["", overhead.markdown(result["overhead"])]
    if "scaling" in result:
        lines += ["", scaling.markdown(result["scaling"])]
    if "big" in result:
        lines += ["", big_markdown(result["big"])]
    return "\n".join(lines) + "\n"


# -- the 300 MB memory run --


def run_big(args: argparse.Namespace) -> dict:
    """Server memory growth on ``brz branch`` and ``brz push`` of --big-mb MB."""
    corpus = _corpus.build(args.cache, big_megabytes=args.big_mb, log=log)
    bench = Bench(argparse.Namespace(**{**vars(args), "reps": 1}), corpus)
    try:
        for kind in args.servers:
            shutil.copytree(corpus.store, bench.directory(kind))
        for kind in args.servers:
            with Server(kind, bench.directory(kind), bench.home) as server:
                bench.brz("revno", server.url(BRANCH))
                log(f"big corpus: {kind}")
                bench.op_branch(server, 0)
                bench.op_push_full(server, 0)
        table = summarize(bench.samples)
    finally:
        bench.close()
    return {
        "megabytes": args.big_mb,
        "packed_mib": corpus.packed_bytes() / 2**20,
        "table": table,
    }


def big_markdown(big: dict) -> str:
    lines = [
        (
            f"Server memory, {big['megabytes']} MB of incompressible content "
            f"({big['packed_mib']:.0f} MiB packed): peak resident growth over "
            "idle, MiB (wall time in parentheses)."
        ),
        "",
        "| operation | store | breezy WSGI | brz serve |",
        "|---|---:|---:|---:|",
    ]
    for op in ("branch", "push-full"):
        row = big["table"].get(op, {})
        cells = [
            f"{row[k]['peak_growth_mib']:.0f} ({row[k]['median_s']:.0f} s)"
            if k in row
            else "–"
            for k in KINDS
        ]
        lines.append(f"| {_TITLES[op]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- command line --


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--revisions", type=int, default=2000, help="corpus revisions (2000)"
    )
    p.add_argument("--files", type=int, default=300, help="corpus files (300)")
    p.add_argument("--seed", type=int, default=1, help="corpus random seed (1)")
    p.add_argument("--reps", type=int, default=7, help="repetitions per operation (7)")
    p.add_argument("--quick", action="store_true", help="2 repetitions, no scaling run")
    p.add_argument(
        "--no-scaling", action="store_true", help="skip the gunicorn scaling run"
    )
    p.add_argument(
        "--no-overhead", action="store_true", help="skip the per-request microbenchmark"
    )
    p.add_argument(
        "--big", action="store_true", help="also measure memory on a big corpus"
    )
    p.add_argument(
        "--big-only", action="store_true", help="only the big-corpus memory run"
    )
    p.add_argument(
        "--big-mb", type=int, default=300, help="size of the big corpus in MB (300)"
    )
    p.add_argument(
        "--servers",
        default=",".join(KINDS),
        help="comma-separated servers of the --big-only run (all three)",
    )
    p.add_argument(
        "--cache",
        default=os.environ.get("BJS_BENCH_CACHE", os.path.join(HERE, ".cache")),
        help="where corpora are kept between runs (benchmarks/.cache)",
    )
    p.add_argument(
        "--json",
        default=os.path.join(HERE, "results", "latest.json"),
        help="where to write the results (benchmarks/results/latest.json)",
    )
    args = p.parse_args(argv)
    args.servers = [k for k in KINDS if k in args.servers.split(",")]
    if args.quick:
        args.reps = min(args.reps, 2)
        args.no_scaling = True
    return args


def main(argv: list[str] | None = None) -> int:
    import breezy

    args = parse_args(argv)
    os.chdir(REPO)
    with breezy.initialize(setup_ui=False):
        result: dict = {
            "machine": machine(),
            "reps": args.reps,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if not args.big_only:
            corpus = _corpus.build(
                args.cache, args.revisions, args.files, args.seed, log=log
            )
            result["corpus"] = {
                "revisions": args.revisions,
                "files": args.files,
                "seed": args.seed,
                "packed_mib": corpus.packed_bytes() / 2**20,
            }
            bench = Bench(args, corpus)
            try:
                bench.run()
                result["table"] = summarize(bench.samples)
                result["idle_rss_mib"] = {
                    k: v / 1024 for k, v in bench.idle_kib.items()
                }
                if not args.no_overhead:
                    log("per-request overhead")
                    result["overhead"] = overhead.run(corpus, bench.scratch, bench.home)
                if not args.no_scaling and importlib.util.find_spec("gunicorn") is None:
                    log(
                        "gunicorn is not installed (pip install gunicorn): no scaling run"
                    )
                elif not args.no_scaling:
                    log("gunicorn scaling")
                    result["scaling"] = scaling.run(
                        corpus, bench.scratch, bench.home, log
                    )
            finally:
                bench.close()
        if args.big or args.big_only:
            result["big"] = run_big(args)
            result["big"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    previous = {}
    if os.path.exists(args.json):
        with open(args.json) as f:
            previous = json.load(f)
    if args.big_only and "table" in previous:
        # keep the main table of the previous run, add the big one
        result = {**previous, "big": result["big"]}
    elif "big" not in result and "big" in previous:
        result["big"] = previous["big"]  # the last big run, kept (it is slow)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")
    if "table" in result:
        sys.stdout.write(markdown(result))
    elif "big" in result:
        sys.stdout.write(big_markdown(result["big"]) + "\n")
    log(f"results written to {args.json}")
    return 0
