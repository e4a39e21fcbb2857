"""``examples/deploy/``: systemd units, nginx in front, gunicorn behind.

* every unit passes ``systemd-analyze verify`` without a warning (with the
  install prefix pointed at this interpreter's ``brz`` and ``gunicorn``);
* a real nginx runs the example configuration (ports substituted, its own
  prefix, pid and logs in a scratch directory) in front of both faces, each
  served by gunicorn with the example ``gunicorn.conf.py``; the real ``brz``
  pushes through the admin face and branches through the public face, and
  nginx buffers no request or response body (it logs a warning for each
  body it spools to a temporary file).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
from functools import partial

from .support import features
from .support.deploy import DEBIAN_DEFAULT_SITE, DEPLOY, NGINX_CONF, PREFIX, listening
from .support.fixtures import (
    StoreTestCase,
    brz,
    http_request,
    python_env,
    stop_process,
    wait_for,
)
from .support.logs import TEXT_LINE

GUNICORN_CONF = os.path.join(DEPLOY, "gunicorn.conf.py")
#: What nginx logs when it spools a body to disk instead of streaming it.
BUFFERED = "buffered to a temporary file"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




def substitute(text: str, replacements: list[tuple[str, str]]) -> str:
    """``text`` with each regex replaced; each must match."""
    for pattern, new in replacements:
        text, count = re.subn(pattern, new, text, flags=re.MULTILINE)
        if not count:
            raise AssertionError(f"{pattern!r} not found in the example")
    return text


class DeployTestCase(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        if not os.path.isdir(DEPLOY):
            self.skipTest(f"examples/ is not beside this installation ({DEPLOY})")


class SystemdUnitTests(DeployTestCase):
    def test_units_verify(self) -> None:
        features.require(self, features.SYSTEMD_ANALYZE)
        bindir = os.path.dirname(sys.executable) + "/"
        units = sorted(
            n for n in os.listdir(DEPLOY) if n.endswith((".service", ".timer"))
        )
        self.assertIn("janitor-store.service", units)
        paths = []
        for name in units:
            with open(os.path.join(DEPLOY, name)) as f:
                text = f.read()
            path = self.path(name)
            with open(path, "w") as f:
                f.write(text.replace(PREFIX, bindir))
            paths.append(path)
        proc = subprocess.run(
            ["systemd-analyze", "verify", *paths],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        complaints = [
            line
            for line in (proc.stdout + proc.stderr).splitlines()
            if any(name in line for name in units)
        ]
        self.assertEqual((proc.returncode, complaints), (0, []), proc.stderr)


class NginxTests(DeployTestCase):
    def setUp(self) -> None:
        super().setUp()
        features.require(self, features.NGINX)
        features.require(self, features.GUNICORN)

    def start_gunicorn(self, face: str) -> int:
        """The store's ``face`` under gunicorn with the example settings; its port."""
        port = free_port()
        log = self.path(f"gunicorn-{face}.log")
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--config",
                    GUNICORN_CONF,
                    "breezy_janitor_store.wsgi:application",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=python_env(
                    BZR_STORE_PATH=self.storage_dir,
                    BZR_STORE_FACE=face,
                    GUNICORN_BIND=f"127.0.0.1:{port}",
                    GUNICORN_WORKERS="2",
                    GUNICORN_THREADS="4",
                    FORWARDED_ALLOW_IPS="127.0.0.1",
                ),
                cwd=self.tmp,
            )
        self.addCleanup(stop_process, proc, signal.SIGTERM, 30)

        def booted() -> bool:
            if proc.poll() is not None:
                with open(log) as f:
                    self.fail(f"gunicorn exited ({proc.returncode}):\n{f.read()}")
            with open(log) as f:
                text = f.read()
            return text.count("Booting worker") >= 2 and listening(port)

        wait_for(booted, f"gunicorn ({face}) to boot")
        with open(log) as f:
            self.assertIn("Using worker: gthread", f.read())
        return port

    def start_nginx(self, admin: int, public: int) -> tuple[int, int, str]:
        """nginx with the example configuration in front of the faces on
        ``admin`` and ``public``; its admin and public ports and error log."""
        prefix = self.path("nginx")
        os.mkdir(prefix)
        front_admin, front_public = free_port(), free_port()
        with open(NGINX_CONF) as f:
            site = substitute(
                f.read(),
                [
                    (r"server 127\.0\.0\.1:9929;", f"server 127.0.0.1:{admin};"),
                    (r"server 127\.0\.0\.1:9930;", f"server 127.0.0.1:{public};"),
                    (r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{front_public};"),
                    (r"^\s*listen \[::\]:80;\n", ""),
                    (r"^(\s*)listen 8929;", rf"\1listen 127.0.0.1:{front_admin};"),
                    (r"^\s*listen \[::\]:8929;\n", ""),
                    (r"/var/log/nginx/", prefix + "/"),
                    # the operator's host name: here, the address clients use
                    (r"server_name bzr\.example\.org ", "server_name 127.0.0.1 "),
                ],
            )
        if os.path.exists(DEBIAN_DEFAULT_SITE):
            # Debian's default site beside it, on the same port
            with open(DEBIAN_DEFAULT_SITE) as f:
                site += "\n" + substitute(
                    f.read(),
                    [
                        (
                            r"^(\s*)listen 80 default_server;",
                            rf"\1listen 127.0.0.1:{front_public} default_server;",
                        ),
                        (r"^\s*listen \[::\]:80 default_server;\n", ""),
                    ],
                )
        error_log = os.path.join(prefix, "error.log")
        temp = "\n".join(
            f"    {kind}_temp_path {prefix}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root root;\n" if os.getuid() == 0 else ""
        conf = self.nginx_conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                f"daemon off;\n{user}worker_processes 1;\n"
                f"pid {prefix}/nginx.pid;\nerror_log {error_log} info;\n"
                "events { worker_connections 256; }\n"
                f"http {{\n    access_log {prefix}/access.log;\n{temp}\n"
                f"{site}\n}}\n"
            )
        proc = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", prefix, "-c", conf, "-e", error_log],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.addCleanup(stop_process, proc, signal.SIGQUIT, 30)

        def up() -> bool:
            if proc.poll() is not None:
                self.fail(f"nginx exited: {proc.stderr.read().decode()}")
            return listening(front_admin) and listening(front_public)

        wait_for(up, "nginx to listen")
        return front_admin, front_public, error_log

    def test_client_address_and_request_id_through_nginx(self) -> None:
        """The store logs the client nginx saw and nginx's request id (not
        what the client claims), and returns that id."""
        admin = self.start_gunicorn("admin")
        public = self.start_gunicorn("public")
        front_admin, front_public, _ = self.start_nginx(admin, public)
        # the client on another loopback address than nginx's own
        for face, port in (("admin", front_admin), ("public", front_public)):
            with self.subTest(face=face):
                conn = http.client.HTTPConnection(
                    "127.0.0.1", port, timeout=60, source_address=("127.0.0.2", 0)
                )
                conn.request(
                    "GET",
                    f"/health?{face}",
                    headers={
                        "Host": "localhost",
                        "X-Forwarded-For": "203.0.113.66",
                        "X-Request-Id": "forged",
                    },
                )
                resp = conn.getresponse()
                # Debian's default site does not take localhost's requests
                self.assertEqual((resp.status, resp.read()), (200, b"ok"))
                conn.close()
                rid = resp.getheader("X-Request-Id")
                self.assertRegex(rid, r"\A[0-9a-f]{32}\Z")
                nginx_log = self.path(
                    "nginx",
                    "janitor-store-admin.log"
                    if face == "admin"
                    else "janitor-store.log",
                )
                store_log = self.path(f"gunicorn-{face}.log")

                def logged(path: str = store_log, rid: str = rid) -> list[str]:
                    with open(path) as f:
                        return [line for line in f if f"rid={rid}" in line]

                wait_for(logged, "the store's access line")
                wait_for(partial(logged, nginx_log), "nginx's access line")
                # (the store's line after its log prefix)
                for line in (*logged(), *logged(nginx_log)):
                    self.assertRegex(line, r"(^|access: )127\.0\.0\.2 - ")
                # gunicorn's lines and the store's in one format
                with open(store_log) as f:
                    for line in f.read().splitlines():
                        self.assertRegex(line, TEXT_LINE)
                    self.assertIn(f"GET /health?{face} HTTP/1.", line)

    def test_push_and_branch_through_nginx(self) -> None:
        admin = self.start_gunicorn("admin")
        public = self.start_gunicorn("public")
        front_admin, front_public, error_log = self.start_nginx(admin, public)
        work = self.make_branch(revisions=3)
        with open(os.path.join(work, "big"), "wb") as f:
            f.write(os.urandom(4 * 1024 * 1024))
        brz("add", "-q", "big", cwd=work)
        brz("commit", "-q", "-m", "big", cwd=work)
        brz(
            "push",
            "-q",
            f"bzr+http://127.0.0.1:{front_admin}/hello/lintian-fixes",
            cwd=work,
        )
        branch_url = f"http://127.0.0.1:{front_public}/bzr/hello/lintian-fixes"
        brz("branch", "-q", branch_url, self.path("copy"))
        self.assertEqual(brz("revno", branch_url).stdout.strip(), b"4")
        with (
            open(self.path("copy", "big"), "rb") as a,
            open(os.path.join(work, "big"), "rb") as b,
        ):
            self.assertEqual(a.read(), b.read())
        # an anonymous push through the public face is refused, not stored
        refused = brz("push", "-q", branch_url, cwd=work, check=False)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn(b"readonly", refused.stderr.lower())
        # the load balancer's probe
        ready = f"http://127.0.0.1:{front_public}/ready"
        self.assertEqual(http_request(ready)[::2], (200, b"ok"))
        # nothing spooled: the request bodies streamed through (a response
        # spools only when the client reads slower than the store writes,
        # so for those the configuration nginx loaded is checked as well)
        dumped = subprocess.run(
            ["/usr/sbin/nginx", "-T", "-p", self.path("nginx"), "-c", self.nginx_conf],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for location in re.findall(r"location [^{]*\{[^}]*\}", dumped):
            if "proxy_pass http://bzr_store_" in location and "/ready" not in location:
                self.assertIn("proxy_request_buffering off;", location)
                self.assertIn("proxy_buffering off;", location)
        with open(error_log) as f:
            log = f.read()
        self.assertNotIn(BUFFERED, log)
        self.assertNotIn("[error]", log)
        for kind in ("client_body", "proxy"):
            spooled = [
                files for _, _, files in os.walk(os.path.join(self.path("nginx"), kind))
            ]
            self.assertEqual(sum(map(len, spooled)), 0)
