"""The servers under comparison, each a subprocess on a loopback port.

* ``store``: ``brz janitor-store serve`` with its defaults (admin face);
* ``store-nosync``: the same with ``--no-sync`` (see ``benchmarks/sync.py``);
* ``breezy-wsgi``: breezy's own HTTP smart server
  (``breezy.transport.http.wsgi``), writable, under the very same paste
  server as the store (:func:`breezy_janitor_store.web.server.make_server`);
* ``brz-serve``: ``brz serve --allow-writes`` (``bzr://`` over TCP);
* ``gunicorn``: the store's WSGI module under gunicorn (for scaling).

Run as ``python -m benchmarks.servers breezy-wsgi DIR`` to serve breezy's
WSGI app alone (that is how :class:`Server` starts it).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Self

__all__ = ["KINDS", "REPO", "Server", "brz_env"]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("store", "breezy-wsgi", "brz-serve")
#: How each server says where it listens (the store prints its admin face first).
_URL = re.compile(
    rb"(?:^|Listening at: )(?P<http>http://[^\s/]+)|listening on port: (?P<port>\d+)",
    re.MULTILINE,
)


def brz_env(home: str, **extra: str) -> dict:
    """Environment of every process: isolated breezy home, this checkout."""
    env = dict(os.environ)
    for key in ("BRZ_PLUGINS_AT", "BRZ_DISABLE_PLUGINS", "BZR_STORE_PATH"):
        env.pop(key, None)
    env.update(
        HOME=home,
        BRZ_HOME=os.path.join(home, ".config", "breezy"),
        XDG_CONFIG_HOME=os.path.join(home, ".config"),
        XDG_CACHE_HOME=os.path.join(home, ".cache"),
        BRZ_EMAIL="Janitor Benchmark <bench@example.com>",
        BRZ_LOG=os.path.join(home, "brz.log"),
        PYTHONPATH=os.pathsep.join(
            p for p in (REPO, os.environ.get("PYTHONPATH")) if p
        ),
        **extra,
    )
    return env


class Server:
    """One server process serving ``directory``; a context manager."""

    def __init__(
        self, kind: str, directory: str, home: str, workers: int = 1, threads: int = 8
    ) -> None:
        self.kind = kind
        self.directory = directory
        self.home = home
        self.workers = workers
        self.threads = threads
        self.proc: subprocess.Popen | None = None
        self.base = ""

    def command(self) -> tuple[list[str], dict]:
        py = sys.executable
        if self.kind in ("store", "store-nosync"):
            env = brz_env(
                self.home,
                BRZ_PLUGINS_AT="janitor_store@"
                + os.path.join(REPO, "breezy_janitor_store", "plugin"),
            )
            args = ["-m", "breezy", "janitor-store", "serve", "-d", self.directory]
            args += ["--listen", "127.0.0.1", "--port", "0", "--public-port", "0"]
            if self.kind == "store-nosync":
                args.append("--no-sync")
            return [py, *args], env
        if self.kind == "breezy-wsgi":
            return [py, "-m", "benchmarks.servers", self.kind, self.directory], brz_env(
                self.home
            )
        if self.kind == "brz-serve":
            args = ["-m", "breezy", "serve", "--allow-writes", "--listen", "127.0.0.1"]
            args += ["--port", "0", "--directory", self.directory]
            return [py, *args], brz_env(self.home)
        if self.kind == "gunicorn":
            env = brz_env(self.home, BZR_STORE_PATH=self.directory)
            args = ["-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers"]
            args += [str(self.workers), "--worker-class", "gthread", "--threads"]
            args += [str(self.threads), "--log-level", "info"]
            args += ["breezy_janitor_store.wsgi:application"]
            return [py, *args], env
        raise ValueError(self.kind)

    def __enter__(self) -> Self:
        cmd, env = self.command()
        # Output goes to a file: a pipe nobody reads would fill with the
        # access log and block the server.
        self.log = os.path.join(self.home, f"{self.kind}-{time.time_ns()}.log")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while True:
            with open(self.log, "rb") as f:
                m = _URL.search(f.read())
            if m is not None and self._booted():
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                with open(self.log, "rb") as f:
                    raise RuntimeError(f"{self.kind} did not start: {f.read()!r}")
            time.sleep(0.02)
        if m.group("http"):
            self.base = "bzr+" + m.group("http").decode().rstrip("/")
        else:
            self.base = "bzr://127.0.0.1:" + m.group("port").decode()
        return self

    def _booted(self) -> bool:
        """Whether every gunicorn worker is up (other servers: at once)."""
        if self.kind != "gunicorn":
            return True
        with open(self.log, "rb") as f:
            return f.read().count(b"Booting worker") >= self.workers

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # (not SIGINT: a shell starting us in the background ignores it,
            # and so would the servers)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def url(self, location: str) -> str:
        return f"{self.base}/{location}"

    @property
    def http_base(self) -> str:
        """``http://host:port`` (HTTP servers only)."""
        return self.base[len("bzr+") :]

    def pids(self) -> list[int]:
        """The processes doing the serving (gunicorn: its workers)."""
        if self.kind != "gunicorn":
            return [self.proc.pid]
        return _children(self.proc.pid)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


# -- memory of a process, from /proc --


def rss_kib(pid: int) -> int:
    return _status_field(pid, "VmRSS")


def peak_kib(pid: int) -> int:
    return _status_field(pid, "VmHWM")


def reset_peak(pid: int) -> None:
    """Reset the process's peak resident size (VmHWM) to its current size."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_field(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise KeyError(name)


def breezy_wsgi_app(directory: str):
    """breezy's own writable smart WSGI app for ``directory``, bare."""
    from breezy.transport.http import wsgi

    return wsgi.make_app(
        directory,
        "/",
        path_var="PATH_INFO",
        readonly=False,
        load_plugins=False,
        enable_logging=False,
    )


def _serve_breezy_wsgi(directory: str) -> None:
    """Serve breezy's own writable smart WSGI app under the store's server."""
    import breezy

    from breezy_janitor_store.web.server import make_server, serve_forever, server_url

    with breezy.get_global_state():
        server = make_server(breezy_wsgi_app(directory), "127.0.0.1", 0)

        def ready() -> None:
            sys.stdout.write(server_url(server) + "\n")
            sys.stdout.flush()

        serve_forever([server], ready)


if __name__ == "__main__":
    if sys.argv[1:2] != ["breezy-wsgi"] or len(sys.argv) != 3:
        sys.exit("usage: python -m benchmarks.servers breezy-wsgi DIRECTORY")
    _serve_breezy_wsgi(sys.argv[2])
