"""HEAD then GET of one URL on one connection."""

from __future__ import annotations

import socket
import urllib.parse

#: Seconds a raw-socket read may wait before the test fails.
READ_TIMEOUT = 30


def _read_until(sock: socket.socket, data: bytes, done) -> bytes:
    """Receive into ``data`` until ``done(data)`` (or the peer closes)."""
    while not done(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _response_length(data: bytes) -> int | None:
    """Length of the complete response at the start of ``data``, if known."""
    head, sep, _ = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    for line in head.split(b"\r\n")[1:]:
        name, _, val = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(val)
    raise AssertionError(f"no Content-Length in {head!r}")


def head_then_get(base: str, path: str) -> tuple[bytes, bytes]:
    """``HEAD path`` then ``GET path`` on one kept-alive connection.

    :return: the HEAD response up to its blank line, and every byte the
        server sent after it, through the end of the GET response.
    """
    url = urllib.parse.urlsplit(base)
    request = f"{{}} {path} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n"
    with socket.create_connection((url.hostname, url.port), READ_TIMEOUT) as sock:
        sock.sendall(request.format("HEAD").encode())
        data = _read_until(sock, b"", lambda d: b"\r\n\r\n" in d)
        end = data.index(b"\r\n\r\n") + 4
        head, rest = data[:end], data[end:]
        sock.sendall(request.format("GET").encode())

        def complete(d: bytes) -> bool:
            if not d.startswith(b"HTTP/1.1 "[: len(d)]):
                return True  # not a response: the HEAD's stray body
            length = _response_length(d)
            return length is not None and len(d) >= length

        rest = _read_until(sock, rest, complete)
    return head, rest
