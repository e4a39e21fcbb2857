"""Helpers of the adversarial tests: raw HTTP, v3 encoding, smart verbs.

Nothing here is a fake of the store: requests go over real sockets to a
real :class:`~breezy_janitor_store.tests.fixtures.RunningStore`, encoded by
breezy's own protocol code or byte by byte where the test needs a lie.
"""

from __future__ import annotations

import http.client
import inspect
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Self

import fastbencode as bencode
from breezy import controldir
from breezy.bzr.smart import client, message, protocol, request
from breezy.bzr.smart.request import SmartServerRequest
from breezy.transport import get_transport_from_url

__all__ = [
    "HealthProbe",
    "SmartCall",
    "cpu_seconds",
    "decode_response",
    "encode_request",
    "leaks",
    "memory_kib",
    "raw_http",
    "registry_calls",
    "reset_peak_memory",
    "smart_client",
    "split_response",
]

#: What a response must never contain (besides the test's own directories).
FORBIDDEN = (b"Traceback", b'File "', b"site-packages")


def encode_request(
    verb: bytes, *args, body: bytes | None = None, chunks: Iterable[bytes] = ()
) -> bytes:
    """A protocol-v3 request message, encoded by breezy's encoder."""
    out: list[bytes] = []
    encoder = protocol._ProtocolThreeEncoder(out.append)
    encoder._write_protocol_version()
    encoder._write_headers({b"Software version": b"hostile"})
    encoder._write_structure((verb, *args))
    if body is not None:
        encoder._write_prefixed_body(body)
    for chunk in chunks:
        encoder._write_prefixed_body(chunk)
    encoder._write_end()
    encoder.flush()
    return b"".join(out)


def raw_http(
    base: str,
    head: bytes,
    body: bytes = b"",
    *,
    timeout: float = 30,
    half_close: bool = True,
) -> bytes:
    """Send ``head`` (request line and headers, without the blank line) and
    ``body`` on a fresh connection; return everything the server answers
    until it closes or goes quiet for ``timeout`` seconds."""
    host, port = base.split("//", 1)[1].split("/", 1)[0].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        if b"\r\nHost:" not in head:
            head += b"\r\nHost: " + host.encode()
        s.sendall(head + b"\r\n\r\n" + body)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the first response in ``raw``."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return status, headers, body


def leaks(data: bytes, *directories: str) -> list[bytes]:
    """What in ``data`` must not reach a client: tracebacks, server paths."""
    found = [f for f in FORBIDDEN if f in data]
    for d in directories:
        real = os.path.realpath(d).encode()
        found += [p for p in {d.encode(), real} if p in data]
    return found


def smart_client(url: str) -> client._SmartClient:
    """breezy's own smart client over HTTP for ``bzr+http://...`` ``url``."""
    transport = get_transport_from_url(url)
    smart = client._SmartClient(transport.get_smart_medium())
    smart.transport = transport  # the medium only holds a weak reference
    return smart


# -- walking breezy's request registry --

#: Methods holding the verb-specific parameters, most specific first.
_INNER = (
    "do_tip_change_with_locked_branch",
    "do_with_locked_branch",
    "do_with_branch",
    "do_readlocked_repository_request",
    "do_repository_request",
    "do_bzrdir_request",
    "do",
)
#: Parameters that are objects the request opened, not wire arguments.
_OPENED = {"branch", "repository"}


@dataclass
class SmartCall:
    """One request to send: verb, wire arguments and body."""

    verb: bytes
    args: tuple
    body: bytes | None = None
    chunks: list[bytes] = field(default_factory=list)

    @property
    def category(self) -> str:
        return request.request_handlers.get_info(self.verb)

    def encode(self) -> bytes:
        return encode_request(self.verb, *self.args, body=self.body, chunks=self.chunks)


def _wire_parameters(cls: type) -> list[str]:
    """Names of the wire arguments of request class ``cls``, in order."""
    names: list[str] = []
    if hasattr(cls, "do_with_branch") or hasattr(cls, "do_repository_request"):
        names.append("path")  # SmartServer{Branch,Repository}Request.do(path, ...)
    elif hasattr(cls, "do_bzrdir_request"):
        names.append("path")
    if hasattr(cls, "do_with_locked_branch"):
        names += ["branch_token", "repo_token"]
    for method in _INNER:
        impl = getattr(cls, method, None)
        if impl is None or impl is getattr(SmartServerRequest, method, None):
            continue
        params = list(inspect.signature(impl).parameters.values())[1:]
        if any(p.kind is p.VAR_POSITIONAL for p in params) and method != "do":
            continue  # look at the more specific method instead
        names += [
            p.name
            for p in params
            if p.name not in _OPENED and p.kind is not p.VAR_POSITIONAL
        ]
        return names
    return names


def has_body(cls: type) -> bool:
    """Whether request class ``cls`` reads a request body."""
    return (
        cls.do_body is not SmartServerRequest.do_body
        or cls.do_chunk is not SmartServerRequest.do_chunk
    )


def registry_calls(values: dict, bodies: dict, default_body: bytes = b"x"):
    """A call for every verb of breezy's request registry.

    :param values: wire value by parameter name (``path``, ``lock_token``...);
        a callable value is called with the verb.
    :param bodies: body by verb; verbs that read a body and are not listed
        get ``default_body``.
    :raises KeyError: naming a parameter ``values`` lacks (a new verb).
    """
    calls = []
    for verb in sorted(request.request_handlers.keys()):
        cls = request.request_handlers.get(verb)
        args = []
        for name in _wire_parameters(cls):
            value = values[name]
            args.append(value(verb) if callable(value) else value)
        body = bodies.get(verb, default_body) if has_body(cls) else None
        if isinstance(body, list):
            calls.append(SmartCall(verb, tuple(args), chunks=body))
        else:
            calls.append(SmartCall(verb, tuple(args), body=body))
    return calls


def format_names() -> dict[str, bytes]:
    """Network names of the store's formats (2a repository, branch 7)."""
    fmt = controldir.format_registry.make_controldir("2a")
    return {
        "bzrdir": fmt.network_name(),
        "repository": fmt.repository_format.network_name(),
        "branch": fmt.get_branch_format().network_name(),
    }


def bencoded(value) -> bytes:
    return bencode.bencode(value)


class _Recorder(message.MessageHandler):
    """Collects the parts of one decoded response message."""

    def __init__(self) -> None:
        super().__init__()
        self.status: bytes | None = None
        self.structures: list = []
        self.body: list[bytes] = []

    def byte_part_received(self, byte: bytes) -> None:
        self.status = byte

    def structure_part_received(self, structure) -> None:
        self.structures.append(structure)

    def bytes_part_received(self, data: bytes) -> None:
        self.body.append(data)

    def end_received(self) -> None:
        pass

    def protocol_error(self, exception: Exception) -> None:
        raise exception


def decode_response(data: bytes) -> tuple[bool, tuple]:
    """``(ok, args)`` of a smart response in any protocol version.

    :raises AssertionError: if ``data`` is not a whole smart response.
    """
    if data.startswith(protocol.MESSAGE_VERSION_THREE):
        recorder = _Recorder()
        decoder = protocol.ProtocolThreeDecoder(recorder, expect_version_marker=True)
        decoder.accept_bytes(data)
        if decoder.next_read_size() != 0 or recorder.status not in (b"S", b"E"):
            raise AssertionError(f"not a whole v3 response: {data[:200]!r}")
        return recorder.status == b"S", tuple(recorder.structures[0])
    if data.startswith(protocol.RESPONSE_VERSION_TWO):
        data = data[len(protocol.RESPONSE_VERSION_TWO) :]
        status, _, data = data.partition(b"\n")
        if status not in (b"success", b"failed"):
            raise AssertionError(f"not a v2 response: {data[:200]!r}")
        return status == b"success", tuple(data.split(b"\n", 1)[0].split(b"\x01"))
    line = data.split(b"\n", 1)[0]
    if not data.endswith(b"\n") and b"\n" not in data:
        raise AssertionError(f"not a v1 response: {data[:200]!r}")
    args = tuple(line.split(b"\x01"))
    return args[0] != b"error", args


# -- watching a server process from outside --


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of process ``pid``, in KiB."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


def reset_peak_memory(pid: int) -> None:
    """Start ``pid``'s ``VmHWM`` afresh from its current resident size."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class HealthProbe:
    """Asks ``GET /health`` of a face again and again on fresh connections,
    in a thread, and records each answer's status and latency."""

    def __init__(self, base: str, interval: float = 0.1, timeout: float = 60) -> None:
        self.base = base
        self.interval = interval
        self.timeout = timeout
        #: ``(status or None, seconds)`` of each probe, in order.
        self.results: list[tuple[int | None, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    def probe(self) -> tuple[int | None, float]:
        host, port = self.base.split("//", 1)[1].split("/", 1)[0].split(":")
        start = time.monotonic()
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
            try:
                conn.request("GET", "/health")
                response = conn.getresponse()
                status = response.status if response.read() == b"ok" else None
            finally:
                conn.close()
        except OSError:
            status = None
        return status, time.monotonic() - start

    def _run(self) -> None:
        while not self._stop.is_set():
            self.results.append(self.probe())
            self._stop.wait(self.interval)

    @property
    def latencies(self) -> list[float]:
        return [seconds for _, seconds in self.results]
