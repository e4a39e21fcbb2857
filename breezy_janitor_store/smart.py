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
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from breezy import errors, registry, trace, urlutils
from breezy.branch import Branch
from breezy.bzr.branch import BranchReferenceFormat
from breezy.bzr.bzrdir import BzrDirMetaFormat1
from breezy.bzr.smart import bzrdir, medium, message, protocol, request, vfs
from breezy.bzr.smart.branch import SmartServerBranchSetTagsBytes
from breezy.bzr.smart.repository import (
    SmartServerRepositoryAnnotateFileRevision,
    SmartServerRepositoryGetParentMap,
    SmartServerRepositoryInsertStream,
    SmartServerRepositoryInsertStream_1_19,
    SmartServerRepositoryInsertStreamLocked,
    _byte_stream_to_stream,
)
from breezy.transport import Transport
from fastbencode import bdecode, bencode

from . import branches, contentcheck, damage, isolation, layout, provenance
from .budget import (
    PROCESS_STREAM_BUDGET,
    STREAM_MIN_RATE,
    STREAM_STALL_WINDOW,
    StreamBudget,
)
from .context import current_request_id
from .transport import DISK_ERRNOS, FOLLOWED_OPTIONS, REFERENCE_REASON

__all__ = [
    "ANNOTATE_LIMIT",
    "BUFFERED_READ_LIMIT",
    "COMMANDS",
    "MAX_CHUNK",
    "MAX_READV_RANGES",
    "PROCESS_STREAM_BUDGET",
    "READ_CATEGORY",
    "SMALL_BODY_LIMIT",
    "STREAM_MIN_RATE",
    "STREAM_STALL_WINDOW",
    "UNHANDLED_ERROR",
    "UNSERVED_VERBS",
    "VFS_READ_LIMIT",
    "RequestHead",
    "SmartExchange",
    "StreamBudget",
    "VerbPolicy",
    "readv_ranges",
    "verb_category",
    "verb_policy",
    "well_formed",
]

_V3 = protocol.ProtocolThreeDecoder
logger = logging.getLogger(__name__)

#: Bytes read from the request body at a time.
MAX_CHUNK = 64 * 1024
#: Response chunks buffered between the protocol and a slow client.
QUEUE_DEPTH = 8
#: Request-body bytes a streamed insert may have queued and not yet consumed.
MAX_BACKLOG = 4 * 1024 * 1024
#: Largest request body of every verb but a writer's insert stream.
SMALL_BODY_LIMIT = 4 * 1024 * 1024
#: Largest answer of a file-level read (``get``, ``readv``): breezy's own
#: client asks ``readv`` for at most this much at once (its
#: ``RemoteTransport._max_readv_bytes``) and ``get`` only for small control
#: files; repository data is read through the repository verbs.
VFS_READ_LIMIT = 5 * 1024 * 1024
#: Largest file-level answer built whole in memory; a larger one (up to
#: :data:`VFS_READ_LIMIT`) is streamed, read from disk as the client takes
#: it, and holds a reader slot of the :class:`StreamBudget` while it runs.
BUFFERED_READ_LIMIT = 64 * 1024
#: Most ranges one ``readv`` asks for (breezy's client asks for at most
#: 5 MiB at once, in ranges of a page or more).
MAX_READV_RANGES = 10_000
#: Largest file ``Repository.annotate_file_revision`` annotates: breezy
#: builds the whole annotation in memory, several times the file's size.
ANNOTATE_LIMIT = VFS_READ_LIMIT
READ_CATEGORY = "read"
_MARKER = protocol.MESSAGE_VERSION_THREE

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
#: Verbs whose request body is a repository stream (the large body limit).
INSERT_STREAM_VERBS = {
    b"Repository.insert_stream": SmartServerRepositoryInsertStream,
    b"Repository.insert_stream_1.19": SmartServerRepositoryInsertStream_1_19,
    b"Repository.insert_stream_locked": SmartServerRepositoryInsertStreamLocked,
}
#: Verbs that stream a repository's contents one way or the other, or work
#: through all of it: they count against the :class:`StreamBudget`.
HEAVY_VERBS = frozenset(
    {
        *INSERT_STREAM_VERBS,
        b"Repository.get_stream",
        b"Repository.get_stream_1.19",
        b"Repository.get_stream_for_missing_keys",
        b"Repository.iter_files_bytes",
        b"Repository.iter_revisions",
        b"Repository.revision_archive",
        b"Repository.pack",
        b"Repository.reconcile",
        b"PackRepository.autopack",
        b"VersionedFileRepository.get_inventories",
        # whole answers built in memory, as large as the file or history
        b"Repository.annotate_file_revision",
        b"Repository.all_revision_ids",
        b"Repository.gather_stats",
        b"Repository.get_revision_graph",
    }
)
_NEW_REPOSITORY = (
    b"a branch must keep its revisions in the codebase's shared repository, "
    b"not in a repository of its own"
)
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


#: ``check(request, args)``: ``(path, reason)`` refusing the arguments, or None.
ArgumentCheck = Callable[["StoreRequest", tuple], "tuple[bytes, bytes] | None"]


#: Network names of the control directories a client may create: breezy's
#: meta directory (what ``brz push`` asks for a branch in a shared
#: repository).  Not the colocated variant (``development-colo``: the smart
#: client cannot open colocated branches, and a location holds one branch)
#: nor the all-in-one formats of old (``Bazaar-NG branch, format 6``), which
#: keep a repository inside the branch.
CONTROL_DIR_FORMATS = frozenset({BzrDirMetaFormat1().network_name()})
_CONTROL_DIR_FORMAT = (
    b"a branch is made in breezy's meta directory format "
    b"(Bazaar-NG meta directory, format 1)"
)


def _no_new_repository(req: StoreRequest, args: tuple) -> tuple[bytes, bytes] | None:
    """``BzrDirFormat.initialize_ex_1.16`` (arguments: format, path,
    use_existing_dir, create_prefix, force_new_repo, stacked_on, ...) may
    create only a meta directory, and may not ask for a repository of its
    own, nor for stacking."""
    if len(args) > 1 and args[0] not in CONTROL_DIR_FORMATS:
        return args[1], _CONTROL_DIR_FORMAT
    if len(args) > 4 and args[4] == b"True":
        return args[1], _NEW_REPOSITORY
    if len(args) > 5 and args[5]:
        return args[1], REFERENCE_REASON.encode()
    return None


def _no_followed_option(req: StoreRequest, args: tuple) -> tuple[bytes, bytes] | None:
    """``Branch.set_config_option``/``_dict`` (arguments: path, branch and
    repository tokens, value, name, section) may not set a location that
    breezy would follow (``stacked_on_location``, ``bound_location``)."""
    if len(args) > 4 and args[4].decode("utf-8", "replace") in FOLLOWED_OPTIONS:
        return args[0], f"{args[4].decode()}: {REFERENCE_REASON}".encode()
    return None


_REFERENCE_FORMAT = BranchReferenceFormat().network_name()


def _no_reference(req: StoreRequest, args: tuple) -> tuple[bytes, bytes] | None:
    """``BzrDir.create_branch`` (arguments: path, branch format) may not make
    a branch reference."""
    if len(args) > 1 and args[1] == _REFERENCE_FORMAT:
        return args[0], REFERENCE_REASON.encode()
    return None


def _vfs_write_allowed(req: StoreRequest, args: tuple) -> tuple[bytes, bytes] | None:
    """A file-level write (``put``, ``mkdir``, ``rename``...; its first one
    or two arguments are paths) must be one :func:`layout.vfs_write_refusal`
    allows."""
    operation = req.verb.decode()
    count = 2 if req.verb in (b"rename", b"move") else 1
    for client_path in args[:count]:
        reason = layout.vfs_write_refusal(req.disk_path(client_path), operation)
        if reason is not None:
            return client_path, reason.encode()
    return None


#: Reasons to refuse a verb's arguments.
_ARGUMENT_CHECKS: dict[bytes, ArgumentCheck] = {
    b"BzrDirFormat.initialize_ex_1.16": _no_new_repository,
    b"Branch.set_config_option": _no_followed_option,
    b"Branch.set_config_option_dict": _no_followed_option,
    b"BzrDir.create_branch": _no_reference,
    **{verb.encode(): _vfs_write_allowed for verb in layout.VFS_WRITES},
}


@dataclass(frozen=True)
class VerbPolicy:
    """What the store lets a smart verb do.

    :ivar category: breezy's class of the verb (``read``, ``idem``, ``semi``,
        ``semivfs``, ``stream``, ``mutate``); None for a verb not in the
        registry.
    :ivar refused: why the store never runs the verb, or None.
    :ivar large_body: the verb's body is a repository stream: a writer may
        send up to the store's ``client_max_size``; every other body is
        limited to :data:`SMALL_BODY_LIMIT`.
    :ivar heavy: the verb counts against the :class:`StreamBudget`.
    :ivar check: callable(request, args) giving ``(path, reason)`` to refuse
        these arguments, or None.
    """

    category: str | None
    refused: bytes | None = None
    large_body: bool = False
    heavy: bool = False
    check: ArgumentCheck | None = None

    @property
    def writes(self) -> bool:
        """Whether the verb may change anything (read-only faces refuse it)."""
        return self.category not in (READ_CATEGORY, None)

    def body_limit(self, writable: bool, client_max_size: int) -> int:
        """Largest request body accepted for the verb."""
        if self.large_body and writable:
            return client_max_size
        return min(SMALL_BODY_LIMIT, client_max_size)

    def refusal(
        self, req: StoreRequest, args: tuple
    ) -> request.FailedSmartServerResponse | None:
        """The smart error answering ``args`` without running the verb, or None.

        On a read-only face every verb that may write is refused outright,
        whatever it would do to the disk.
        """
        if self.refused is not None:
            return request.FailedSmartServerResponse(
                (b"PermissionDenied", req.verb, self.refused)
            )
        if self.writes and req.transport.is_readonly():
            return request.FailedSmartServerResponse((b"ReadOnlyError",))
        reason = self.check(req, args) if self.check is not None else None
        if reason is not None:
            return request.FailedSmartServerResponse((b"PermissionDenied", *reason))
        return None


#: The policy of a verb the registry does not have (breezy answers it with
#: ``UnknownSmartMethod``).
UNKNOWN_VERB = VerbPolicy(None)

#: The smart error answering a failure that is not a breezy error (its
#: text, a Python message, is logged with the request id, never sent).
UNHANDLED_ERROR = (b"error", b"the server could not handle this request")
#: The smart error answering a request whose verb is not a byte string or
#: whose arguments are nested deeper than any verb's.
MALFORMED_ARGUMENTS = (
    b"error",
    (
        b"malformed request: a verb and arguments (byte strings, numbers, "
        b"or lists of them) expected"
    ),
)
_ARGUMENT_ATOMS = (bytes, int)
#: A Python object's default repr, as some breezy errors carry.
_OBJECT_REPR = re.compile(rb"<[\w.]+ object at 0x[0-9a-f]+>")


def well_formed(args: object) -> bool:
    """Whether ``args`` is a request's structure: a tuple whose first item,
    the verb, is bytes, and whose arguments are byte strings or numbers,
    or flat lists of them (``Repository.get_rev_id_for_revno`` sends a
    pair).

    Looks one level into each argument only, without recursion: it runs
    before anything hashes, compares or formats the structure, whose depth
    the client chooses.
    """
    if not isinstance(args, tuple) or not args or not isinstance(args[0], bytes):
        return False
    for arg in args[1:]:
        if isinstance(arg, _ARGUMENT_ATOMS):
            continue
        if not isinstance(arg, (tuple, list)):
            return False
        if not all(isinstance(item, _ARGUMENT_ATOMS) for item in arg):
            return False
    return True


def _is_breezy_error(e: BaseException) -> bool:
    """Whether ``e`` is a breezy error the client may see as it is."""
    return isinstance(e, errors.BzrError) and not e.internal_error


def _encodable(response: request.SmartServerResponse) -> request.SmartServerResponse:
    """An error response whose arguments can be encoded.

    breezy answers a stale lock token with ``TokenMismatch`` and the current
    token, None when the lock is no longer held: unencodable, it would cut
    the response short after its first bytes.
    """
    # (the responder encodes str arguments as UTF-8 itself)
    args = tuple(a.encode("utf-8") if isinstance(a, str) else a for a in response.args)
    if args[:1] == (b"PermissionDenied",) and args[2:3] and args[2].startswith(b": "):
        # breezy's PathError keeps its reason as ": reason" and the client
        # adds ": " again: send the reason alone
        args = (*args[:2], args[2][2:], *args[3:])
        response = request.FailedSmartServerResponse(args, response.body)
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


def _log_failure(verb: bytes | None, e: BaseException) -> None:
    logger.warning(
        "smart verb %s failed: %s: %s (request %s)",
        (verb or b"?").decode("ascii", "replace"),
        type(e).__name__,
        e,
        current_request_id(),
    )


class RequestFailed(errors.BzrError):
    """A failure that is not a breezy error, as a response stream ends with
    it (the original is logged)."""

    _fmt = "the server could not handle this request"


def _logged(
    chunks: Iterator[bytes], verb: bytes | None, codebase: str = ""
) -> Iterator[bytes]:
    """A response body stream whose failure is logged (with the request id);
    one that is not a breezy error reaches the client as :class:`RequestFailed`,
    one showing a damaged repository as :class:`damage.DamagedRepository`."""
    try:
        yield from chunks
    except Exception as e:
        reason = damage.damage_of(e)
        if reason is not None:
            damage.report(codebase, reason)
            raise damage.DamagedRepository(reason) from None
        _log_failure(verb, e)
        if _is_breezy_error(e):
            raise
        raise RequestFailed() from None


class StoreRequest(request.SmartServerRequest):
    """Base of the store's request classes: a breezy request class, refused
    by its :class:`VerbPolicy` or run with its errors made plain.

    The store's registry holds, for each of breezy's verbs, a subclass of
    this and of breezy's class (see :func:`_store_class`).
    """

    verb: bytes = b""
    policy: VerbPolicy = UNKNOWN_VERB
    _refused = False

    def execute(self, *args):
        refusal = self.policy.refusal(self, args)
        if refusal is not None:
            self._refused = True  # nothing runs, nor reads the body
            return refusal
        return self._run(super().execute, *args)

    @property
    def transport(self) -> Transport:
        """The transport of the location the request was sent to."""
        return self._backing_transport

    def translate_client_path(self, client_path: bytes) -> str:
        """breezy's translation of a path argument, refused unless it names
        a place the layout has (:func:`layout.request_path_refusal`): no
        verb reaches a control directory nested anywhere else."""
        relpath = super().translate_client_path(client_path)
        reason = layout.request_path_refusal(
            self._disk_of(relpath, client_path), isinstance(self, vfs.VfsRequest)
        )
        if reason is not None:
            raise errors.PermissionDenied(
                client_path.decode("utf-8", "replace"), reason
            )
        return relpath

    def disk_path(self, client_path: bytes) -> tuple[str, ...]:
        """On-disk path, relative to the codebase directory, of a path
        argument (relative to the request's location)."""
        return self._disk_of(super().translate_client_path(client_path), client_path)

    def _disk_of(self, relpath: str, client_path: bytes) -> tuple[str, ...]:
        url = self._backing_transport.abspath(relpath)
        root = self._jail_root.base
        if not url.startswith(root):  # the jail's own root, outside its codebase
            raise errors.PermissionDenied(
                client_path.decode("utf-8", "replace"), "outside the codebase"
            )
        return layout.to_disk(
            tuple(
                urlutils.unescape(p)
                for p in url[len(root) :].split("/")
                if p not in ("", ".")
            )
        )

    def do_chunk(self, chunk_bytes):
        if not self._refused:
            return self._run(super().do_chunk, chunk_bytes)
        return None

    def do_end(self):
        if not self._refused:
            return self._run(super().do_end)
        return None

    def _run(self, method: Callable, *args):
        """Call ``method``, its disk errors made plain and its failures logged.

        The transport translates the errors of its own calls; this catches
        those of the files it opened (a pack being written by an insert,
        say), which would otherwise reach the client as an internal error.
        Failures that are not the request's own fault (not a breezy error,
        or an internal one: a damaged repository, say) are logged with the
        request id; breezy logs their tracebacks to its own log.
        """
        try:
            return method(*args)
        except OSError as e:
            if e.errno not in DISK_ERRNOS:
                return self._unhandled(e)
            where = urlutils.unescape(self._backing_transport.base.split("://", 1)[-1])
            raise errors.PermissionDenied(
                where.rstrip("/") or "/", e.strerror
            ) from None
        except errors.BzrError as e:
            reason = damage.damage_of(e)
            if reason is not None:
                return self._damaged(reason)
            if e.internal_error:
                _log_failure(self.verb, e)
            raise
        except Exception as e:  # noqa: BLE001 - logged, answered generically
            reason = damage.damage_of(e)
            if reason is not None:
                return self._damaged(reason)
            return self._unhandled(e)

    def _damaged(self, reason: str) -> request.FailedSmartServerResponse:
        """The answer to a failure showing the repository damaged, logged."""
        damage.report(_codebase_of(self._jail_root), reason)
        self._refused = True
        message = str(damage.DamagedRepository(reason))
        return request.FailedSmartServerResponse((b"error", message.encode("utf-8")))

    def _unhandled(self, e: Exception) -> request.FailedSmartServerResponse:
        """The generic answer to failure ``e`` (not a breezy error), logged;
        the rest of the request's body is ignored."""
        _log_failure(self.verb, e)
        trace.log_exception_quietly()
        self._refused = True
        return request.FailedSmartServerResponse(UNHANDLED_ERROR)


def _first_chunk_damage(response: request.SmartServerResponse) -> str | None:
    """Produce the first chunk of a streamed response now: the damage of a
    repository it shows, if any (a failure after the stream has started
    reaches a client as a protocol error).  The stream is left whole."""
    body = iter(response.body_stream)
    try:
        first = next(body)
    except StopIteration:
        response.body_stream = iter(())
        return None
    except Exception as e:  # noqa: BLE001 - raised again by the stream
        reason = damage.damage_of(e)
        if reason is None:
            response.body_stream = _raising(e)
        return reason
    response.body_stream = itertools.chain((first,), body)
    return None


def _raising(e: BaseException) -> Iterator[bytes]:
    raise e
    yield b""  # a generator


def _codebase_of(jail_root: Transport) -> str:
    """The codebase a jailed root transport (``janitor-store:///NAME/``) is of."""
    return urlutils.unescape(jail_root.base.split("///", 1)[-1].split("/", 1)[0])


class _EarlyEnd(Exception):
    """The request body ended before its smart message did."""


class _Pipe:
    """Body chunks from the request thread to an inserting thread.

    :meth:`put` waits while more than ``limit`` bytes wait to be taken, so a
    client faster than the inserter is held back by its own connection.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._cond = threading.Condition()
        self._ended = self._aborted = self._closed = False

    def put(self, chunk: bytes) -> None:
        """Queue ``chunk``; dropped once the reader has stopped reading."""
        with self._cond:
            while self._size > self._limit and not self._closed:
                self._cond.wait()
            if not self._closed:
                self._chunks.append(chunk)
                self._size += len(chunk)
                self._cond.notify_all()

    def end(self) -> None:
        """The body is complete: the reader sees the stream end."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def abort(self) -> None:
        """The body will never be complete: the reader gets ``_EarlyEnd``."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def close(self) -> None:
        """The reader has stopped: writers no longer wait."""
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._cond.notify_all()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with self._cond:
                while not (self._chunks or self._ended or self._aborted):
                    self._cond.wait()
                if self._aborted:
                    raise _EarlyEnd("the request body ended before the stream did")
                if not self._chunks:
                    return
                chunk = self._chunks.popleft()
                self._size -= len(chunk)
                self._cond.notify_all()
            yield chunk


class InsertStream(SmartServerRepositoryInsertStreamLocked):
    """breezy's insert-stream verbs, with a bounded body queue and an abort.

    The body goes to an inserting thread through a :class:`_Pipe`;
    :meth:`abort` makes that thread's stream fail, so the write group is
    aborted (its upload pack removed) and the thread ends.
    """

    pipe: _Pipe | None = None

    def do_insert_stream_request(self, repository, resume_tokens):
        self.tokens = [t.decode("utf-8") for t in resume_tokens.split(b" ") if t]
        self.repository = repository
        self.pipe = _Pipe(MAX_BACKLOG)
        self.insert_result = self.insert_error = None
        self._locked = True
        self._unlock_once = threading.Lock()
        self.insert_thread = threading.Thread(
            target=contextvars.copy_context().run,  # keeps the request id
            args=(self._insert,),
            name="smart-insert",
            daemon=True,
        )
        self.insert_thread.start()

    def _insert(self) -> None:
        try:
            src_format, stream = _byte_stream_to_stream(iter(self.pipe))
            # checked before it commits (see contentcheck)
            self.insert_result = contentcheck.insert_stream(
                self.repository, stream, src_format, self.tokens, _shown(self.transport)
            )
        except BaseException as e:  # noqa: BLE001 - raised again by do_end
            self.insert_error = e
        finally:
            self.pipe.close()

    def do_chunk(self, body_stream_chunk):
        if self.pipe is not None:
            self.pipe.put(body_stream_chunk)

    def do_end(self):
        if self.pipe is None:
            return None
        self.pipe.end()
        self.insert_thread.join()
        self._unlock()
        if self.insert_error is not None:
            error, self.insert_error = self.insert_error, None
            raise error
        write_group_tokens, missing_keys = self.insert_result
        if write_group_tokens or missing_keys:
            missing_keys = sorted(
                (entry[0].encode("utf-8"),) + entry[1:] for entry in missing_keys
            )
            tokens = [token.encode("utf-8") for token in write_group_tokens]
            return request.SuccessfulSmartServerResponse(
                (b"missing-basis", bencode((tokens, missing_keys)))
            )
        return request.SuccessfulSmartServerResponse((b"ok",))

    def abort(self) -> None:
        """Stop an insert whose body will never end (client gone, or lying)."""
        if self.pipe is None:
            return
        self.pipe.abort()
        self.insert_thread.join()
        self._unlock()

    def _unlock(self) -> None:
        # (abort may run in another thread than do_end: a body too slow)
        with self._unlock_once:
            locked, self._locked = self._locked, False
        if locked:
            with contextlib.suppress(Exception):
                self.repository.unlock()


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


class _InitializeBzrDirEx(bzrdir.SmartServerRequestBzrDirInitializeEx):
    """``BzrDirFormat.initialize_ex_1.16``: a control directory found made
    is lock contention.

    ``brz push`` asks for one only where it found no branch; found, another
    client made the branch since (concurrent first pushes), and the push,
    retried, is an update.
    """

    def do(self, *args):
        try:
            return super().do(*args)
        except errors.AlreadyControlDirError:
            raise errors.LockContention(
                "(remote lock)", "another client is creating this branch"
            ) from None


def _served_branch(controldir) -> Branch | None:
    """The branch of ``controldir``, opened as the store serves it; None
    where breezy's own request answers (no branch, or an error).

    :raises branches.RefusedBranch: the branch is not served.
    """
    where = urlutils.unescape(controldir.root_transport.base.split("://", 1)[-1])
    try:
        return branches.open_branch_in(controldir, where.rstrip("/") or "/")
    except branches.RefusedBranch:
        raise
    except errors.BzrError:
        return None  # breezy's own request answers


def _refused_branch(controldir) -> branches.RefusedBranch | None:
    """Why the branch of ``controldir`` is not served, or None (no branch,
    or one served as breezy serves it)."""
    try:
        _served_branch(controldir)
    except branches.RefusedBranch as e:
        return e
    return None


def _served_format(controldir) -> request.SmartServerResponse | None:
    """breezy's ``open_branchV2``/``V3`` answer for the branch of
    ``controldir`` that :func:`_served_branch` opened (breezy would open it
    and its repository again, to name its format); None if it is gone since."""
    try:
        fmt = controldir.find_branch_format()
    except errors.NotBranchError:
        return None
    return request.SuccessfulSmartServerResponse((b"branch", fmt.network_name()))


class _OpenBranch(bzrdir.SmartServerRequestOpenBranch):
    """``BzrDir.open_branch``: a branch reference or a stacked branch (left
    on disk) is no branch; its location is never handed to the client."""

    def do_bzrdir_request(self):
        if _refused_branch(self._bzrdir) is not None:
            return request.FailedSmartServerResponse((b"nobranch",))
        return super().do_bzrdir_request()


class _ServedBranchFormat:
    """``do_bzrdir_request`` of ``open_branchV2``/``V3``: a refused branch
    is ``nobranch`` (with :meth:`refusal`'s reason), a served one answers
    its format without being opened again."""

    def refusal(self, refused: branches.RefusedBranch) -> tuple[bytes, ...]:
        return (b"nobranch",)

    def do_bzrdir_request(self):
        try:
            branch = _served_branch(self._bzrdir)
        except branches.RefusedBranch as refused:
            return request.FailedSmartServerResponse(self.refusal(refused))
        answer = _served_format(self._bzrdir) if branch is not None else None
        if answer is not None:
            return answer
        return super().do_bzrdir_request()


class _OpenBranchV2(_ServedBranchFormat, bzrdir.SmartServerRequestOpenBranchV2):
    __doc__ = _OpenBranch.__doc__


class _OpenBranchV3(_ServedBranchFormat, bzrdir.SmartServerRequestOpenBranchV3):
    """``BzrDir.open_branchV3``: as :class:`_OpenBranch`, saying why."""

    def refusal(self, refused: branches.RefusedBranch) -> tuple[bytes, ...]:
        return (b"nobranch", str(refused).encode("utf-8"))


class _GetBranches(bzrdir.SmartServerBzrDirRequestGetBranches):
    """``BzrDir.get_branches``: a refused branch is not listed."""

    def do_bzrdir_request(self):
        if _refused_branch(self._bzrdir) is not None:
            return request.SuccessfulSmartServerResponse((b"success",), bencode({}))
        return super().do_bzrdir_request()


def _check_read_size(client_path: bytes, size: int) -> None:
    """Refuse a file-level read answering ``size`` bytes over the limit."""
    if size > VFS_READ_LIMIT:
        _refuse_read(
            client_path,
            f"a file-level read answers at most {VFS_READ_LIMIT} bytes, "
            f"not {size}; repository data is read with Repository.get_stream",
        )


def _refuse_read(client_path: bytes, reason: str) -> None:
    raise errors.PermissionDenied(client_path.decode("utf-8", "replace"), reason)


_RANGE = re.compile(rb"(-?[0-9]{1,18}),(-?[0-9]{1,18})")
_LINE = re.compile(rb"[^\n]+")


def readv_ranges(client_path: bytes, body: bytes) -> list[tuple[int, int]]:
    """The ranges a ``readv`` body asks for (``START,LENGTH`` lines), checked
    before anything is read: at most :data:`MAX_READV_RANGES` of them, each
    with ``START >= 0`` and ``LENGTH > 0``, adding up to no more than
    :data:`VFS_READ_LIMIT`.

    :raises errors.PermissionDenied: saying which rule the body breaks.
    """
    ranges: list[tuple[int, int]] = []
    total = 0
    for line in _LINE.finditer(body):  # lazily: the body has up to 4 MiB
        if len(ranges) == MAX_READV_RANGES:
            _refuse_read(
                client_path, f"a readv asks for at most {MAX_READV_RANGES} ranges"
            )
        match = _RANGE.fullmatch(line.group())
        if match is None:
            _refuse_read(client_path, "a readv range is START,LENGTH in decimal")
        start, length = int(match.group(1)), int(match.group(2))
        if start < 0 or length <= 0:
            _refuse_read(
                client_path,
                f"a readv range has START >= 0 and LENGTH > 0, not {start},{length}",
            )
        total += length
        if total > VFS_READ_LIMIT:
            _check_read_size(client_path, total)
        ranges.append((start, length))
    return ranges


def _read_ranges(
    transport: Transport, relpath: str, ranges: list[tuple[int, int]]
) -> Iterator[bytes]:
    """The bytes of ``ranges`` of a file, read piece by piece as they are
    taken (a streamed answer)."""
    with transport.get(relpath) as f:
        for start, length in ranges:
            f.seek(start)
            left = length
            while left:
                data = f.read(min(MAX_CHUNK, left))
                if not data:
                    raise errors.ShortReadvError(
                        relpath, start, length, actual=length - left
                    )
                left -= len(data)
                yield data


class _BoundedGet(vfs.GetRequest):
    """``get`` of a file no larger than :data:`VFS_READ_LIMIT`; one larger
    than :data:`BUFFERED_READ_LIMIT` is streamed (it holds a reader slot)."""

    def do(self, relpath):
        path = self.translate_client_path(relpath)
        size = self._backing_transport.stat(path).st_size
        _check_read_size(relpath, size)
        if size <= BUFFERED_READ_LIMIT:
            return super().do(relpath)
        return request.SuccessfulSmartServerResponse(
            (b"ok",),
            body_stream=_read_ranges(self._backing_transport, path, [(0, size)]),
        )


class _BoundedReadv(vfs.ReadvRequest):
    """``readv`` of ranges checked by :func:`readv_ranges`; an answer larger
    than :data:`BUFFERED_READ_LIMIT` is streamed (it holds a reader slot)."""

    def do(self, relpath):
        self._client_path = relpath
        return super().do(relpath)

    def do_body(self, body_bytes):
        ranges = readv_ranges(self._client_path, body_bytes)
        if sum(length for _, length in ranges) <= BUFFERED_READ_LIMIT:
            data = b"".join(
                data for _, data in self._backing_transport.readv(self._relpath, ranges)
            )
            return request.SuccessfulSmartServerResponse((b"readv",), data)
        size = self._backing_transport.stat(self._relpath).st_size
        for start, length in ranges:
            if start + length > size:
                raise errors.ShortReadvError(
                    self._relpath, start, length, actual=max(0, size - start)
                )
        return request.SuccessfulSmartServerResponse(
            (b"readv",),
            body_stream=_read_ranges(self._backing_transport, self._relpath, ranges),
        )


class _BoundedAnnotate(SmartServerRepositoryAnnotateFileRevision):
    """``Repository.annotate_file_revision`` of a file no larger than
    :data:`ANNOTATE_LIMIT`."""

    def do_repository_request(self, repository, revision_id, tree_path, *args):
        path = tree_path.decode("utf-8", "replace")
        with repository.lock_read():
            size = repository.revision_tree(revision_id).get_file_size(path)
        if size is not None and size > ANNOTATE_LIMIT:
            raise errors.PermissionDenied(
                path, f"annotations are made of files of at most {ANNOTATE_LIMIT} bytes"
            )
        return super().do_repository_request(repository, revision_id, tree_path, *args)


def _shown(transport: Transport) -> str:
    """The virtual location of ``transport`` (``/CODEBASE/...``), for errors."""
    where = urlutils.unescape(transport.base.split("://", 1)[-1])
    return where.rstrip("/") or "/"


class _VerifiedParents:
    """A graph's parent lookups without the revisions the writer has not
    verified (see :mod:`breezy_janitor_store.provenance`)."""

    def __init__(self, graph, writer: provenance.Writer) -> None:
        self._graph = graph
        self._verified = provenance.Verified(writer)

    def get_parent_map(self, revision_ids):
        parent_map = self._graph.get_parent_map(revision_ids)
        return provenance.filter_parent_map(parent_map, self._verified)


class _GetParentMap(SmartServerRepositoryGetParentMap):
    """``Repository.get_parent_map``: a writer is told only of the stored
    revisions it has verified, so its client sends the others, to be
    compared with the stored copies."""

    def _expand_requested_revs(self, repo_graph, *args, **kwargs):
        writer = provenance.current()
        if writer is not None and not writer.trusted:
            repo_graph = _VerifiedParents(repo_graph, writer)
        return super()._expand_requested_revs(repo_graph, *args, **kwargs)


class _SetTagsBytes(SmartServerBranchSetTagsBytes):
    """``Branch.set_tags_bytes``: a new tag may not bring in stored
    revisions the writer has not verified (the tip's own check is breezy's
    ``pre_change_branch_tip`` hook, see :mod:`provenance`)."""

    def do_body(self, body_bytes):
        writer = provenance.current()
        if writer is None or writer.trusted:
            return super().do_body(body_bytes)
        try:
            tags = bdecode(body_bytes) if body_bytes else {}
        except Exception:  # noqa: BLE001 - breezy's own parsing answers it
            tags = None
        if isinstance(tags, dict):
            old = set(self.branch.tags.get_tag_dict().values())
            new = {t for t in tags.values() if isinstance(t, bytes)} - old
            if new:
                reason = provenance.check_new_history(
                    self.branch, sorted(new), [self.branch.last_revision()]
                )
                if reason is not None:
                    raise errors.PermissionDenied(_shown(self.transport), reason)
        return super().do_body(body_bytes)


#: The store's own request classes for some of breezy's verbs.
_OVERRIDES = {
    b"Branch.set_tags_bytes": _SetTagsBytes,
    b"Repository.get_parent_map": _GetParentMap,
    b"Repository.annotate_file_revision": _BoundedAnnotate,
    b"BzrDir.get_branches": _GetBranches,
    b"BzrDir.open_branch": _OpenBranch,
    b"BzrDir.open_branchV2": _OpenBranchV2,
    b"BzrDir.open_branchV3": _OpenBranchV3,
    b"BzrDirFormat.initialize": _InitializeBzrDir,
    b"BzrDirFormat.initialize_ex_1.16": _InitializeBzrDirEx,
    b"get": _BoundedGet,
    b"readv": _BoundedReadv,
}


def _store_class(verb: bytes, cls: type, policy: VerbPolicy) -> type:
    """The store's request class for ``verb``: ``cls`` under its policy."""
    bases = (
        (StoreRequest, InsertStream, cls)
        if verb in INSERT_STREAM_VERBS
        else (
            StoreRequest,
            cls,
        )
    )
    return type(cls.__name__, bases, {"verb": verb, "policy": policy})


def _policy(verb: bytes, category: str) -> VerbPolicy:
    return VerbPolicy(
        category,
        refused=UNSERVED_VERBS.get(verb),
        large_body=verb in INSERT_STREAM_VERBS,
        heavy=verb in HEAVY_VERBS,
        check=_ARGUMENT_CHECKS.get(verb),
    )


def _build_registry() -> registry.Registry:
    """The store's registry: every verb of breezy's (none of a plugin's),
    under its policy."""
    commands = registry.Registry()
    for verb in sorted(request.request_handlers.keys()):
        policy = _policy(verb, request.request_handlers.get_info(verb))
        cls = _OVERRIDES.get(verb) or request.request_handlers.get(verb)
        if not isolation.is_own_module(cls.__module__):
            continue  # a plugin's verb: no plugin code runs in the store
        commands.register(verb, _store_class(verb, cls, policy), info=policy)
    return commands


#: The store's smart verbs (see :class:`VerbPolicy`).
COMMANDS = _build_registry()


def verb_policy(verb: bytes | None) -> VerbPolicy:
    """The store's policy for ``verb``."""
    try:
        return COMMANDS.get_info(verb)
    except KeyError:
        return UNKNOWN_VERB


def verb_category(verb: bytes | None) -> str | None:
    """breezy's classification of a smart verb (``read``, ``idem``, ...)."""
    return verb_policy(verb).category


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
        refused = self._refused(policy, args)
        try:
            self._admit(self.verb, policy, refused)
            if (
                self._prepare_write is not None
                and not refused
                and self._prepares(policy, args)
            ):
                self._prepare_write()
        except Exception as e:  # noqa: BLE001 - raised again by the exchange
            # Nothing runs.
            self.stop = e
            self.response = request.FailedSmartServerResponse((b"error", b"refused"))
            self.finished_reading = True
            return None
        return super().args_received(args)

    def _refused(self, policy: VerbPolicy, args: tuple) -> bool:
        """Whether the verb's policy refuses ``args`` (then nothing runs: the
        verb answers the refusal); a check that fails refuses too (the verb
        answers its error)."""
        if policy.category is None:
            return False  # answered UnknownSmartMethod
        cls = COMMANDS.get(self.verb)
        req = cls(self._backing_transport, self._root_client_path, self._jail_root)
        try:
            return policy.refusal(req, args[1:]) is not None
        except Exception:  # noqa: BLE001 - the verb answers it when it runs
            return True

    def _prepares(self, policy: VerbPolicy, args: tuple) -> bool:
        """Whether an allowed verb may write, or opens the codebase's own
        control directory (a writer's ``ControlDir.open`` of the codebase
        URL, over plain HTTP too, expects to find it)."""
        if policy.writes:
            return True
        if self.verb not in _OPENS_CONTROL_DIR:
            return False
        cls = COMMANDS.get(self.verb)
        req = cls(self._backing_transport, self._root_client_path, self._jail_root)
        try:
            return len(args) > 1 and req.disk_path(args[1]) == ()
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
            codebase = _codebase_of(self.handler._jail_root) if self.handler else ""
            damaged = _first_chunk_damage(response)
            if damaged is not None:
                damage.report(codebase, damaged)
                message = str(damage.DamagedRepository(damaged)).encode("utf-8")
                return super().send_response(
                    request.FailedSmartServerResponse((b"error", message))
                )
            response.body_stream = _logged(response.body_stream, verb, codebase)
            self.deferred = response
            return
        if not response.is_successful():
            response = _encodable(response)
            if any(
                _OBJECT_REPR.search(a) for a in response.args if isinstance(a, bytes)
            ):
                # a Python object's repr (an address) is no answer
                _log_failure(
                    self.handler.verb if self.handler else None,
                    ValueError(response.args),
                )
                response = request.FailedSmartServerResponse(UNHANDLED_ERROR)
        super().send_response(response)

    def send_error(self, exception):
        """breezy's answer to a protocol error, unless the error is not a
        breezy one: a Python message stays in the log."""
        if isinstance(exception, errors.UnknownSmartMethod) or _is_breezy_error(
            exception
        ):
            return super().send_error(exception)
        verb = self.handler.verb if self.handler else None
        _log_failure(verb, exception)
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
