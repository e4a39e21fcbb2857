"""Per-request overhead: the store against breezy's bare smart WSGI app.

The small smart requests a ``brz revno`` or the start of a ``brz push``
sends (open the control directory, the branch, read its tip, look up a
revision) are recorded once from a real breezy client, then replayed many
times, interleaved, against

* the two WSGI applications called in this process (the application's own
  cost: routing, policies, transports, the smart exchange), and
* the two served over HTTP/1.1 keep-alive by the same paste server, in
  their own processes (what a client sees, connection handling included).
"""

from __future__ import annotations

import http.client
import io
import os
import shutil
import statistics
import struct
import subprocess
import sys
import threading
import time

from breezy.branch import Branch
from breezy.bzr.smart import protocol
from fastbencode import bdecode_as_tuple
from paste import httpserver

from breezy_janitor_store.serve import ServeSettings, build_apps
from breezy_janitor_store.web import server as store_server
from breezy_janitor_store.web.server import make_server

from . import corpus as _corpus
from .servers import Server, breezy_wsgi_app, brz_env

__all__ = ["KeepAlive", "markdown", "nagle", "nagle_markdown", "record", "run"]

ROUNDS = 200
BRANCH = f"{_corpus.CODEBASE}/{_corpus.CAMPAIGN}"


def _recorder(app, log: list):
    def wsgi(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        log.append((environ["PATH_INFO"], body))
        environ["wsgi.input"] = io.BytesIO(body)
        return app(environ, start_response)

    return wsgi


def _open_and_read_tip(url: str) -> None:
    branch = Branch.open(url)
    with branch.lock_read():
        branch.last_revision_info()
        branch.tags.get_tag_dict()


def record(directory: str, action=_open_and_read_tip) -> list[tuple[str, bytes]]:
    """The smart requests a breezy client sends for ``action(url)``.

    By default: opening the branch and reading its tip and tags.
    """
    admin, _ = build_apps(ServeSettings.resolve(directory=directory))
    log: list[tuple[str, bytes]] = []
    server = make_server(_recorder(admin, log), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        action(f"bzr+http://127.0.0.1:{server.server_address[1]}/{BRANCH}")
    finally:
        server.shutdown()
        server.server_close()
    return log


def _environ(path: str, body: bytes) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/octet-stream",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _call(app, path: str, body: bytes) -> bytes:
    status = []
    result = app(_environ(path, body), lambda s, h, e=None: status.append(s))
    try:
        data = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    if not status[0].startswith("200"):
        raise RuntimeError(f"{path}: {status[0]} {data[:200]!r}")
    return data


def _rounds(clients: dict, requests, rounds: int) -> dict[str, float]:
    """Median seconds per request of each client, rounds interleaved."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    for i in range(rounds):
        order = list(clients.items())
        if i % 2:
            order.reverse()
        for name, call in order:
            start = time.perf_counter()
            for path, body in requests:
                call(path, body)
            times[name].append((time.perf_counter() - start) / len(requests))
    return {name: statistics.median(t) for name, t in times.items()}


class KeepAlive:
    """One kept-alive HTTP/1.1 connection replaying smart requests."""

    def __init__(self, base: str) -> None:
        host, port = base[len("http://") :].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def __call__(self, path: str, body: bytes) -> bytes:
        self.conn.request(
            "POST", path, body, {"Content-Type": "application/octet-stream"}
        )
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path}: {resp.status} {data[:200]!r}")
        return data

    def close(self) -> None:
        self.conn.close()


def run(corpus: _corpus.Corpus, scratch: str, home: str, rounds: int = ROUNDS) -> dict:
    directory = os.path.join(scratch, "overhead")
    shutil.copytree(corpus.store, directory)
    try:
        requests = record(directory)
        store, _ = build_apps(ServeSettings.resolve(directory=directory))
        bare = breezy_wsgi_app(directory)
        # Same answers from both, first.
        for path, body in requests:
            if _call(store, path, body) != _call(bare, path, body):
                raise RuntimeError(f"the two apps answer {path} differently")
        in_process = _rounds(
            {
                "store": lambda p, b: _call(store, p, b),
                "breezy-wsgi": lambda p, b: _call(bare, p, b),
            },
            requests,
            rounds,
        )
        with (
            Server("store", directory, home) as s1,
            Server("breezy-wsgi", directory, home) as s2,
        ):
            clients = {
                "store": KeepAlive(s1.http_base),
                "breezy-wsgi": KeepAlive(s2.http_base),
            }
            try:
                over_http = _rounds(clients, requests, rounds)
            finally:
                for c in clients.values():
                    c.close()
        nagle_rows = nagle(directory, brz_env(home))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "nagle": nagle_rows,
        "requests": [_verb(body) for _, body in requests],
        "rounds": rounds,
        "in_process_us": {k: v * 1e6 for k, v in in_process.items()},
        "over_http_us": {k: v * 1e6 for k, v in over_http.items()},
        "in_process_overhead": in_process["store"] / in_process["breezy-wsgi"] - 1,
        "over_http_overhead": over_http["store"] / over_http["breezy-wsgi"] - 1,
    }


def _verb(body: bytes) -> str:
    """The verb of a recorded request (for the report)."""
    marker = protocol.MESSAGE_VERSION_THREE
    if not body.startswith(marker):
        return body.split(b"\n", 1)[0].decode("ascii", "replace")  # v2: hello
    rest = body[len(marker) :]
    (headers,) = struct.unpack("!L", rest[:4])
    rest = rest[4 + headers :]  # then b"s", a length and the bencoded args
    (size,) = struct.unpack("!L", rest[1:5])
    return bdecode_as_tuple(rest[5 : 5 + size])[0].decode("ascii", "replace")


def markdown(result: dict) -> str:
    ip, oh = result["in_process_us"], result["over_http_us"]
    nagle_table = nagle_markdown(result["nagle"]) if "nagle" in result else ""
    return (
        nagle_table
        + "\n\n"
        + "\n".join(
            [
                (
                    f"Per-request overhead, median of {result['rounds']} rounds of "
                    f"{len(result['requests'])} small smart requests "
                    f"({', '.join(sorted(set(result['requests'])))}):"
                ),
                "",
                "| | store | breezy WSGI | overhead |",
                "|---|---:|---:|---:|",
                (
                    f"| WSGI app called in-process | {ip['store']:.0f} µs | "
                    f"{ip['breezy-wsgi']:.0f} µs | {result['in_process_overhead']:+.1%} |"
                ),
                (
                    f"| over HTTP/1.1 keep-alive (paste) | {oh['store']:.0f} µs | "
                    f"{oh['breezy-wsgi']:.0f} µs | {result['over_http_overhead']:+.1%} |"
                ),
            ]
        )
    )


# -- why TCP_NODELAY: small smart calls over HTTP/1.0 and 1.1, Nagle on and off --


def _handler(version: str, nodelay: bool):
    """The store's paste handler speaking ``version``, Nagle on or off."""

    class Variant(store_server._Handler):
        protocol_version = version

        def setup(self) -> None:
            if nodelay:
                super().setup()
            else:
                httpserver.WSGIHandler.setup(self)

    return Variant


def nagle(directory: str, env: dict, calls: int = 30, revnos: int = 5) -> list[dict]:
    """``brz revno`` and single small calls under each protocol variant."""
    store, _ = build_apps(ServeSettings.resolve(directory=directory))
    rows = []
    for version in ("HTTP/1.0", "HTTP/1.1"):
        for nodelay in (False, True):
            # make_server's settings, with the variant handler
            httpd = httpserver.serve(
                store,
                host="127.0.0.1",
                port="0",
                handler=_handler(version, nodelay),
                start_loop=False,
                use_threadpool=False,
                daemon_threads=True,
                socket_timeout=store_server.SOCKET_TIMEOUT,
                request_queue_size=64,
            )
            thread = threading.Thread(target=httpd.serve_forever, daemon=True)
            thread.start()
            try:
                url = f"bzr+http://127.0.0.1:{httpd.server_address[1]}/{BRANCH}"
                branch = Branch.open(url)
                per_call = []
                for _ in range(calls):
                    branch._clear_cached_state()
                    start = time.perf_counter()
                    branch.last_revision_info()
                    per_call.append(time.perf_counter() - start)
                revno = []
                for _ in range(revnos):
                    start = time.perf_counter()
                    subprocess.run(
                        [sys.executable, "-m", "breezy", "--no-plugins", "revno", url],
                        env=env,
                        check=True,
                        capture_output=True,
                    )
                    revno.append(time.perf_counter() - start)
            finally:
                httpd.shutdown()
                httpd.server_close()
            rows.append(
                {
                    "protocol": version,
                    "nodelay": nodelay,
                    "call_ms": statistics.median(per_call) * 1000,
                    "revno_s": statistics.median(revno),
                }
            )
    return rows


def nagle_markdown(rows: list[dict]) -> str:
    lines = [
        (
            "Small smart calls through the store's paste server, by protocol and "
            "`TCP_NODELAY` (medians; one `Branch.last_revision_info` call on a "
            "kept-alive connection, and a whole `brz revno`):"
        ),
        "",
        "| protocol | TCP_NODELAY | one call | `brz revno` |",
        "|---|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['protocol']} | {'on' if r['nodelay'] else 'off'} "
            f"| {r['call_ms']:.1f} ms | {r['revno_s']:.3f} s |"
        )
    return "\n".join(lines)
