"""Posting one raw smart message to a face."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable


def post(base: str, path: str, pieces: Iterable[bytes], size: int) -> bytes:
    """POST a body of ``size`` bytes, sent in ``pieces`` by a thread of its
    own while the answer is read; the answer."""
    host, port = base.split("//", 1)[1].split("/", 1)[0].split(":")
    sock = socket.create_connection((host, int(port)), timeout=120)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\n\r\n"
    ).encode()

    def send() -> None:
        try:
            sock.sendall(head)
            for piece in pieces:
                sock.sendall(piece)
        except OSError:
            pass  # the server answered and closed: the rest stays unsent

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    chunks = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    except OSError:
        pass
    finally:
        sock.close()
        sender.join(120)
    return b"".join(chunks)


def post_message(base: str, path: str, pieces: list[bytes]) -> bytes:
    return post(base, path, pieces, sum(map(len, pieces)))
