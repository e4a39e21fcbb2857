"""A throwaway PostgreSQL cluster for tests (Debian's ``postgresql`` package).

:func:`shared_cluster` starts one cluster per test process, listening only on
a Unix socket in its temporary directory, and stops and deletes it when the
process exits (or when :func:`stop_shared_cluster` is called).  As root the
server runs as the ``postgres`` user (or ``nobody``): ``initdb`` refuses root.

Without PostgreSQL installed the tests using it are skipped, with a hint on
how to install it; with ``CI=true`` that is a failure instead.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import unittest

import breezy
import psycopg

from .features import find_postgres_bindir, missing
from .fixtures import stop_process, wait_for

__all__ = [
    "PostgresCluster",
    "find_bindir",
    "require_postgres",
    "shared_cluster",
    "stop_shared_cluster",
]

INSTALL_HINT = (
    "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin); "
    "install it with: apt-get install postgresql"
)

#: The janitor's own schema (only what the store reads).
SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE DOMAIN codebase_name AS TEXT check (value similar to '[a-z0-9][a-z0-9+-.]+');
CREATE TABLE codebase (name codebase_name, url text, branch text, subpath text,
    vcs_type text, inactive boolean not null default false, unique(name));
CREATE TABLE worker (name text not null unique, password text not null, link text);
"""
TEMPLATE = "janitor_template"


#: The newest ``/usr/lib/postgresql/N/bin`` with ``initdb`` (or PATH's).
find_bindir = find_postgres_bindir


_FIND = object()


def require_postgres(
    test: unittest.TestCase, bindir: str | None | object = _FIND
) -> str:
    """PostgreSQL's ``bindir`` (default: :func:`find_bindir`); without one,
    skip ``test``, or fail it when ``CI=true``."""
    if bindir is _FIND:
        bindir = find_bindir()
    if bindir is not None:
        return bindir
    missing(test, INSTALL_HINT)


class PostgresCluster:
    """A private PostgreSQL server in a temporary directory."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        _sweep_abandoned()
        self.tmp = tempfile.mkdtemp(prefix=_PREFIX)
        with open(os.path.join(self.tmp, _OWNER), "w") as f:
            f.write(str(os.getpid()))
        self.datadir = os.path.join(self.tmp, "data")
        self.socketdir = self.tmp
        self.port = 5432  # only names the socket file: no TCP listener
        self.superuser = "postgres"
        self._proc: subprocess.Popen | None = None
        self._account = _unprivileged_account() if os.geteuid() == 0 else None
        self._counter = 0
        try:
            if self._account is not None:
                os.chown(self.tmp, self._account.pw_uid, self._account.pw_gid)
            self._run(
                "initdb",
                "-D",
                self.datadir,
                "-U",
                self.superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            self.start()
            with self.connect() as conn:
                conn.execute(f"CREATE DATABASE {TEMPLATE}")
            with self.connect(TEMPLATE) as conn:
                conn.execute(SCHEMA)
        except BaseException:
            self.destroy()
            raise

    def _process_options(self) -> dict:
        """``subprocess`` options: an unprivileged user when we are root."""
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        env.pop("PGDATA", None)
        options = {"cwd": self.tmp, "env": env, "stdin": subprocess.DEVNULL}
        if self._account is not None:
            options.update(
                user=self._account.pw_uid,
                group=self._account.pw_gid,
                extra_groups=[],
            )
        return options

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run(
            [os.path.join(self.bindir, tool), *args],
            capture_output=True,
            timeout=120,
            check=False,
            **self._process_options(),
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({proc.returncode}): "
                f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}"
            )

    def start(self) -> None:
        """Start the server and wait until it accepts connections.

        The server is a child of this process and, where ``setpriv`` can
        arrange it, is terminated when this process dies (even if killed).
        """
        command = [
            os.path.join(self.bindir, "postgres"),
            "-D",
            self.datadir,
            "-p",
            str(self.port),
            "-k",
            self.socketdir,
            "-c",
            "listen_addresses=",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "max_connections=50",
        ]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        with open(os.path.join(self.tmp, "server.log"), "ab") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, **self._process_options()
            )
        try:
            wait_for(self._answers, "PostgreSQL to start")
        except AssertionError:
            self._proc.kill()
            self._proc.wait()
            with open(os.path.join(self.tmp, "server.log"), "rb") as f:
                log_tail = f.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"PostgreSQL did not start: {log_tail}") from None

    def _answers(self) -> bool:
        """Whether the server accepts connections; fails once it has died."""
        if self._proc.poll() is not None:
            raise AssertionError("PostgreSQL exited")
        try:
            psycopg.connect(self.url(), connect_timeout=5).close()
        except psycopg.OperationalError:
            return False
        return True

    def stop(self) -> None:
        """Stop the server now (fast shutdown: sessions are cut)."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        stop_process(proc, signal.SIGINT, 60)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def pids(self) -> list[int]:
        """The postmaster and its children (Linux /proc)."""
        if not self.running():
            return []
        postmaster = self._proc.pid  # setpriv execs postgres: same process
        pids = [postmaster]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == postmaster:
                pids.append(int(entry))
        return pids

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every server process (e.g. SIGSTOP to freeze)."""
        for pid in self.pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def url(self, dbname: str = "postgres") -> str:
        """A ``postgresql://`` URL of ``dbname`` over the Unix socket."""
        return (
            f"postgresql://{self.superuser}@/{dbname}"
            f"?host={self.socketdir}&port={self.port}"
        )

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=10)

    def create_database(self) -> str:
        """A fresh database with the janitor schema; returns its name."""
        self._counter += 1
        name = f"test_{os.getpid()}_{self._counter}"
        with self.connect() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name

    def drop_database(self, name: str) -> None:
        if not self.running():
            return
        with self.connect() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def destroy(self) -> None:
        """Stop the server (if running) and delete everything."""
        try:
            if self.running():
                self.signal(signal.SIGCONT)
                self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


_PREFIX = "bjs-pg-"
_OWNER = "owner.pid"


def _sweep_abandoned() -> None:
    """Delete clusters left by test processes that were killed (their server
    died with them, see :meth:`PostgresCluster.start`)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), _PREFIX + "*")):
        try:
            with open(os.path.join(path, _OWNER)) as f:
                os.kill(int(f.read()), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours to judge (yet): no or unreadable owner file


def _unprivileged_account() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no unprivileged account (postgres, nobody) to run PostgreSQL")


_shared: PostgresCluster | None = None


def shared_cluster(test: unittest.TestCase) -> PostgresCluster:
    """The process's cluster, started on first use (skips/fails as above)."""
    global _shared
    bindir = require_postgres(test)
    if _shared is None:
        _shared = PostgresCluster(bindir)
        atexit.register(stop_shared_cluster)
        # ``brz selftest`` leaves by os._exit(), skipping atexit: use the
        # cleanups breezy runs on the way out instead.
        state = getattr(breezy, "_global_state", None)
        if state is not None:
            state.exit_stack.callback(stop_shared_cluster)
    elif not _shared.running():
        _shared.start()
    return _shared


def stop_shared_cluster() -> None:
    """Stop and delete the shared cluster, if any."""
    global _shared
    cluster, _shared = _shared, None
    if cluster is not None:
        cluster.destroy()
