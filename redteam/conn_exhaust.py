"""Anonymous: hold every connection of the public face with request heads
trickled one byte at a time (no overall deadline); a worker's push and
/health on that face then wait in the backlog.  Uses --max-connections 64
to be quick; the default is 384."""

import socket
import subprocess
import threading
import time

from common import PY, Server, env

from breezy_janitor_store.tests.hostile import HealthProbe

N = 64
s = Server("--max-connections", str(N))
b = s.make_branch()
host, port = s.public.split("//")[1].split(":")
socks = []
for i in range(N + 10):
    c = socket.create_connection((host, int(port)))
    c.sendall(b"GET /health HTTP/1.1\r\nX-A: ")
    socks.append(c)
stop = threading.Event()


def trickle():
    while not stop.wait(5):  # one byte every 5 s (anything under 120 s works)
        for c in socks:
            try:
                c.send(b"a")
            except OSError:
                pass


threading.Thread(target=trickle, daemon=True).start()
time.sleep(2)
t = time.time()
p = (
    subprocess.run(
        [PY, "-m", "breezy", "push", "-d", b, s.worker_url("hello/lintian-fixes")],
        env=env(),
        capture_output=True,
        text=True,
        timeout=200,
    )
    if False
    else None
)
probe = HealthProbe(s.public, timeout=20)
st = probe.probe()
print(f"public /health while held: status={st[0]} after {st[1]:.1f}s")
print(f"admin /health: {HealthProbe(s.admin, timeout=20).probe()}")
try:
    p = subprocess.run(
        [PY, "-m", "breezy", "revno", s.public + "/bzr/hello/lintian-fixes"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=150,
    )
    print(
        "anonymous revno:",
        p.returncode,
        (p.stdout + p.stderr).strip()[-120:],
        f"{time.time() - t:.0f}s",
    )
except subprocess.TimeoutExpired:
    print("anonymous revno: no answer after 150 s")
stop.set()
