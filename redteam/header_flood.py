"""Anonymous: header floods, long request lines, many small requests on one
kept-alive connection; RSS growth and answers."""

import socket
import time

from common import Server, raw_http, split_response

s = Server()
m0 = s.mem()
cases = {
    "150 headers": b"GET /health HTTP/1.1\r\n"
    + b"".join(b"X-%d: y\r\n" % i for i in range(150)).rstrip(b"\r\n"),
    "64 KiB header line": b"GET /health HTTP/1.1\r\nX-A: " + b"a" * 65536,
    "1 MiB request line": b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1",
    "folded header": b"GET /health HTTP/1.1\r\nX-A: a\r\n b",
    "NUL in header": b"GET /health HTTP/1.1\r\nX-A: a\x00b",
    "HTTP/0.9": b"GET /health",
    "absolute-form": b"GET http://evil/bzr/ HTTP/1.1",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM",
}
for name, head in cases.items():
    try:
        raw = raw_http(s.public, head, timeout=10)
    except OSError as e:
        print(f"{name:22} -> connection closed by server ({e})")
        continue
    try:
        st, h, body = split_response(raw)
    except (IndexError, ValueError):
        st, body = "unparsed", raw
    print(f"{name:22} -> {st} {body[:60]!r}")
host, port = s.public.split("//")[1].split(":")
c = socket.create_connection((host, int(port)))
t = time.time()
n = 20000
c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * n)
got = b""
c.settimeout(20)
try:
    while got.count(b"HTTP/1.") < n:
        d = c.recv(1 << 20)
        if not d:
            break
        got += d
except TimeoutError:
    pass
print(
    f"{n} pipelined requests: {got.count(b'HTTP/1.')} answered in {time.time() - t:.1f}s; RSS {m0['VmRSS'] // 1024} -> {s.mem()['VmRSS'] // 1024} MiB, peak {s.mem()['VmHWM'] // 1024} MiB"
)
