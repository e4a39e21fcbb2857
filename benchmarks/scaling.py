"""Aggregate throughput of concurrent branching under gunicorn, 1 vs 2 processes.

The store's WSGI module (``breezy_janitor_store.wsgi:application``) under
gunicorn's threaded workers, with 1 and then 2 worker processes, measured
two ways, all clients at once, throughput over the whole wall time:

* ``brz branch``: CLIENTS real ``brz branch`` processes, ROUNDS each.  The
  clients run on this machine too and need more CPU than the server (see
  the client CPU column of the main table), so on few cores they, not the
  server, set the pace;
* the server side of ``brz branch``: the smart requests of one real
  ``brz branch``, recorded once, replayed by CLIENTS lightweight HTTP
  clients (threads reading and dropping the answers) REPLAYS times each,
  so the server's own capacity shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from breezy.controldir import ControlDir

from . import corpus as _corpus
from .overhead import KeepAlive, record
from .servers import Server, brz_env

__all__ = ["markdown", "run"]

CLIENTS = 4
ROUNDS = 1
REPLAYS = 3
BRANCH = f"{_corpus.CODEBASE}/{_corpus.CAMPAIGN}"


def _brz(env: dict, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "breezy", "--no-plugins", *args],
        env=env,
        check=True,
        capture_output=True,
        timeout=1800,
    )


def _concurrently(client, clients: int) -> float:
    """Wall seconds for ``client(n)`` run by ``clients`` threads at once."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return time.perf_counter() - start


def _brz_branches(server: Server, scratch: str, env: dict) -> dict:
    def client(n: int) -> None:
        for r in range(ROUNDS):
            target = os.path.join(scratch, f"scale-{n}-{r}")
            _brz(env, "branch", "--no-tree", server.url(BRANCH), target)
            shutil.rmtree(target)

    seconds = _concurrently(client, CLIENTS)
    return {"seconds": seconds, "per_minute": CLIENTS * ROUNDS * 60 / seconds}


def _replays(server: Server, requests: list) -> dict:
    def client(n: int) -> None:
        conn = KeepAlive(server.http_base)
        try:
            for _ in range(REPLAYS):
                for path, body in requests:
                    conn(path, body)
        finally:
            conn.close()

    seconds = _concurrently(client, CLIENTS)
    return {"seconds": seconds, "per_minute": CLIENTS * REPLAYS * 60 / seconds}


def _sprout(scratch: str):
    def action(url: str) -> None:
        target = os.path.join(scratch, "recorded-branch")
        ControlDir.open(url).sprout(target, create_tree_if_local=False)
        shutil.rmtree(target)

    return action


def run(corpus: _corpus.Corpus, scratch: str, home: str, log=print) -> dict:
    directory = os.path.join(scratch, "scaling")
    shutil.copytree(corpus.store, directory)
    env = brz_env(home)
    result: dict = {
        "clients": CLIENTS,
        "rounds": ROUNDS,
        "replays": REPLAYS,
        "brz_branch": {},
        "replayed": {},
    }
    try:
        requests = record(directory, _sprout(scratch))
        for workers in (1, 2):
            log(f"gunicorn with {workers} worker process(es)")
            with Server("gunicorn", directory, home, workers=workers) as server:
                _brz(env, "revno", server.url(BRANCH))  # warm up
                result["brz_branch"][str(workers)] = _brz_branches(server, scratch, env)
                result["replayed"][str(workers)] = _replays(server, requests)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    for kind in ("brz_branch", "replayed"):
        one, two = result[kind]["1"], result[kind]["2"]
        result[kind]["scaling"] = two["per_minute"] / one["per_minute"]
    result["requests"] = len(requests)
    result["request_bytes"] = sum(len(b) for _, b in requests)
    return result


def markdown(result: dict) -> str:
    rows = []
    for kind, title in (
        (
            "brz_branch",
            f"`brz branch`, {result['clients']} clients × {result['rounds']}",
        ),
        (
            "replayed",
            (
                f"server side of `brz branch` ({result['requests']} requests) "
                f"replayed, {result['clients']} clients × {result['replays']}"
            ),
        ),
    ):
        r = result[kind]
        rows.append(
            f"| {title} | {r['1']['per_minute']:.1f} | {r['2']['per_minute']:.1f} "
            f"| {r['scaling']:.2f}× |"
        )
    return "\n".join(
        [
            "gunicorn (gthread workers), branches per minute, all clients at once:",
            "",
            "| load | 1 process | 2 processes | scaling |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
