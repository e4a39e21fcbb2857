"""Test fixtures: a real store on free loopback ports and the real ``brz``.

Everything here is plain ``unittest`` so the suite runs under ``pytest`` and
``brz selftest -s bp.janitor_store`` alike.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from collections.abc import Iterator

from breezy.plugin import load_plugins

from ...policy.auth import BasicAuth, CredentialsFile, add_worker
from ...store.storage import Storage
from ...web.app import ADMIN, PUBLIC, StoreApp
from ...web.server import make_server

__all__ = ["RunningStore", "StoreTestCase", "brz", "http_request", "tree_digest"]

#: The directory holding the ``breezy_janitor_store`` package (a checkout's top).
PROJECT_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
if importlib.util.find_spec("breezy_janitor_store") is None:
    # Loaded as a plugin from a checkout (BRZ_PLUGINS_AT): examples and
    # subprocesses import the package by its own name.
    sys.path.append(PROJECT_ROOT)


def python_env(**extra: str) -> dict[str, str]:
    """Environment for a Python subprocess that imports this package."""
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (PROJECT_ROOT, env.get("PYTHONPATH")) if p
    )
    env.update(extra)
    return env


#: This checkout's package directory.
PACKAGE_DIR = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
#: This checkout's plugin directory (breezy's entry point to the package).
PLUGIN_DIR = os.path.join(PACKAGE_DIR, "plugin")


def plugin_env(**extra: str) -> dict[str, str]:
    """Environment in which ``brz`` loads this checkout's plugin."""
    return python_env(BRZ_PLUGINS_AT=f"janitor_store@{PLUGIN_DIR}", **extra)


def stop_process(proc: subprocess.Popen, sig: int, timeout: float) -> None:
    """Send ``sig`` to ``proc`` if it runs; kill it if it outlives ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def reap(proc: subprocess.Popen) -> None:
    """Stop ``proc`` if it still runs and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def start_serve(
    test: unittest.TestCase,
    *args: str,
    ignore_sigint: bool = False,
    max_files: int | None = None,
    **env: str,
) -> tuple[subprocess.Popen, str, str]:
    """Start ``brz janitor-store serve ARGS`` with this checkout's plugin.

    Returns the process (reaped at cleanup) and its admin and public URLs,
    without trailing slashes.  With ``ignore_sigint`` it starts with
    SIGINT ignored, as a shell starts a background job; with ``max_files``
    its file-descriptor limit (``RLIMIT_NOFILE``) is that, set by
    util-linux's ``prlimit`` (which then runs the server in its place).
    """
    command = [*brz_command(), "janitor-store", "serve", *args]
    if max_files is not None:
        if shutil.which("prlimit") is None:
            test.skipTest("prlimit (util-linux) is not installed")
        command = ["prlimit", f"--nofile={max_files}", "--", *command]
    if ignore_sigint:
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=plugin_env(**env),
    )
    test.addCleanup(reap, proc)
    admin = proc.stdout.readline().decode().strip()
    public = proc.stdout.readline().decode().strip()
    if not admin:
        test.fail(proc.stderr.read().decode())
    return proc, admin.rstrip("/"), public.rstrip("/")


#: ``serve`` arguments for free ports on both faces.
FREE_PORTS = ("--port", "0", "--public-port", "0")


def assert_stops_cleanly(
    test: unittest.TestCase, proc: subprocess.Popen, sig: int = signal.SIGINT
) -> None:
    """Send ``sig`` to a ``serve`` process: it exits 0 without a traceback."""
    proc.send_signal(sig)
    test.assertEqual(proc.wait(30), 0)
    test.assertNotIn(b"Traceback", proc.stderr.read())


# Serve with every plugin loaded, as ``brz janitor-store serve`` does: the
# foreign-format probers (git, svn, ...) must not misread the store's tree.
load_plugins()

#: A clean environment for breezy: its own HOME, identity and no user plugins.
BRZ_ENV_KEYS = (
    "HOME",
    "BRZ_HOME",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "BRZ_EMAIL",
    "BRZ_LOG",
)


def brz_command() -> list[str]:
    """The real ``brz`` command line of the running interpreter's breezy."""
    return [sys.executable, "-m", "breezy"]


def brz(
    *args: str,
    cwd: str | None = None,
    env: dict | None = None,
    check: bool = True,
    input: bytes | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run the real ``brz`` command line; return the completed process."""
    proc = subprocess.run(
        brz_command() + list(args),
        cwd=cwd,
        env=env if env is not None else os.environ.copy(),
        input=input,
        capture_output=True,
        check=False,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"brz {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}"
        )
    return proc


def wait_for(condition, what: str, timeout: float = 60.0, interval: float = 0.02):
    """Poll ``condition()`` until it returns something true; return that.

    :raises AssertionError: naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(interval)


def tree_digest(path: str) -> str:
    """A checksum of every name, type and byte under ``path``."""
    digest = hashlib.sha256()
    for top, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(top, name)
            digest.update(os.path.relpath(full, path).encode() + b"\0")
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


def http_request(
    url: str,
    data: bytes | None = None,
    method: str | None = None,
    headers: dict | None = None,
) -> tuple[int, dict, bytes]:
    """One HTTP request; returns status, headers and body (errors included)."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http_request_no_redirect(url: str, method: str = "GET") -> tuple[int, dict, bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(
            urllib.request.Request(url, method=method), timeout=60
        ) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class RunningStore:
    """Both faces of a store, served on free loopback ports in this process."""

    def __init__(self, directory: str, public: dict | None = None, **common) -> None:
        storage = Storage(directory)
        self.admin_app = StoreApp(face=ADMIN, storage=storage, **common)
        self.public_app = StoreApp(
            face=PUBLIC, storage=storage, **{**common, **(public or {})}
        )
        self.directory = directory
        self._servers = [
            make_server(self.admin_app, "127.0.0.1", 0),
            make_server(self.public_app, "127.0.0.1", 0),
        ]
        self._lock = threading.Lock()
        self._connections = 0
        for server in self._servers:
            self._count_connections(server)
        self._threads = [
            threading.Thread(
                target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            for s in self._servers
        ]
        for t in self._threads:
            t.start()

    @property
    def admin(self) -> str:
        """``http://127.0.0.1:PORT`` of the admin face (no trailing slash)."""
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def public(self) -> str:
        """``http://127.0.0.1:PORT/bzr`` of the public face's branches."""
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}/bzr"

    @property
    def public_root(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def _count_connections(self, server) -> None:
        """Count ``server``'s open connections, from accept to close."""
        accept, serve = server.process_request, server.process_request_thread

        def change(by: int) -> None:
            with self._lock:
                self._connections += by

        def accepted(request, client_address) -> None:
            change(1)
            try:
                accept(request, client_address)  # starts a thread: served()
            except BaseException:
                change(-1)
                raise

        def served(request, client_address) -> None:
            try:
                serve(request, client_address)
            finally:
                change(-1)

        server.process_request = accepted
        server.process_request_thread = served

    def wait_idle(self) -> None:
        """Wait until every request a (killed) client sent is finished: no
        connection is open or waits to be accepted, twice in a row (a
        connection being accepted meanwhile is counted by then)."""
        checks = []

        def idle() -> bool:
            waiting = select.select(self._servers, [], [], 0)[0]
            checks.append(not waiting and self._connections == 0)
            return checks[-2:] == [True, True]

        wait_for(idle, "the store's connections to close")

    def stop(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()
        for t in self._threads:
            t.join(10)


#: The worker of :meth:`StoreTestCase.start_store_with_worker`.
WORKER = "worker-1"
PASSWORD = "correct horse"


class StoreTestCase(unittest.TestCase):
    """A test with a scratch directory, an isolated breezy environment and,
    via :meth:`start_store`, a running store."""

    def setUp(self) -> None:
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="bjs-test-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.home = os.path.join(self.tmp, "home")
        os.mkdir(self.home)
        saved = {k: os.environ.get(k) for k in BRZ_ENV_KEYS}
        self.addCleanup(_restore_env, saved)
        os.environ.update(
            HOME=self.home,
            BRZ_HOME=os.path.join(self.home, ".config", "breezy"),
            XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
            XDG_CACHE_HOME=os.path.join(self.home, ".cache"),
            BRZ_EMAIL="Janitor Test <janitor@example.com>",
            BRZ_LOG=os.path.join(self.tmp, "brz.log"),
        )
        self.storage_dir = os.path.join(self.tmp, "store")
        os.mkdir(self.storage_dir)

    def start_store(self, **kwargs) -> RunningStore:
        store = RunningStore(self.storage_dir, **kwargs)
        self.addCleanup(store.stop)
        return store

    def start_store_with_worker(self, **kwargs) -> RunningStore:
        """A store whose public face lets :data:`WORKER` write, with
        :data:`PASSWORD` (from a credentials file)."""
        credentials = self.path("credentials")
        add_worker(credentials, WORKER, PASSWORD)
        write_policy = BasicAuth(CredentialsFile(credentials))
        return self.start_store(public={"write_policy": write_policy}, **kwargs)

    def push_branch(self, store: RunningStore, location: str) -> str:
        """A new local branch pushed to ``location`` on ``store``'s admin
        face; its path."""
        work = self.make_branch()
        brz("push", "-q", self.smart_url(store.admin, location), cwd=work)
        return work

    def path(self, *parts: str) -> str:
        return os.path.join(self.tmp, *parts)

    def branch_lock_record(self, location: str) -> bytes:
        """The record of the held lock of the branch at ``location``
        (``CODEBASE/CAMPAIGN``), as on disk."""
        parts = (*location.split("/"), ".bzr", "branch", "lock", "held", "info")
        with open(os.path.join(self.storage_dir, *parts), "rb") as f:
            return f.read()

    def make_branch(self, name: str = "work", revisions: int = 1) -> str:
        """A local standalone branch with ``revisions`` commits; its path."""
        path = self.path(name)
        brz("init", "-q", path)
        self.commit(path, revisions)
        return path

    def commit(self, path: str, revisions: int = 1, filename: str = "file") -> None:
        for _ in range(revisions):
            with open(os.path.join(path, filename), "a") as f:
                f.write(f"line {os.urandom(4).hex()}\n")
            brz("add", "-q", cwd=path)
            brz("commit", "-q", "-m", "change", cwd=path)

    def smart_url(self, base: str, location: str) -> str:
        """``bzr+http://...`` URL of ``location`` on a face's ``base``."""
        return "bzr+" + base + "/" + location

    def out(self, proc: subprocess.CompletedProcess) -> str:
        return proc.stdout.decode() + proc.stderr.decode()


def _restore_env(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def iter_test_modules() -> Iterator[str]:
    here = os.path.dirname(os.path.dirname(__file__))
    for name in sorted(os.listdir(here)):
        if name.startswith("test_") and name.endswith(".py"):
            yield name[:-3]
