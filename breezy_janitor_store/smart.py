"""The bzr smart protocol (version 3) over one HTTP POST, streamed both ways.

The request body is fed to breezy's protocol decoder in bounded chunks as it
arrives (``Repository.insert_stream_1.19`` consumes its body incrementally),
and a response with a body stream (``Repository.get_stream`` and friends) is
produced chunk by chunk while the client reads it, so neither side of a
large push or branch is ever held whole in memory.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Iterator

from breezy import errors, trace, urlutils
from breezy.bzr.smart import bzrdir, medium, message, protocol, request
from breezy.transport import Transport
from fastbencode import bencode

from .context import current_request_id
from .transport import DISK_ERRNOS

__all__ = ["MAX_CHUNK", "READ_CATEGORY", "SmartExchange", "verb_category"]

_V3 = protocol.ProtocolThreeDecoder
logger = logging.getLogger(__name__)

#: Bytes read from the request body at a time.
MAX_CHUNK = 64 * 1024
#: Response chunks buffered between the protocol and a slow client.
QUEUE_DEPTH = 8
READ_CATEGORY = "read"
_MARKER = protocol.MESSAGE_VERSION_THREE
# Verbs refused outright and the early end of a streamed body.
_BREAK_LOCK = (
    b"locks are broken through the store: GET/POST /CODEBASE/locks on the "
    b"admin face or 'brz janitor-store break-lock'"
)
_WHOLE = b"this verb would hold a whole repository in memory; use get_stream"
#: Verbs the store never runs: breaking a lock would ask the server's own
#: terminal for confirmation, and these two build their whole answer in
#: memory (no breezy client of this era sends them).
UNSERVED_VERBS = {
    b"Branch.break_lock": _BREAK_LOCK,
    b"Repository.break_lock": _BREAK_LOCK,
    b"Repository.tarball": _WHOLE,
    b"get_bundle": _WHOLE,
}
_INITIALIZE_EX = b"BzrDirFormat.initialize_ex_1.16"  # args[5]: force_new_repo
_NEW_REPOSITORY = (
    b"a branch must keep its revisions in the codebase's shared repository, "
    b"not in a repository of its own"
)
#: The only verb older protocol versions may carry (a client's probe).
_OLD_PROTOCOL_VERBS = (b"hello",)


def _refusal(args: tuple, transport: Transport):
    """The smart error answering request ``args`` without running it, or None.

    On a read-only face every verb breezy does not class as ``read`` is
    refused outright, whatever it would do to the disk.  Repositories are
    created by the store alone: a request for a new one would leave a
    half-made control directory behind when the layout refuses it.
    """
    verb = args[0] if args else None
    if verb == _INITIALIZE_EX and len(args) > 5 and args[5] == b"True":
        return request.FailedSmartServerResponse(
            (b"PermissionDenied", args[2], _NEW_REPOSITORY)
        )
    if verb in UNSERVED_VERBS:
        return request.FailedSmartServerResponse(
            (b"PermissionDenied", verb, UNSERVED_VERBS[verb])
        )
    if transport.is_readonly() and verb_category(verb) not in (READ_CATEGORY, None):
        return request.FailedSmartServerResponse((b"ReadOnlyError",))
    return None


def _encodable(response: request.SmartServerResponse) -> request.SmartServerResponse:
    """An error response whose arguments can be encoded.

    breezy answers a stale lock token with ``TokenMismatch`` and the current
    token, None when the lock is no longer held: unencodable, it would cut
    the response short after its first bytes.
    """
    # (the responder encodes str arguments as UTF-8 itself)
    args = tuple(a.encode("utf-8") if isinstance(a, str) else a for a in response.args)
    try:
        bencode(args)
        return response
    except (TypeError, ValueError):
        pass
    args = tuple(b"" if a is None else a for a in args)
    try:
        bencode(args)
    except (TypeError, ValueError):
        args = (b"error", b"the server could not encode its answer")
    return request.FailedSmartServerResponse(args, response.body)


def _guarded(callable: Callable, transport: Transport, verb: bytes | None) -> Callable:
    """``callable``, its disk errors made plain and its failures logged.

    The transport translates the errors of its own calls; this catches those
    of the files it opened (a pack being written by an insert, say), which
    would otherwise reach the client as an internal error.  Failures that
    are not the request's own fault (not a breezy error, or an internal
    one: a damaged repository, say) are logged with the request id; breezy
    logs their tracebacks to its own log.
    """

    def call(*args, **kwargs):
        try:
            return callable(*args, **kwargs)
        except OSError as e:
            if e.errno not in DISK_ERRNOS:
                _log_failure(verb, e)
                raise
            where = urlutils.unescape(transport.base.split("://", 1)[-1])
            raise errors.PermissionDenied(
                where.rstrip("/") or "/", e.strerror
            ) from None
        except Exception as e:
            if not isinstance(e, errors.BzrError) or e.internal_error:
                _log_failure(verb, e)
            raise

    return call


def _logged(chunks: Iterator[bytes], responder: _Responder) -> Iterator[bytes]:
    """A response body stream whose failure is logged (with the request id)."""
    try:
        yield from chunks
    except Exception as e:
        _log_failure(responder.handler.verb if responder.handler else None, e)
        raise


def _log_failure(verb: bytes | None, e: Exception) -> None:
    logger.warning(
        "smart verb %s failed: %s: %s (request %s)",
        (verb or b"?").decode("ascii", "replace"),
        type(e).__name__,
        e,
        current_request_id(),
    )


class _EarlyEnd(Exception):
    """The request body ended before its smart message did."""


class _AbortChunk:
    """A body chunk that fails the stream parser taking it (``buffer += it``)."""

    def __radd__(self, other: object):
        raise _EarlyEnd("the request body ended before the stream did")


_ABORT = _AbortChunk()


# Request-body backpressure for streamed inserts.
#: Request-body bytes a streamed insert may have queued and not yet consumed.
MAX_BACKLOG = 4 * 1024 * 1024
_BACKLOG_ITEMS = 64


def _wait_for_inserter(command: object) -> None:
    """Hold the request body back while breezy's inserter lags behind.

    ``Repository.insert_stream*`` hand body chunks to an inserting thread
    through an unbounded queue; with a client faster than the inserter, the
    whole push would pile up in memory there.
    """
    q = getattr(command, "queue", None)
    inserter = getattr(command, "insert_thread", None)
    if not isinstance(q, queue.Queue) or inserter is None:
        return
    with q.not_full:  # notified by every get()
        while inserter.is_alive() and _backlog(q) > MAX_BACKLOG:
            q.not_full.wait(1)


def _backlog(q: queue.Queue) -> int:
    """Bytes waiting in ``q`` (more than the limit if it holds many items)."""
    if len(q.queue) > _BACKLOG_ITEMS:
        return MAX_BACKLOG + 1
    return sum(len(c) for c in q.queue if isinstance(c, bytes))


def verb_category(verb: bytes) -> str | None:
    """breezy's classification of a smart verb (``read``, ``idem``, ...)."""
    try:
        return request.request_handlers.get_info(verb)
    except KeyError:
        return None


class _Gated(Exception):
    """A verb was stopped by the gate before it ran."""


class _Handler(request.SmartServerRequestHandler):
    """Request handler that records the verb and may stop it before it runs."""

    def __init__(self, *args, gate: Callable[[bytes], bool], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate
        self.verb: bytes | None = None
        self.gated = False

    def args_received(self, args):
        self.verb = args[0] if args else None
        if self.verb is not None and not self.gate(self.verb):
            self.gated = True
            raise _Gated()
        refusal = _refusal(tuple(args), self._backing_transport)
        if refusal is not None:
            self.response, self.finished_reading = refusal, True
            return None
        return super().args_received(args)

    def _call_converting_errors(self, callable, args, kwargs):
        return super()._call_converting_errors(
            _guarded(callable, self._backing_transport, self.verb), args, kwargs
        )

    def abort(self) -> None:
        """Stop a request whose body will never end (client gone, or lying).

        A streamed insert has a thread waiting for body chunks, holding a
        write group open: make its stream fail, so the write group is
        aborted (its upload pack removed) and the thread ends.
        """
        command = self._command
        inserter = getattr(command, "insert_thread", None)
        if inserter is None or not inserter.is_alive():
            return
        command.queue.put(_ABORT)
        inserter.join()
        with contextlib.suppress(Exception):
            command.repository.unlock()


class _Responder(protocol.ProtocolThreeResponder):
    """Responder that leaves a streamed response body for later."""

    deferred: request.SmartServerResponse | None = None

    handler: _Handler | None = None

    def send_response(self, response):
        if response.body_stream is not None and self.deferred is None:
            # breezy sends a failure of the stream as an error at its end
            response.body_stream = _logged(response.body_stream, self)
            self.deferred = response
            return
        if not response.is_successful():
            response = _encodable(response)
        super().send_response(response)

    def send_deferred(self) -> None:
        super().send_response(self.deferred)
        self.flush()


class _Sink:
    """Where the responder writes: a list, or a bounded queue while streaming."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.queue: queue.Queue | None = None
        self.cancelled = threading.Event()

    def write(self, data: object) -> None:
        """Buffer ``data``, or queue it, waiting while the client is slow."""
        if self.queue is None:
            self.chunks.append(data)
            return
        while not self.cancelled.is_set():
            try:
                self.queue.put(data, timeout=1)
                return
            except queue.Full:
                continue
        raise ConnectionAbortedError("client went away")


class _InitializeBzrDir(bzrdir.SmartServerRequestInitializeBzrDir):
    """``BzrDirFormat.initialize``, answered ``ok`` at a codebase root.

    The store makes each codebase's control directory (with its shared
    repository) itself; a writer's ``ControlDir.create`` of the codebase URL
    (the janitor worker's first step for a new codebase) finds it there.
    """

    def do(self, path):
        target = self.transport_from_client_path(path)
        if (
            not target.is_readonly()
            and target.abspath(".") == target.abspath("/")
            and target.has(".bzr")
        ):
            return request.SuccessfulSmartServerResponse((b"ok",))
        return super().do(path)


class _Commands:
    """breezy's smart verbs (``request.request_handlers``), with the store's
    own handler for the verbs in ``overrides``; passed to the request handler."""

    def __init__(self, overrides: dict[bytes, type]) -> None:
        self._overrides = overrides

    def get(self, verb: bytes):
        command = self._overrides.get(verb)
        return command if command is not None else request.request_handlers.get(verb)


_COMMANDS = _Commands({b"BzrDirFormat.initialize": _InitializeBzrDir})


class SmartExchange:
    """One smart request: feed it the body, then iterate the response."""

    def __init__(
        self,
        transport: Transport,
        jail_root: Transport,
        gate: Callable[[bytes], bool],
    ) -> None:
        self._transport = transport
        self._jail_root = jail_root
        self._sink = _Sink()
        self._handler = _Handler(
            transport,
            commands=_COMMANDS,
            root_client_path=None,
            jail_root=jail_root,
            gate=gate,
        )
        self._responder = _Responder(self._sink.write)
        self._responder.handler = self._handler
        self._decoder = None
        self._head = b""

    @property
    def verb(self) -> bytes | None:
        return self._handler.verb

    @property
    def gated(self) -> bool:
        """Whether the gate refused the verb (nothing was executed)."""
        return self._handler.gated

    def feed(self, data: bytes) -> None:
        """Accept the next part of the request body."""
        if self._decoder is None:
            self._head += data
            if b"\n" not in self._head:
                return
            data, self._head = self._head, b""
            self._decoder = self._make_decoder(data)
            data = data[len(_MARKER) :] if self._decoder.__class__ is _V3 else b""
        self._decoder.accept_bytes(data)
        _wait_for_inserter(self._handler._command)

    def _make_decoder(self, head: bytes):
        if head.startswith(_MARKER):
            return _V3(
                message.ConventionalRequestHandler(self._handler, self._responder)
            )
        # Older protocols: only a modern client's ``hello`` probe (v2) uses
        # them; breezy's own decoders answer, without streaming.  They bypass
        # the handler above, so they may carry nothing but the probe.
        factory, unused = medium._get_protocol_factory_for_bytes(head)
        decoder = factory(self._transport, self._sink.write, None, self._jail_root)
        if unused.split(b"\n", 1)[0].split(b"\x01", 1)[0] not in _OLD_PROTOCOL_VERBS:
            decoder._send_response(
                request.FailedSmartServerResponse(
                    (b"error", b"only 'hello' may use protocol versions 1 and 2")
                )
            )
            return decoder
        decoder.accept_bytes(unused)
        return decoder

    def abort(self) -> None:
        """The request body ended early: undo whatever it started."""
        self._handler.abort()

    def wants_more(self) -> bool:
        """Whether the decoder still expects body bytes."""
        if self.gated:
            return False
        return self._decoder is None or self._decoder.next_read_size() != 0

    @property
    def streaming(self) -> bool:
        """Whether the response has a body still to be produced."""
        return self._responder.deferred is not None

    def buffered(self) -> bytes:
        """The whole response when it is not streaming."""
        self._responder.flush()
        return b"".join(self._sink.chunks)

    def stream(self) -> Iterator[bytes]:
        """Produce the response, a bounded number of chunks ahead of the client."""
        sink = self._sink
        head = self.buffered()
        sink.chunks = []
        sink.queue = queue.Queue(QUEUE_DEPTH)
        done = object()

        def produce() -> None:
            try:
                self._responder.send_deferred()
            except ConnectionAbortedError:
                pass
            except Exception:  # the client sees a cut stream; we log
                trace.log_exception_quietly()
                logger.exception(
                    "error streaming a smart response (request %s)",
                    current_request_id(),
                )
            finally:
                with contextlib.suppress(ConnectionAbortedError):
                    sink.write(done)

        thread = threading.Thread(
            target=contextvars.copy_context().run,  # keeps the request id
            args=(produce,),
            name="smart-stream",
            daemon=True,
        )
        thread.start()
        try:
            if head:
                yield head
            while True:
                item = sink.queue.get()
                if item is done:
                    break
                yield item
        finally:
            sink.cancelled.set()
            thread.join()
