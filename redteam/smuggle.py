"""Anonymous: request bodies the application does not read, on a kept-alive
connection; Content-Length/Transfer-Encoding mixes."""

import socket
import time

from common import Server

s = Server()
host, port = s.public.split("//")[1].split(":")


def exchange(data, wait=3.0):
    c = socket.create_connection((host, int(port)), timeout=wait)
    c.sendall(data)
    out = b""
    end = time.time() + wait
    try:
        while time.time() < end:
            d = c.recv(65536)
            if not d:
                break
            out += d
    except TimeoutError:
        pass
    c.close()
    return out


inner = b"GET /bzr/repositories HTTP/1.1\r\nHost: x\r\n\r\n"
cases = {
    "GET with CL body": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    % len(inner)
    + inner,
    "POST page with CL body": b"POST /bzr/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    % len(inner)
    + inner,
    "TE chunked GET": b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n"
    % len(inner)
    + inner
    + b"\r\n0\r\n\r\n",
    "TE chunked + CL smart": b"POST /bzr/hello/.bzr/smart HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
    + inner,
    "CL smart 411 then inner": b"POST /bzr/hello/.bzr/smart HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    % len(inner)
    + inner,
    "two CL": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n"
    % len(inner)
    + inner,
    "CL with plus": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: +%d\r\n\r\n"
    % len(inner)
    + inner,
    "OPTIONS with body": b"OPTIONS /bzr/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    % len(inner)
    + inner,
    "404 with body": b"GET /nope HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    % len(inner)
    + inner,
    "405 with body": b"DELETE /bzr/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    % len(inner)
    + inner,
    "413 small max": b"POST /bzr/hello/.bzr/smart HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n"
    + inner,
}
for name, data in cases.items():
    out = exchange(data)
    n = out.count(b"HTTP/1.1 ") + out.count(b"HTTP/1.0 ")
    statuses = [
        l.split(b" ")[1].decode()
        for l in out.split(b"\r\n")
        if l.startswith(b"HTTP/1.")
    ]
    print(
        f"{name:28} responses={n} statuses={statuses} repositories-answered={b'[' in out and b'json' in out}"
    )
