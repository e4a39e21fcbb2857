"""The bzr smart protocol (version 3) over one HTTP POST, streamed both ways.

The request body is fed to breezy's protocol decoder in bounded chunks as it
arrives (``Repository.insert_stream_1.19`` consumes its body incrementally),
and a response with a body stream (``Repository.get_stream`` and friends) is
produced chunk by chunk while the client reads it, so neither side of a
large push or branch is ever held whole in memory.

Verbs are looked up in the store's own registry, :data:`COMMANDS`, handed to
breezy's ``SmartServerRequestHandler``: each of breezy's verbs, as a store
subclass of breezy's request class, with its :class:`VerbPolicy` (whether
it writes, why the store refuses it, which body limit it gets, whether it
is a heavy stream).  Before a verb runs, the exchange hands its policy to
the caller's ``admit`` callback (authentication, body limit, stream budget).

breezy private names used (check them on a breezy upgrade):
``SmartServerRequestHandler._backing_transport``, ``._root_client_path``,
``._jail_root``, ``._command`` and ``._run_handler_code`` (the handler runs
the request it made, its policy evaluated once), and
``medium._get_protocol_factory_for_bytes`` (the decoder for a request's
protocol version).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

from breezy import errors, trace
from breezy.bzr.smart import medium, message, protocol, request
from breezy.transport import Transport

from ..store import damage
from ..store.budget import (
    STREAM_STALL_WINDOW,
)
from ..store.context import current_request_id
from .failures import (
    MALFORMED_ARGUMENTS,
    OBJECT_REPR,
    UNHANDLED_ERROR,
    encodable,
    is_breezy_error,
    log_failure,
    logged,
    well_formed,
)
from .overrides import InsertStream
from .registry import COMMANDS, verb_policy
from .request import StoreRequest, codebase_of, first_chunk_damage
from .verbs import MAX_CHUNK, VerbPolicy

__all__ = ["Admit", "PrepareWrite", "RequestHead", "SmartExchange"]


_V3 = protocol.ProtocolThreeDecoder


logger = logging.getLogger(__name__)




#: Response chunks buffered between the protocol and a slow client.
QUEUE_DEPTH = 8




_MARKER = protocol.MESSAGE_VERSION_THREE


#: The only verb older protocol versions may carry (a client's probe).
_OLD_PROTOCOL_VERBS = (b"hello",)


_V2_MARKER = protocol.REQUEST_VERSION_TWO


def _head_complete(head: bytes) -> bool:
    """Whether ``head`` has the line that picks the decoder: the version-3
    marker, or the request line of version 1 or 2 (after the latter's
    marker), so a body cut before it is incomplete, as breezy finds it."""
    if head.startswith(_V2_MARKER):
        return b"\n" in head[len(_V2_MARKER) :]
    return b"\n" in head


#: Verbs opening the control directory at their path argument.
_OPENS_CONTROL_DIR = frozenset({b"BzrDir.open", b"BzrDir.open_2.1"})


#: ``admit(verb, policy, refused)``: called before a verb runs (``refused``:
#: its policy refuses these arguments, so it will only answer that); raises
#: to stop it.
Admit = Callable[[bytes | None, VerbPolicy, bool], None]


#: ``prepare_write()``: called before a verb that may write runs, once its
#: policy allows these arguments; raises to stop it.
PrepareWrite = Callable[[], None]


class _Handler(request.SmartServerRequestHandler):
    """breezy's request handler over the store's registry, asking ``admit``
    before each verb runs."""

    def __init__(
        self,
        transport: Transport,
        jail_root: Transport,
        admit: Admit,
        prepare_write: PrepareWrite | None = None,
    ):
        super().__init__(
            transport, commands=COMMANDS, root_client_path=None, jail_root=jail_root
        )
        self._admit = admit
        self._prepare_write = prepare_write
        self.verb: bytes | None = None
        #: The request's arguments, the verb first (once received).
        self.args: tuple = ()
        self.stop: Exception | None = None

    def args_received(self, args):
        if not well_formed(args):
            # Nothing hashes, compares or formats what the client sent.
            self.response = request.FailedSmartServerResponse(MALFORMED_ARGUMENTS)
            self.finished_reading = True
            return None
        self.verb = args[0]
        self.args = args
        policy = verb_policy(self.verb)
        if policy.category is None:
            return super().args_received(args)  # answered UnknownSmartMethod
        # The request that runs the verb; its policy is evaluated here, once.
        command = COMMANDS.get(self.verb)(
            self._backing_transport, self._root_client_path, self._jail_root
        )
        refused = command.decide(args[1:])
        try:
            self._admit(self.verb, policy, refused)
            if (
                self._prepare_write is not None
                and not refused
                and self._prepares(command, policy, args)
            ):
                self._prepare_write()
        except Exception as e:  # noqa: BLE001 - raised again by the exchange
            # Nothing runs.
            self.stop = e
            self.response = request.FailedSmartServerResponse((b"error", b"refused"))
            self.finished_reading = True
            return None
        # as breezy's SmartServerRequestHandler.args_received, with the
        # request made above
        self._command = command
        self._run_handler_code(command.execute, args[1:], {})
        return None

    def _prepares(self, command: StoreRequest, policy: VerbPolicy, args: tuple) -> bool:
        """Whether an allowed verb may write, or opens the codebase's own
        control directory (a writer's ``ControlDir.open`` of the codebase
        URL, over plain HTTP too, expects to find it)."""
        if policy.writes:
            return True
        if self.verb not in _OPENS_CONTROL_DIR:
            return False
        try:
            return len(args) > 1 and command.disk_path(args[1]) == ()
        except Exception:  # noqa: BLE001 - the verb answers it when it runs
            return False

    def abort(self) -> None:
        """Stop a request whose body will never end (client gone, or lying)."""
        if isinstance(self._command, InsertStream):
            self._command.abort()


class _Responder(protocol.ProtocolThreeResponder):
    """Responder that leaves a streamed response body for later."""

    deferred: request.SmartServerResponse | None = None

    handler: _Handler | None = None

    def send_response(self, response):
        if response.body_stream is not None and self.deferred is None:
            # breezy sends a failure of the stream as an error at its end
            verb = self.handler.verb if self.handler else None
            codebase = codebase_of(self.handler._jail_root) if self.handler else ""
            damaged = first_chunk_damage(response)
            if damaged is not None:
                damage.report(codebase, damaged)
                message = str(damage.DamagedRepository(damaged)).encode("utf-8")
                return super().send_response(
                    request.FailedSmartServerResponse((b"error", message))
                )
            response.body_stream = logged(response.body_stream, verb, codebase)
            self.deferred = response
            return
        if not response.is_successful():
            response = encodable(response)
            if any(
                OBJECT_REPR.search(a) for a in response.args if isinstance(a, bytes)
            ):
                # a Python object's repr (an address) is no answer
                log_failure(
                    self.handler.verb if self.handler else None,
                    ValueError(response.args),
                )
                response = request.FailedSmartServerResponse(UNHANDLED_ERROR)
        super().send_response(response)

    def send_error(self, exception):
        """breezy's answer to a protocol error, unless the error is not a
        breezy one: a Python message stays in the log."""
        if isinstance(exception, errors.UnknownSmartMethod) or is_breezy_error(
            exception
        ):
            return super().send_error(exception)
        verb = self.handler.verb if self.handler else None
        log_failure(verb, exception)
        return self.send_response(request.FailedSmartServerResponse(UNHANDLED_ERROR))

    def send_deferred(self) -> None:
        super().send_response(self.deferred)
        self.flush()


class _TooSlow(ConnectionAbortedError):
    """The client took a response stream slower than its minimum rate."""


#: A minimum rate: bytes a second, or what gives the rate and its window
#: (never shorter than a quarter of the stream's window) at each check.
Pace = float | Callable[[], tuple[float, float]]


def _pace_now(min_rate: Pace, window: float) -> tuple[float, float]:
    return min_rate() if callable(min_rate) else (min_rate, window)


class _Sink:
    """Where the responder writes: a list, or a bounded queue while streaming
    (:meth:`stream`: until ``cancelled`` is set).

    With a minimum rate (:meth:`pace`), a client that takes less than
    ``min_rate`` bytes a second over a window of ``window`` seconds has the
    stream cut (:attr:`cut`).
    """

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.queue: queue.Queue | None = None
        self.cancelled: threading.Event | None = None
        self.cut = False
        self.taken = 0  # bytes the client's side took from the queue
        self._min_rate: Pace | None = None
        self._window = 1.0
        self._mark = (0.0, 0)

    def stream(self, depth: int) -> None:
        """From now on, queue what is written, at most ``depth`` chunks ahead."""
        self.chunks = []
        self.cancelled = threading.Event()
        self.queue = queue.Queue(depth)

    def pace(self, min_rate: Pace | None, window: float) -> None:
        """Cut the stream when its client is slower than ``min_rate``."""
        self._min_rate, self._window = min_rate, window
        self._mark = (time.monotonic(), self.taken)

    def _check_pace(self) -> None:
        if self._min_rate is None:
            return
        now = time.monotonic()
        since, taken = self._mark
        if now - since < self._window / 4:
            return
        rate, window = _pace_now(self._min_rate, self._window)
        if now - since < window:
            return
        if self.taken - taken < rate * window:
            self.cut = True
            raise _TooSlow(
                f"the client took {self.taken - taken} bytes in {now - since:.0f} s"
            )
        self._mark = (now, self.taken)

    def wait_taken(self) -> None:
        """Wait until the client's side has sent everything, or went."""
        while not self.cancelled.is_set():
            self._check_pace()
            self.cancelled.wait(min(1.0, self._window / 4))

    def drop(self) -> None:
        """Forget what is queued (the stream was cut)."""
        self.cut = True
        with contextlib.suppress(queue.Empty):
            while True:
                self.queue.get_nowait()

    def write(self, data: object) -> None:
        """Buffer ``data``, or queue it, waiting while the client is slow."""
        if self.queue is None:
            self.chunks.append(data)
            return
        while not (self.cancelled.is_set() or self.cut):
            self._check_pace()
            try:
                self.queue.put(data, timeout=min(1.0, self._window / 4))
                return
            except queue.Full:
                continue
        raise ConnectionAbortedError("client went away")


class _ArgumentsOnly(message.MessageHandler):
    """Keeps the arguments of a request message; notes a malformed one."""

    def __init__(self) -> None:
        super().__init__()
        self.args: tuple | None = None
        self.malformed = False

    def structure_part_received(self, structure) -> None:
        if self.args is None:
            self.args = tuple(structure)

    def byte_part_received(self, byte) -> None:
        pass

    def bytes_part_received(self, bytes) -> None:
        pass

    def end_received(self) -> None:
        pass

    def protocol_error(self, exception) -> None:
        self.malformed = True


class RequestHead:
    """The start of a request body, read until it shows whether it is a
    smart request (protocol version 3) and which verb it sends.

    For requests refused before any verb runs: a smart request is answered
    with a smart error (:meth:`error_response`), which ``brz`` shows.
    """

    def __init__(self) -> None:
        self._message = _ArgumentsOnly()
        self._decoder = _V3(self._message, expect_version_marker=True)

    def feed(self, data: bytes) -> None:
        self._decoder.accept_bytes(data)

    @property
    def done(self) -> bool:
        """Whether the verb is known, or the body is no smart request."""
        return self._message.args is not None or self._message.malformed

    @property
    def verb(self) -> bytes | None:
        """The request's verb; None until known, or when it is no request."""
        if self._message.malformed or not self._message.args:
            return None
        verb = self._message.args[0]
        return verb if isinstance(verb, bytes) else None

    @staticmethod
    def error_response(error_args: tuple[bytes, ...]) -> bytes:
        """A whole version-3 response carrying the smart error ``error_args``."""
        out: list[bytes] = []
        responder = protocol.ProtocolThreeResponder(out.append)
        responder.send_response(request.FailedSmartServerResponse(error_args))
        responder.flush()
        return b"".join(out)


class SmartExchange:
    """One smart request: feed it the body, then iterate the response.

    :param admit: called with the verb, its :class:`VerbPolicy` and whether
        the policy refuses the arguments, before the verb runs; an exception
        it raises stops the request (nothing runs) and is raised again by
        :meth:`feed`.
    :param prepare_write: called after ``admit`` when the verb may write
        and its policy allows its arguments (not for a refused one), or
        when it opens the control directory of the codebase's root; raises
        as ``admit`` does.
    """

    def __init__(
        self,
        transport: Transport,
        jail_root: Transport,
        admit: Admit,
        prepare_write: PrepareWrite | None = None,
    ) -> None:
        self._transport = transport
        self._jail_root = jail_root
        self._sink = _Sink()
        self._handler = _Handler(transport, jail_root, admit, prepare_write)
        self._responder = _Responder(self._sink.write)
        self._responder.handler = self._handler
        self._decoder = None
        self._head = b""

    @property
    def verb(self) -> bytes | None:
        return self._handler.verb

    @property
    def args(self) -> tuple:
        """The request's arguments, the verb first (known when ``admit``
        is called)."""
        return self._handler.args

    def feed(self, data: bytes) -> None:
        """Accept the next part of the request body.

        :raises: what ``admit`` raised for the verb.
        """
        if self._decoder is None:
            self._head += data
            if b"\n" not in data or not _head_complete(self._head):
                return
            data, self._head = self._head, b""
            self._decoder = self._make_decoder(data)
            data = data[len(_MARKER) :] if self._decoder.__class__ is _V3 else b""
        self._decoder.accept_bytes(data)
        if self._handler.stop is not None:
            raise self._handler.stop

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
        if self._handler.stop is not None:
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

    def stream(
        self,
        min_rate: Pace | None = None,
        window: float = STREAM_STALL_WINDOW,
        on_cut: Callable[[], None] | None = None,
    ) -> Iterator[bytes]:
        """Produce the response, a bounded number of chunks ahead of the client.

        With ``min_rate``, a client taking less than that many bytes a
        second over ``window`` seconds has the response cut (it ends short,
        the connection closes) and ``on_cut`` is called at once.
        """
        sink = self._sink
        head = self.buffered()
        sink.stream(QUEUE_DEPTH)
        sink.pace(min_rate, window)
        done = object()

        def produce() -> None:
            try:
                try:
                    self._responder.send_deferred()
                except _TooSlow:
                    raise
                except ConnectionAbortedError:
                    return
                except Exception:  # the client sees a cut stream; we log
                    trace.log_exception_quietly()
                    logger.exception(
                        "error streaming a smart response (request %s)",
                        current_request_id(),
                    )
                with contextlib.suppress(ConnectionAbortedError):
                    sink.write(done)
                sink.wait_taken()
            except _TooSlow as e:
                sink.drop()
                logger.warning(
                    "smart verb %s: response cut, client too slow: %s (request %s)",
                    (self.verb or b"?").decode("ascii", "replace"),
                    e,
                    current_request_id(),
                )
                if on_cut is not None:
                    on_cut()

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
                try:
                    item = sink.queue.get(timeout=1)
                except queue.Empty:
                    if sink.cut:
                        break  # the response ends short
                    continue
                if item is done:
                    break
                # in pieces, so the client's progress is seen as it reads
                for start in range(0, len(item), MAX_CHUNK):
                    if sink.cut:
                        return
                    piece = item[start : start + MAX_CHUNK]
                    sink.taken += len(piece)
                    yield piece
        finally:
            sink.cancelled.set()
            thread.join()
