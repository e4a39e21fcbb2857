"""Shared harness of the red-team scripts: a real `brz janitor-store serve`
from this worktree with two workers in a credentials file."""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
PY = "/work/main/.venv/bin/python"

from breezy_janitor_store.auth import add_worker
from breezy_janitor_store.tests.hostile import (
    decode_response,
    encode_request,
    memory_kib,
    raw_http,
    split_response,
)

W1, P1 = "worker-1", "secret-one"
W2, P2 = "worker-2", "secret-two"


def env() -> dict:
    e = os.environ.copy()
    e["PYTHONPATH"] = ROOT
    e["BRZ_PLUGINS_AT"] = f"janitor_store@{ROOT}/breezy_janitor_store/plugin"
    e.setdefault("BRZ_EMAIL", "Red Team <red@example.org>")
    return e


def brz(*args, cwd=None, check=False):
    p = subprocess.run(
        [PY, "-m", "breezy", *args], cwd=cwd, env=env(), capture_output=True, text=True
    )
    if check and p.returncode:
        raise RuntimeError(f"brz {args}: {p.stdout}{p.stderr}")
    return p


class Server:
    def __init__(self, *extra: str, workers=True):
        self.tmp = tempfile.mkdtemp(prefix="redteam-")
        self.dir = os.path.join(self.tmp, "store")
        os.mkdir(self.dir)
        args = [
            "janitor-store",
            "serve",
            "-d",
            self.dir,
            "--port",
            "0",
            "--public-port",
            "0",
            *extra,
        ]
        if workers:
            self.creds = os.path.join(self.tmp, "creds")
            add_worker(self.creds, W1, P1)
            add_worker(self.creds, W2, P2)
            args += ["--credentials", self.creds]
        self.errpath = os.path.join(self.tmp, "stderr")
        self.proc = subprocess.Popen(
            [PY, "-m", "breezy", *args],
            env=env(),
            stdout=subprocess.PIPE,
            stderr=open(self.errpath, "w"),
        )
        self.admin = self.proc.stdout.readline().decode().strip().rstrip("/")
        self.public = self.proc.stdout.readline().decode().strip().rstrip("/")
        if not self.admin:
            raise RuntimeError(open(self.errpath).read())
        self.pid = self.proc.pid
        atexit.register(self.stop)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def stderr(self) -> str:
        return open(self.errpath).read()

    def mem(self):
        return memory_kib(self.pid)

    def worker_url(self, loc, who=(W1, P1), scheme="bzr+http"):
        host = self.public.split("//", 1)[1]
        return f"{scheme}://{who[0]}:{who[1]}@{host}/bzr/{loc}"

    def make_branch(self, name="work", revisions=1):
        path = os.path.join(self.tmp, name)
        brz("init", path, check=True)
        for i in range(revisions):
            with open(os.path.join(path, "file"), "a") as f:
                f.write(f"line {i}\n")
            brz("add", "-q", cwd=path)
            brz("commit", "-q", "-m", f"c{i}", cwd=path, check=True)
        return path


def auth_header(who=(W1, P1)) -> bytes:
    return b"Authorization: Basic " + base64.b64encode(f"{who[0]}:{who[1]}".encode())


def smart_post(
    base: str, location: str, body: bytes, who=None, extra=b"", timeout=30
) -> tuple[int, dict, bytes]:
    """POST a smart request body to LOCATION/.bzr/smart of face `base`."""
    loc = location.strip("/")
    path = (f"/{loc}/.bzr/smart" if loc else "/.bzr/smart").encode()
    if base.endswith("/bzr") or "/bzr" in base.split("//", 1)[1]:
        pass
    prefix = base.split("//", 1)[1].partition("/")[2]
    if prefix:
        path = b"/" + prefix.encode() + path
    head = b"POST " + path + b" HTTP/1.1\r\nContent-Length: " + str(len(body)).encode()
    if who:
        head += b"\r\n" + auth_header(who)
    head += extra
    raw = raw_http(base, head, body, timeout=timeout)
    return split_response(raw)


def call(base, location, verb, *args, body=None, chunks=(), who=None):
    st, h, b = smart_post(
        base, location, encode_request(verb, *args, body=body, chunks=chunks), who=who
    )
    try:
        return st, decode_response(b), b
    except Exception:
        return st, None, b
