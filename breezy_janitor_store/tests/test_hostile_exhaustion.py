"""Adversarial tests: anonymous clients trying to exhaust a real ``serve``.

Each test starts ``brz janitor-store serve`` as a subprocess and watches it
from outside (``/proc/PID``): resident memory (``VmRSS``, peak ``VmHWM``),
CPU time, and whether the admin face's ``/health`` still answers while the
public face is flooded.  Figures are printed with ``BJS_REPORT_COUNTS=1``;
the assertions are on memory and on answers, never on wall time.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

from ..policy import auth
from ..policy.auth import BasicAuth, BoundedWork, CredentialsFile, add_worker
from ..policy.policies import PolicyUnavailable, Unauthorized
from ..web.app import ADMIN, StoreApp
from ..web.server import make_server
from .support import hostile
from .support.fixtures import (
    FREE_PORTS,
    StoreTestCase,
    brz,
    brz_command,
    http_request,
    reap,
    start_serve,
    tree_digest,
    wait_for,
)

#: Figures measured by the tests (printed at the end with BJS_REPORT_COUNTS=1).
MEASURED: dict[str, object] = {}
MIB = 1024


def _host_port(base: str) -> tuple[str, int]:
    host, port = base.split("//", 1)[1].split("/", 1)[0].split(":")
    return host, int(port)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class PasswordFloodTests(StoreTestCase):
    """Wrong Basic-auth passwords from many anonymous clients at once."""

    CLIENTS = 60
    REQUESTS = 3

    def setUp(self) -> None:
        super().setUp()
        creds = self.path("credentials")
        add_worker(creds, "worker-1", "correct horse")
        self.proc, self.admin, self.public = start_serve(
            self, "-d", self.storage_dir, *FREE_PORTS, "--credentials", creds
        )

    def attempt(self, user: str, password: str) -> tuple[int, dict[str, str]]:
        """A smart POST on the public face with Basic credentials."""
        conn = http.client.HTTPConnection(*_host_port(self.public), timeout=120)
        try:
            conn.request(
                "POST",
                "/bzr/hello/lintian-fixes/.bzr/smart",
                body=b"bzr",
                headers={"Authorization": _basic(user, password)},
            )
            response = conn.getresponse()
            response.read()
            return response.status, dict(response.getheaders())
        finally:
            conn.close()

    def test_wrong_passwords_are_bounded(self) -> None:
        pid = self.proc.pid
        self.assertEqual(self.attempt("worker-1", "warm-up")[0], 401)
        before = hostile.memory_kib(pid)["VmRSS"]
        hostile.reset_peak_memory(pid)
        answers: list[tuple[int, dict[str, str]]] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            for i in range(self.REQUESTS):
                # a different wrong password every time: nothing to remember
                got = self.attempt(f"worker-{n % 3}", f"guess-{n}-{i}-{os.getpid()}")
                with lock:
                    answers.append(got)

        clients = [
            threading.Thread(target=client, args=(n,)) for n in range(self.CLIENTS)
        ]
        with hostile.HealthProbe(self.admin) as probe:
            for t in clients:
                t.start()
            for t in clients:
                t.join(300)
        peak = hostile.memory_kib(pid)["VmHWM"]
        growth = (peak - before) / MIB
        statuses = sorted({status for status, _ in answers})
        MEASURED["password flood"] = {
            "growth MiB": round(growth, 1),
            "statuses": {s: sum(1 for a, _ in answers if a == s) for s in statuses},
            "health probes": len(probe.results),
            "health max s": round(max(probe.latencies), 3),
            "health median s": round(
                sorted(probe.latencies)[len(probe.latencies) // 2], 3
            ),
        }
        self.assertEqual(len(answers), self.CLIENTS * self.REQUESTS)
        # every answer is a refusal: wrong credentials, or "busy, retry"
        self.assertLessEqual(set(statuses), {401, 503}, MEASURED["password flood"])
        for status, headers in answers:
            if status == 503:
                self.assertIn("Retry-After", headers)
        self.assertTrue(probe.results)
        self.assertEqual(
            [s for s, _ in probe.results if s != 200], [], "admin /health failed"
        )
        self.assertLessEqual(growth, 256, MEASURED["password flood"])
        # the right password still works once the flood is over
        self.assertNotEqual(self.attempt("worker-1", "correct horse")[0], 401)
        # the same wrong password again is refused without a new hash
        self.assertEqual(self.attempt("worker-1", "warm-up")[0], 401)


class CountingCheck:
    """A real credentials file, counting the checks that reach it."""

    def __init__(self, path: str) -> None:
        self.inner = CredentialsFile(path)
        self.calls = 0

    def check(self, username: str, password: str) -> bool:
        self.calls += 1
        return self.inner.check(username, password)


class PasswordCheckTests(StoreTestCase):
    """What one wrong password may cost, and what the log keeps of it."""

    def setUp(self) -> None:
        super().setUp()
        add_worker(self.path("creds"), "w1", "right")
        self.check = CountingCheck(self.path("creds"))
        self.policy = BasicAuth(self.check)

    def attempt(self, user: str, password: str) -> bool:
        environ = {
            "REMOTE_ADDR": "192.0.2.7",
            "HTTP_AUTHORIZATION": _basic(user, password),
        }
        return self.policy(environ)

    def test_a_repeated_wrong_password_is_not_checked_again(self) -> None:
        for _ in range(3):
            with (
                self.assertLogs(auth.logger, "WARNING"),
                self.assertRaises(Unauthorized),
            ):
                self.attempt("w1", "wrong")
        self.assertEqual(self.check.calls, 1)
        self.assertTrue(self.attempt("w1", "right"))
        self.assertEqual(self.check.calls, 2)

    def test_long_user_names_are_cut_in_the_log(self) -> None:
        name = "n" * 5000
        with (
            self.assertLogs(auth.logger, "WARNING") as logs,
            self.assertRaises(Unauthorized),
        ):
            self.attempt(name, "pw")
        text = "\n".join(logs.output)
        self.assertNotIn("n" * (auth.LOGGED_NAME_LENGTH + 1), text)
        self.assertIn("n" * auth.LOGGED_NAME_LENGTH, text)
        self.assertIn("5000 characters", text)

    def test_bounded_work_refuses_beyond_its_threads_and_queue(self) -> None:
        work = BoundedWork(workers=1, wait=0.05, queue=1)
        release = threading.Event()
        self.addCleanup(release.set)
        started = threading.Event()

        def blocked() -> str:
            started.set()
            release.wait(60)
            return "done"

        holder = threading.Thread(target=work, args=(blocked,))
        holder.start()
        self.addCleanup(holder.join, 60)
        started.wait(60)
        # one waits its 0.05 s in the queue, then gives up
        with self.assertRaises(PolicyUnavailable) as refused:
            work(str, "queued")
        self.assertEqual(refused.exception.retry_after, 1)
        release.set()
        holder.join(60)
        self.assertEqual(work(str, "free"), "free")


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class ConnectionFloodTests(StoreTestCase):
    """Idle connections piling up on the public face."""

    IDLE = 1100
    MAX_FILES = 1024
    WINDOW = 6.0

    def test_idle_connections_leave_the_admin_face_alone(self) -> None:
        proc, admin, public = start_serve(
            self, "-d", self.storage_dir, *FREE_PORTS, max_files=self.MAX_FILES
        )
        pid = proc.pid
        address = _host_port(public)
        idle: list[socket.socket] = []
        self.addCleanup(lambda: [s.close() for s in idle])
        # In batches the listening backlog holds, each accepted before the
        # next, until the server stops accepting; then all the rest.
        accepting, files = True, _open_files(pid)
        while len(idle) < self.IDLE:
            batch = min(self.IDLE - len(idle), 32 if accepting else self.IDLE)
            for _ in range(batch):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(address)  # EINPROGRESS
                idle.append(s)
            if accepting:
                counts: list[int] = []

                def taken(target: int = files + batch, counts: list = counts) -> bool:
                    counts.append(_open_files(pid))
                    stalled = len(counts) > 10 and counts[-1] == counts[-11]
                    return counts[-1] >= target or stalled

                wait_for(taken, "the server to accept", timeout=60, interval=0.05)
                accepting = counts[-1] >= files + batch
                files = counts[-1]
        cpu_before = hostile.cpu_seconds(pid)
        start = time.monotonic()
        with hostile.HealthProbe(admin, timeout=10) as probe:
            wait_for(
                lambda: time.monotonic() - start >= self.WINDOW,
                "the measuring window",
                timeout=self.WINDOW + 30,
                interval=0.1,
            )
        cpu = hostile.cpu_seconds(pid) - cpu_before
        window = time.monotonic() - start
        for s in idle:
            s.close()
        closed = time.monotonic()
        wait_for(
            lambda: hostile.HealthProbe(public, timeout=2).probe()[0] == 200,
            "the public face to answer again",
            timeout=60,
        )
        recovered = time.monotonic() - closed
        MEASURED["idle connections"] = {
            "server fds": files,
            "cpu s": round(cpu, 2),
            "window s": round(window, 1),
            "health probes": len(probe.results),
            "health failures": sum(1 for s, _ in probe.results if s != 200),
            "health max s": round(max(probe.latencies), 3),
            "public answers again after s": round(recovered, 2),
        }
        self.assertEqual(
            [s for s, _ in probe.results if s != 200],
            [],
            MEASURED["idle connections"],
        )
        # no spinning: generous, the target is 1.5 s
        self.assertLess(cpu, 3.0, MEASURED["idle connections"])
        self.assertLess(files, self.MAX_FILES - 100, MEASURED["idle connections"])

    def test_a_capped_face_accepts_again_when_a_connection_closes(self) -> None:
        app = StoreApp(face=ADMIN, directory=self.storage_dir)
        server = make_server(app, "127.0.0.1", 0, max_connections=2)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        address = server.server_address[:2]
        first, second = (socket.create_connection(address) for _ in range(2))
        self.addCleanup(second.close)
        with socket.create_connection(address, timeout=60) as third:
            third.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            # two idle connections hold both places: not served yet
            self.assertEqual(select.select([third], [], [], 1.0)[0], [])
            first.close()
            self.assertIn(b"200 OK", third.recv(4096))


class TrickledHeadTests(StoreTestCase):
    """A client trickling its request heads, over many connections from
    one address, holds neither a connection past the head deadline nor
    more than its address's share of the face."""

    def serve(self, proxies: str | None = None, **kwargs) -> tuple:
        app = StoreApp(face=ADMIN, directory=self.storage_dir, trusted_proxies=proxies)
        server = make_server(app, "127.0.0.1", 0, **kwargs)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server.server_address[:2]

    def test_a_trickled_head_is_cut_at_its_deadline(self) -> None:
        address = self.serve(head_timeout=1.0)
        with socket.create_connection(address, timeout=60) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            answer = b""
            deadline = time.monotonic() + 60
            # one header byte whenever 0.2 s pass without an answer
            while time.monotonic() < deadline:
                if select.select([s], [], [], 0.2)[0]:
                    data = s.recv(4096)
                    if not data:
                        break
                    answer += data
                    continue
                try:
                    s.send(b"X")
                except OSError:
                    break
            self.assertTrue(answer.startswith(b"HTTP/1.1 408"), answer[:100])

    def test_one_address_holds_at_most_its_share(self) -> None:
        address = self.serve(max_connections=8)  # 2 per address
        held = [socket.create_connection(address) for _ in range(2)]
        self.addCleanup(lambda: [s.close() for s in held])
        for s in held:  # both accepted: each answers a request
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b"200 OK", s.recv(4096))
        with socket.create_connection(address, timeout=60) as third:
            answer = third.recv(4096)
            self.assertTrue(answer.startswith(b"HTTP/1.1 503"), answer)
            self.assertIn(b"too many connections from your address", answer)
        held.pop().close()

        def served() -> bool:  # once the server has seen the close
            with socket.create_connection(address, timeout=60) as again:
                again.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                with contextlib.suppress(OSError):
                    return b"200 OK" in again.recv(4096)
                return False

        wait_for(served, "a connection from the address to be served again")

    def test_a_trusted_proxy_is_not_capped_by_address(self) -> None:
        address = self.serve(proxies="127.0.0.1", max_connections=8)
        held = [socket.create_connection(address, timeout=60) for _ in range(4)]
        self.addCleanup(lambda: [s.close() for s in held])
        for s in held:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b"200 OK", s.recv(4096))


class DrainTests(StoreTestCase):
    """SIGTERM while a worker pushes: the push completes, no lock is left."""

    def test_sigterm_during_a_push_lets_it_finish(self) -> None:
        proc, admin, _ = start_serve(
            self, "-d", self.storage_dir, *FREE_PORTS, "--drain-timeout", "120"
        )
        work = self.make_branch()
        url = self.smart_url(admin, "hello/lintian-fixes")
        brz("push", "-q", url, cwd=work)
        with open(os.path.join(work, "big"), "wb") as f:
            f.write(os.urandom(24 * 1024 * 1024))  # incompressible
        brz("add", "-q", "big", cwd=work)  # named: over add.maximum_file_size
        brz("commit", "-q", "-m", "a big file", cwd=work)
        branch = os.path.join(self.storage_dir, "hello", "lintian-fixes")
        held = os.path.join(branch, ".bzr", "branch", "lock", "held")
        push = subprocess.Popen(
            [*brz_command(), "push", url],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.addCleanup(reap, push)
        wait_for(lambda: os.path.isdir(held), "the push to take the branch lock")
        proc.send_signal(signal.SIGTERM)
        output = push.communicate(timeout=300)[0].decode(errors="replace")
        self.assertEqual(push.returncode, 0, output)
        self.assertEqual(proc.wait(150), 0)
        self.assertNotIn(b"Traceback", proc.stderr.read())
        self.assertFalse(os.path.exists(held))
        repo_lock = os.path.join(self.storage_dir, "hello", ".bzr", "repository")
        self.assertFalse(os.path.exists(os.path.join(repo_lock, "lock", "held")))
        self.assertEqual(brz("revno", branch).stdout.strip(), b"2")
        self.assertEqual(brz("check", branch, check=False).returncode, 0)

    def test_a_lock_left_by_a_killed_client_is_waited_for_until_the_timeout(
        self,
    ) -> None:
        proc, admin, _ = start_serve(
            self, "-d", self.storage_dir, *FREE_PORTS, "--drain-timeout", "2"
        )
        work = self.make_branch()
        url = self.smart_url(admin, "hello/lintian-fixes")
        brz("push", "-q", url, cwd=work)
        with open(os.path.join(work, "big"), "wb") as f:
            f.write(os.urandom(8 * 1024 * 1024))
        brz("add", "-q", "big", cwd=work)
        brz("commit", "-q", "-m", "a big file", cwd=work)
        held = os.path.join(
            self.storage_dir, "hello", "lintian-fixes", ".bzr", "branch", "lock", "held"
        )
        push = subprocess.Popen(
            [*brz_command(), "push", url],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(reap, push)
        wait_for(lambda: os.path.isdir(held), "the push to take the branch lock")
        push.kill()
        push.wait(60)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(120), 0)
        log = proc.stderr.read().decode(errors="replace")
        self.assertRegex(
            log, r"stopping with \d+ requests in flight and [1-9]\d* write"
        )
        self.assertTrue(os.path.isdir(held))  # left for break-lock

    def test_stops_at_once_without_locks_or_requests(self) -> None:
        proc, admin, _ = start_serve(
            self, "-d", self.storage_dir, *FREE_PORTS, "--drain-timeout", "600"
        )
        self.assertEqual(hostile.HealthProbe(admin).probe()[0], 200)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60), 0)


def _plant_lock_record(branch_dir: str, size: int, age: float) -> str:
    """A held branch lock whose record is ``size`` bytes of junk, taken
    ``age`` seconds ago (as a writer could leave it); its ``held`` path."""
    held = os.path.join(branch_dir, ".bzr", "branch", "lock", "held")
    os.makedirs(held)
    with open(os.path.join(held, "info"), "wb") as f:
        line = b"junk " * 200 + b"\n"
        f.writelines(line for _ in range(size // len(line)))
    then = time.time() - age
    os.utime(held, (then, then))
    return held


class BadDataTests(StoreTestCase):
    """What a writer may leave on disk is shown, not served as a 500."""

    def pushed(self, admin: str) -> str:
        work = self.make_branch()
        brz("push", "-q", self.smart_url(admin, "hello/lintian-fixes"), cwd=work)
        return work

    def test_oversized_lock_record(self) -> None:
        proc, admin, _ = start_serve(
            self,
            "-d",
            self.storage_dir,
            *FREE_PORTS,
            "--break-locks-older-than",
            "3600",
        )
        work = self.pushed(admin)
        branch = os.path.join(self.storage_dir, "hello", "lintian-fixes")
        held = _plant_lock_record(branch, 32 * 1024 * 1024, 7200)
        before = hostile.memory_kib(proc.pid)["VmRSS"]
        hostile.reset_peak_memory(proc.pid)
        status, _, body = http_request(admin + "/hello/locks")
        growth = (hostile.memory_kib(proc.pid)["VmHWM"] - before) / MIB
        MEASURED["32 MB lock record"] = {"GET locks growth MiB": round(growth, 1)}
        self.assertEqual(status, 200, body)
        [lock] = json.loads(body)
        self.assertEqual(lock["location"], "hello/lintian-fixes")
        self.assertIn("unknown", lock["holder"])
        self.assertGreaterEqual(lock["age"], 7000)  # the held directory's age
        self.assertLess(growth, 16)
        # breakable by hand ...
        request = json.dumps({"location": "hello/lintian-fixes", "older_than": 3600})
        status, _, body = http_request(
            admin + "/hello/locks",
            data=request.encode(),
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(status, 200, body)
        self.assertFalse(os.path.exists(held))
        # ... and by --break-locks-older-than, before the next push
        _plant_lock_record(branch, 32 * 1024 * 1024, 7200)
        self.commit(work)
        brz("push", "-q", self.smart_url(admin, "hello/lintian-fixes"), cwd=work)
        self.assertFalse(os.path.exists(held))
        self.assertEqual(brz("revno", branch).stdout.strip(), b"2")

    def test_ghost_tip(self) -> None:
        store = self.start_store(campaigns=["lintian-fixes"])
        self.pushed(store.admin)
        last = os.path.join(
            self.storage_dir, "hello", "lintian-fixes", ".bzr", "branch"
        )
        with open(os.path.join(last, "last-revision"), "wb") as f:
            f.write(b"2 ghost-revision-id\n")
        status, _, body = http_request(store.public + "/hello/lintian-fixes/")
        self.assertEqual(status, 200, body)
        self.assertIn(b"ghost-revision-id", body)
        self.assertIn(b"not in the repository", body)
        self.assertEqual(http_request(store.public + "/hello/")[0], 200)

    def test_remote_urls(self) -> None:
        store = self.start_store(campaigns=["lintian-fixes"])
        self.pushed(store.admin)
        url = store.admin + "/hello/remotes/lintian-fixes"

        def post(remote: str) -> tuple[int, bytes]:
            data = urllib.parse.urlencode({"url": remote}).encode()
            return http_request(url, data=data)[::2]

        before = tree_digest(self.storage_dir)
        for bad in [
            "https://example.com/'''x\"\"\"",
            "file:///etc/passwd",
            "FILE://host/etc",
            "sftp://example.com/x",
            "lp:hello",
            "javascript://example.com/%0aalert(1)",
        ]:
            with self.subTest(url=bad):
                status, body = post(bad)
                self.assertEqual(status, 400, body)
                self.assertIn(b"invalid url", body)
        self.assertEqual(tree_digest(self.storage_dir), before)
        for good in [
            "https://salsa.debian.org/debian/hello.git",
            "git://git.example.org/hello",
            "bzr+ssh://bazaar.example.org/hello",
            "svn+https://svn.example.org/hello/trunk",
        ]:
            with self.subTest(url=good):
                self.assertEqual(post(good)[0], 200)


def tearDownModule() -> None:
    if MEASURED and os.environ.get("BJS_REPORT_COUNTS"):
        print("\nexhaustion figures:", MEASURED)
