"""The smart endpoint: a bzr smart-protocol request over one HTTP POST.

:func:`serve` answers ``POST .../.bzr/smart`` on either face.  It resolves
the branch location through the :class:`~.face.Face`, opens the codebase's
jailed transport, and runs the exchange
(:class:`~breezy_janitor_store.smart.exchange.SmartExchange`), which hands
each verb's :class:`VerbPolicy` to the request's :class:`Admission` before
the verb runs.  Admission makes its checks in order, one method each:
:meth:`~Admission.authenticated` (the ``401`` challenge),
:meth:`~Admission.body_size` (``413``), :meth:`~Admission.stream_slot`
(``503``: the stream budget) and :meth:`~Admission.locks` (leases, stale
locks).  Every refusal comes before the stream budget: a heavy verb takes
its slot only if it will run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable

from breezy import errors

from ..policy.policies import Environ
from ..smart import leases
from ..smart.exchange import RequestHead, SmartExchange
from ..smart.verbs import MAX_CHUNK, SMALL_BODY_LIMIT, VerbPolicy
from ..store import holders, layout, locks, provenance
from ..store.budget import RateWatch, StreamBudget
from ..store.context import current_request_id
from .face import Face
from .http import HTTPError, Released, Request
from .metrics import SMART_VERB_KEY

__all__ = ["INCOMPLETE_RESPONSE", "RETRY_AFTER", "Admission", "missing_prefix", "serve"]

logger = logging.getLogger(__name__)

#: Seconds a client refused for want of a stream slot is told to wait.
RETRY_AFTER = 10
#: The answer to an incomplete smart request: breezy's
#: ``SmartWSGIApp`` (and the janitor's store) answer it so, a protocol-1
#: error whatever the protocol of the request.
INCOMPLETE_RESPONSE = b"error\x01incomplete request\n"
#: The stream budget's identity of the admin face's clients without a user.
_ADMIN_IDENTITY = ("admin",)


class Admission:
    """Whether the verbs of one smart request may run: the exchange's
    ``admit`` callback, one method per check."""

    def __init__(
        self,
        face: Face,
        req: Request,
        location: layout.Location,
        writable: bool,
        length: int,
        turn: _Turn,
        used: leases.RequestLeases | None,
    ) -> None:
        self.face = face
        self.req = req
        self.location = location
        self.writable = writable
        self.length = length
        self.turn = turn
        self.used = used
        self.exchange: SmartExchange | None = None

    def __call__(self, verb: bytes | None, policy: VerbPolicy, refused: bool) -> None:
        """Stop ``verb`` if the request may not run it (``refused``: its
        policy answers these arguments itself, so it takes no slot and no
        lock)."""
        self.req.environ[SMART_VERB_KEY] = verb  # for the metrics
        self.authenticated(policy)
        self.body_size(verb, policy)
        if refused:
            return
        if policy.heavy:
            self.stream_slot(writer=policy.writes)
        if self.writable and verb is not None:
            self.locks(verb)

    def authenticated(self, policy: VerbPolicy) -> None:
        """Writes of an anonymous client get the ``401`` challenge (a
        read-only face without one refuses them in the smart protocol)."""
        face = self.face
        if policy.writes and not self.writable and face.realm is not None:
            raise HTTPError(
                401,
                "authentication required to write",
                [*face.challenge(), ("Connection", "close")],
            )

    def body_size(self, verb: bytes | None, policy: VerbPolicy) -> None:
        """``413`` when the body is larger than the verb's limit."""
        limit = policy.body_limit(self.writable, self.face.smart.client_max_size)
        if self.length > limit:
            raise _too_large(self.length, limit, verb if policy.category else None)

    def stream_slot(self, writer: bool) -> None:
        """A slot of the stream budget for a heavy verb, or ``503``."""
        _take(self.turn, writer=writer)

    def locks(self, verb: bytes) -> None:
        """Before a writer's verb: the holder's own use renews its lease;
        stale and expired locks it would wait for are broken."""
        smart = self.face.smart
        if self.used is not None and self.exchange is not None:
            self.used.admit(verb, self.exchange.args)
        locks.before_write(
            self.face.storage,
            self.location,
            verb,
            smart.break_locks_older_than,
            smart.lock_lease,
        )


def serve(face: Face, req: Request, path: str) -> Iterable[bytes]:
    """A bzr smart-protocol request for a branch location."""
    try:
        location = face.location(path)
    except HTTPError as e:
        return refuse(face, req, path, e)
    writable = face.may_write(req.environ)
    length = _content_length(face, req)
    codebase = location.codebase
    storage = face.storage
    if not writable and not storage.has_repository(codebase) and face.realm is None:
        # (With a challenge, a known codebase not yet on disk is served
        # read-only, empty, so a first push reaches a write verb and
        # gets the 401 that makes brz send its credentials.)
        return refuse(face, req, path, HTTPError(404, f"no such codebase: {codebase}"))
    root = storage.transport(codebase, writable=writable, is_campaign=face.is_campaign)
    root.defer_syncs()  # flushed before the response acknowledges the writes

    smart = face.smart
    turn = _Turn(smart.stream_budget, _identity(face, req.environ))
    used = (  # the locks the request uses, for their leases
        leases.RequestLeases(
            storage,
            location,
            smart.lock_lease,
            req.environ.get("REMOTE_USER"),
            req.environ.get("REMOTE_ADDR"),
        )
        if writable and smart.lock_lease is not None
        else None
    )
    admission = Admission(face, req, location, writable, length, turn, used)

    def prepare_write() -> None:
        """A codebase the policy allows gets its shared repository when
        a writer's verb that writes is about to run (not a refused one),
        or opens the codebase root, so clients find it in place."""
        storage.ensure_repository(codebase)

    exchange = admission.exchange = SmartExchange(
        root.clone(_relpath(location)),
        root,
        admission,
        prepare_write if writable else None,
    )
    streamed = False
    try:
        try:
            # locks the verbs take are recorded as the client's, and
            # the locks the request uses keep their leases while it runs
            with (
                holders.acting_for(
                    req.environ.get("REMOTE_USER"), req.environ.get("REMOTE_ADDR")
                ),
                used if used is not None else contextlib.nullcontext(),
                provenance.writing_as(_writer(face, req, codebase, writable)),
            ):
                if used is not None:  # its bytes arriving renew its locks
                    environ = req.environ
                    environ["wsgi.input"] = used.watch(environ["wsgi.input"], length)
                unread = _feed(req, exchange, length, writable, turn)
        except BaseException:
            exchange.abort()  # e.g. the client went away mid-body
            raise
        req.environ.setdefault(SMART_VERB_KEY, exchange.verb)
        if exchange.wants_more():
            exchange.abort()
            return _incomplete(req, unread)
        _flush_syncs(root)
        if exchange.streaming:
            if not turn.held:  # a file-level answer too large to buffer
                _take(turn, writer=False)
            req.respond(200, "application/octet-stream")
            streamed = True  # the turn ends with the response body
            budget = turn.budget
            body = exchange.stream(turn.pace, budget.stall_window, turn.cut)
            return Released(body, turn.release)
        body = exchange.buffered()
    finally:
        if not streamed:
            turn.release()
    req.respond(200, "application/octet-stream", [("Content-Length", str(len(body)))])
    return [body]


def missing_prefix(face: Face, req: Request, path: str) -> Iterable[bytes]:
    """A smart request on the public face without its prefix: refused, in
    the smart protocol, with where the branch is."""
    return refuse(face, req, path, HTTPError(404, face.prefix_hint(f"not found: /{path}")))


def refuse(face: Face, req: Request, path: str, refusal: HTTPError) -> Iterable[bytes]:
    """Answer a request for a location the store refuses (``refusal``).

    A smart request is answered with ``PermissionDenied`` carrying the
    reason, which ``brz`` shows (breezy's client translates it in every
    context; ``nobranch`` needs a control directory it does not have).
    Any other body gets ``refusal`` itself.  At most the start of the
    body is read (up to the verb).
    """
    length = _content_length(face, req)
    stream = req.environ["wsgi.input"]
    head = RequestHead()
    read = 0
    while read < min(length, SMALL_BODY_LIMIT) and not head.done:
        chunk = stream.read(min(MAX_CHUNK, length - read))
        if not chunk:
            break
        read += len(chunk)
        head.feed(chunk)
    if head.verb is None:
        raise refusal
    req.environ[SMART_VERB_KEY] = head.verb  # for the metrics
    try:  # the location, if it is one, else nothing the client sent
        shown = "/" + str(layout.parse_location(path))
    except layout.InvalidName:
        shown = ""
    body = RequestHead.error_response(
        (
            b"PermissionDenied",
            shown.encode("utf-8"),
            refusal.reason.encode("utf-8"),
        )
    )
    headers = [("Content-Length", str(len(body)))]
    if read < length:  # the rest of the body is not read
        headers.append(("Connection", "close"))
    req.respond(200, "application/octet-stream", headers)
    return [body]

def _writer(
    face: Face, req: Request, codebase: str, writable: bool
) -> provenance.Writer | None:
    """Whom a smart request writes for (see :mod:`provenance`): the
    admin face is trusted; a public writer is its ``REMOTE_USER``."""
    if not writable:
        return None
    name = req.environ.get("REMOTE_USER") or "-" if face.is_public else None
    return provenance.Writer(name, face.storage.path(codebase))

def _content_length(face: Face, req: Request) -> int:
    # (a Transfer-Encoding body is not taken for the Content-Length some
    # servers make up for it)
    try:
        if "HTTP_TRANSFER_ENCODING" in req.environ:
            raise ValueError
        length = int(req.environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        raise HTTPError(411, "a smart request needs a Content-Length") from None
    if length < 0:
        raise HTTPError(400, "invalid Content-Length")
    if length > face.smart.client_max_size:
        raise _too_large(length, face.smart.client_max_size)
    return length

def _identity(face: Face, environ: Environ) -> tuple[str, ...]:
    """Whom a request counts for in the stream budget's fair shares: the
    authenticated worker (``REMOTE_USER``, set by the write policy), or
    one identity for all the face's other clients."""
    user = environ.get("REMOTE_USER")
    if user:
        return ("worker", user)
    return ("anonymous",) if face.is_public else _ADMIN_IDENTITY

def _take(turn: _Turn, writer: bool) -> None:
    """Take a slot of the stream budget for ``turn``, or refuse (503)."""
    if not turn.take(writer=writer):
        raise HTTPError(
            503,
            f"the server is busy with {turn.budget.slots} streams; retry later",
            [("Retry-After", str(RETRY_AFTER)), ("Connection", "close")],
        )

def _feed(
    req: Request,
    exchange: SmartExchange,
    length: int,
    writable: bool,
    turn: _Turn,
) -> int:
    """Feed the request body to the protocol in bounded chunks; return
    how many of its ``length`` bytes were not read (the body ended early).

    Until the verb is read, no more than :data:`SMALL_BODY_LIMIT` is
    read.  A body of at most that size is then read whole before
    anything of it reaches the verb, so a heavy verb takes its slot
    (in ``admit``) only once its body has arrived; only a writer's
    insert stream holds its slot while its body arrives, and is cut
    (write group aborted, slot given back) when it sends slower than
    the budget's minimum rate (:class:`RateWatch`).  The verb's body
    limit is checked (by ``admit``) as soon as the verb is fed.
    """
    stream = req.environ["wsgi.input"]
    head = RequestHead()
    held: list[bytes] = []
    read = 0
    small = length <= SMALL_BODY_LIMIT
    while read < length and (small or not head.done):
        if not head.done and read >= SMALL_BODY_LIMIT:
            raise _too_large(length, SMALL_BODY_LIMIT)
        chunk = stream.read(min(MAX_CHUNK, length - read))
        if not chunk:
            break
        read += len(chunk)
        held.append(chunk)
        if not head.done:
            head.feed(chunk)
    for chunk in held:
        if not exchange.wants_more():
            return length - read
        exchange.feed(chunk)
    del held
    if read == length or not exchange.wants_more():
        return length - read
    watch = None
    if turn.held:  # a writer's insert stream
        budget = turn.budget

        def cut() -> None:
            logger.warning(
                "smart verb %s: request body cut, slower than %d bytes/s "
                "(request %s)",
                (exchange.verb or b"?").decode("ascii", "replace"),
                budget.min_rate,
                current_request_id(),
            )
            exchange.abort()
            turn.cut()

        watch = RateWatch(budget.min_rate, budget.stall_window, cut)
    try:
        while read < length and exchange.wants_more():
            with watch.waiting() if watch else contextlib.nullcontext():
                chunk = stream.read(min(MAX_CHUNK, length - read))
            if watch is not None and watch.is_cut:
                raise HTTPError(
                    408,
                    "request body too slow: a stream must send at least "
                    f"{turn.budget.min_rate:.0f} bytes a second",
                    [("Connection", "close")],
                )
            if not chunk:
                break
            read += len(chunk)
            if watch is not None:
                watch.moved(len(chunk))
            exchange.feed(chunk)
    finally:
        if watch is not None:
            watch.stop()
    return length - read


def _flush_syncs(root) -> None:
    """Sync what the request wrote before its response acknowledges it; a
    failure is answered 503 (nothing is acknowledged) and logged."""
    try:
        root.flush_syncs()
    except (errors.BzrError, OSError) as e:
        logger.error(
            "could not sync the writes of request %s: %s", current_request_id(), e
        )
        raise HTTPError(
            503,
            "the store could not save the writes to disk; retry later",
            [("Connection", "close")],
        ) from None


class _Turn:
    """A request's place in a :class:`StreamBudget`, for ``holder``, taken
    at most once and given back once."""

    def __init__(self, budget: StreamBudget, holder: tuple[str, ...]) -> None:
        self.budget = budget
        self.holder = holder
        self._held = False
        self._writer = False
        self._since = time.monotonic()
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._held

    def take(self, writer: bool = False) -> bool:
        self._writer = writer
        # the admin face's clients without a user are trusted: no share
        capped = self.holder != _ADMIN_IDENTITY
        self._held = self.budget.acquire(writer, self.holder, capped)
        self._since = time.monotonic()
        return self._held

    def pace(self) -> tuple[float, float]:
        """The rate its stream must keep now, and over what window."""
        capped = self.holder != _ADMIN_IDENTITY
        return self.budget.pace(self._writer, self.holder, self._since, capped=capped)

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self.budget.release(self._writer, self.holder)

    def cut(self) -> None:
        """The stream was too slow: counted, and its slot given back."""
        if self._held:
            self.budget.cut(self._writer)
        self.release()


def _incomplete(req: Request, unread: int) -> list[bytes]:
    """The answer to a body the protocol decoder wants more of (empty, cut
    short, or no message it can finish): :data:`INCOMPLETE_RESPONSE`, as
    breezy's own smart server app answers it.  The connection closes when
    the client sent less than its ``Content-Length``."""
    headers = [("Content-Length", str(len(INCOMPLETE_RESPONSE)))]
    if unread:
        headers.append(("Connection", "close"))
    req.respond(200, "application/octet-stream", headers)
    return [INCOMPLETE_RESPONSE]


def _too_large(length: int, limit: int, verb: bytes | None = None) -> HTTPError:
    """The 413 refusing a body of ``length`` bytes (left unread) to ``verb``
    (one of breezy's: a client's own verb is not echoed)."""
    what = f" for {verb.decode('ascii', 'replace')}" if verb else ""
    return HTTPError(
        413,
        f"request body of {length} bytes exceeds the limit of {limit}{what}",
        [("Connection", "close")],
    )


def _relpath(location: layout.Location) -> str:
    return "/".join(location.segments) or "."



