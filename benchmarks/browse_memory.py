"""``python -m benchmarks browse-memory``: server memory of large-file pages.

A branch whose second revision adds three 20 MiB text files (60 MiB) is
served by the store's public face and by loggerhead (its peer, with
tarballs on), each from its own process on paste.  For each request kind
(file page, raw bytes, tarball, four tarballs at once, revision page,
annotate) a fresh server is started, warmed up on the first revision (no
large file), and its peak resident size (``VmHWM``, reset first) is read
after the request: the growth is that peak less the resident size before.
Prints a table; ``--out FILE`` also writes it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import urllib.request

from .browse import _LOGGERHEAD, _STORE, _port, _serve, _wait

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1024 * 1024
NAMES = ("big0.txt", "big1.txt", "big2.txt")
CODEBASE, CAMPAIGN = "pkg", "lintian-fixes"


def _text(seed: str, size: int) -> bytes:
    lines, total, n = [], 0, 0
    while total < size:
        line = hashlib.sha256(f"{seed}-{n}".encode()).hexdigest().encode()
        line += b" line %d\n" % n
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)[:size]


def build(cache: str, megabytes: int) -> str:
    """A store directory (cached) holding ``pkg/lintian-fixes``."""
    import breezy.bzr  # noqa: F401  (registers the 2a format)
    from breezy import branchbuilder, controldir
    from breezy.transport import get_transport_from_path

    root = os.path.join(cache, f"bigtext-3x{megabytes}")
    if os.path.exists(os.path.join(root, "complete")):
        return os.path.join(root, "store")
    shutil.rmtree(root, ignore_errors=True)
    codebase = os.path.join(root, "store", CODEBASE)
    os.makedirs(codebase)
    fmt = controldir.format_registry.make_controldir("2a")
    repo = fmt.initialize_on_transport(
        get_transport_from_path(codebase)
    ).create_repository(shared=True)
    repo.set_make_working_trees(False)
    branch = controldir.ControlDir.create_branch_convenience(
        os.path.join(codebase, CAMPAIGN), force_new_tree=False
    )
    builder = branchbuilder.BranchBuilder(branch=branch)
    builder.start_series()
    committer = "Bench <bench@example.com>"
    builder.build_snapshot(
        None,
        [
            ("add", ("", b"root-id", "directory", None)),
            ("add", ("small.txt", b"small", "file", b"small\n")),
        ],
        revision_id=b"r1",
        committer=committer,
    )
    builder.build_snapshot(
        [b"r1"],
        [("add", (n, n.encode(), "file", _text(n, megabytes * MIB))) for n in NAMES],
        revision_id=b"r2",
        committer=committer,
    )
    builder.finish_series()
    open(os.path.join(root, "complete"), "w").close()
    return os.path.join(root, "store")


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=600) as resp:
        n = 0
        while chunk := resp.read(MIB):
            n += len(chunk)
        return n


def _urls(store_base: str, lh_base: str) -> dict[str, tuple[list[str], list[str]]]:
    """Each request kind: (store URLs, loggerhead URLs), fetched at once."""
    big = NAMES[1]
    s = f"{store_base}/bzr/{CODEBASE}"
    return {
        "file page": ([f"{s}/+file/{big}?rev=r2"], [f"{lh_base}/view/2/{big}"]),
        "raw bytes": ([f"{s}/+raw/{big}?rev=r2"], [f"{lh_base}/download/2/{big}"]),
        "tarball": ([f"{s}/+tarball?rev=r2"], [f"{lh_base}/tarball/2"]),
        "four tarballs at once": (
            [f"{s}/+tarball?rev=r2"] * 4,
            [f"{lh_base}/tarball/2"] * 4,
        ),
        "revision page": ([f"{s}/+revision/r2"], [f"{lh_base}/revision/2"]),
        "annotate": ([f"{s}/+annotate/{big}?rev=r2"], [f"{lh_base}/annotate/2/{big}"]),
    }


def _warm(store_base: str, lh_base: str) -> tuple[list[str], list[str]]:
    s = f"{store_base}/bzr/{CODEBASE}"
    return (
        [
            f"{s}/{CAMPAIGN}/",
            f"{s}/+file/small.txt?rev=r1",
            f"{s}/+raw/small.txt?rev=r1",
            f"{s}/+tarball?rev=r1",
            f"{s}/+revision/r1",
            f"{s}/+annotate/small.txt?rev=r1",
        ],
        [
            f"{lh_base}/changes",
            f"{lh_base}/view/1/small.txt",
            f"{lh_base}/download/1/small.txt",
            f"{lh_base}/tarball/1",
            f"{lh_base}/revision/1",
            f"{lh_base}/annotate/1/small.txt",
        ],
    )


def _fetch_all(urls: list[str]) -> str:
    """Fetch ``urls`` at once; the outcome ("ok" or the first error)."""
    errors: list[str] = []

    def one(url: str) -> None:
        try:
            _get(url)
        except OSError as e:  # an error answer is an outcome (HTTPError too)
            code = getattr(e, "code", None)
            errors.append(f"HTTP {code}" if code else repr(e))

    threads = [threading.Thread(target=one, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors[0] if errors else "ok"


def measure(store: str, tmp: str) -> dict[str, dict[str, tuple[float, str]]]:
    branch_dir = os.path.join(store, CODEBASE, CAMPAIGN)
    found: dict[str, dict[str, tuple[float, str]]] = {}
    kinds = list(_urls("", ""))
    for server in ("store", "loggerhead"):
        for kind in kinds:
            port = _port()
            base = f"http://127.0.0.1:{port}"
            if server == "store":
                args = (_STORE, store, CAMPAIGN, str(port))
            else:
                args = (_LOGGERHEAD, branch_dir, str(port))
            log = os.path.join(tmp, f"{server}.log")
            proc = _serve(*args, log=log)
            try:
                _wait(port, proc)
                warm = _warm(base, base)[0 if server == "store" else 1]
                for url in warm:
                    _fetch_all([url])
                before = _status(proc.pid, "VmRSS")
                with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
                    f.write("5")
                urls = _urls(base, base)[kind][0 if server == "store" else 1]
                outcome = _fetch_all(urls)
                growth = (_status(proc.pid, "VmHWM") - before) / MIB
            finally:
                proc.terminate()
                proc.wait(30)
            found.setdefault(kind, {})[server] = (growth, outcome)
            print(f"{server:10} {kind:22} +{growth:6.1f} MiB  {outcome}", flush=True)
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks browse-memory")
    parser.add_argument("--megabytes", type=int, default=20, help="MiB per file")
    parser.add_argument(
        "--cache",
        default=os.environ.get("BJS_BENCH_CACHE", os.path.join(HERE, ".cache")),
    )
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    store_src = build(args.cache, args.megabytes)
    tmp = tempfile.mkdtemp(prefix="bjs-browse-memory-")
    try:
        store = os.path.join(tmp, "store")
        shutil.copytree(store_src, store, symlinks=True)
        found = measure(store, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        (
            "Peak memory growth of one server process (MiB, `VmHWM` less "
            f"`VmRSS` before), a revision adding three {args.megabytes} MiB "
            "text files"
        ),
        "",
        "| request | store | loggerhead |",
        "| --- | ---: | ---: |",
    ]
    for kind, by in found.items():
        cells = []
        for server in ("store", "loggerhead"):
            growth, outcome = by[server]
            note = "" if outcome == "ok" else f" ({outcome})"
            cells.append(f"+{growth:.0f}{note}")
        lines.append(f"| {kind} | {cells[0]} | {cells[1]} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
