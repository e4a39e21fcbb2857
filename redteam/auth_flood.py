"""Anonymous: smart POSTs with a fresh wrong password each (no account
needed) keep both scrypt threads busy; measure server CPU and whether a
worker's push (credentials not cached yet) gets through."""

import base64
import os
import socket
import subprocess
import threading
import time

from common import PY, Server, env

from breezy_janitor_store.tests.hostile import cpu_seconds

s = Server()
b = s.make_branch()
host, port = s.public.split("//")[1].split(":")
stop = threading.Event()
sent = [0]
statuses = {}


def flood():
    while not stop.is_set():
        cred = base64.b64encode(b"worker-1:" + os.urandom(8).hex().encode())
        try:
            c = socket.create_connection((host, int(port)), timeout=10)
            c.sendall(
                b"POST /bzr/hello/.bzr/smart HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\nAuthorization: Basic "
                + cred
                + b"\r\n\r\n"
            )
            r = c.recv(100)
            st = r[9:12]
            statuses[st] = statuses.get(st, 0) + 1
            c.close()
            sent[0] += 1
        except OSError:
            pass


threads = [threading.Thread(target=flood, daemon=True) for _ in range(16)]
cpu0, t0 = cpu_seconds(s.pid), time.time()
for t in threads:
    t.start()
time.sleep(5)
results = []
for i in range(3):
    t1 = time.time()
    p = subprocess.run(
        [PY, "-m", "breezy", "push", "-d", b, s.worker_url(f"hello/c{i}")],
        env=env(),
        capture_output=True,
        text=True,
    )
    results.append(
        (p.returncode, round(time.time() - t1, 1), (p.stdout + p.stderr).strip()[-150:])
    )
    time.sleep(31)  # let the worker's success cache (30 s) expire before the next try
elapsed = time.time() - t0
stop.set()
print(f"flood: {sent[0]} requests in {elapsed:.0f}s, statuses {statuses}")
print(
    f"server CPU {cpu_seconds(s.pid) - cpu0:.1f}s in {elapsed:.0f}s wall ({(cpu_seconds(s.pid) - cpu0) / elapsed:.2f} cores)"
)
for r in results:
    print("worker push:", r)
