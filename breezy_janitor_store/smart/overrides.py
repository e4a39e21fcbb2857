"""The store's own request classes for some of breezy's verbs: bounded
reads, insert streams that can be aborted, branch and control-directory
verbs that follow no reference, parents and tags checked for provenance.

breezy private names used (check them on a breezy upgrade):
``breezy.bzr.smart.repository._byte_stream_to_stream``,
``SmartServerRequest._backing_transport``, ``SmartServerRequestBzrDir._bzrdir``
(set by breezy's ``do``), ``SmartServerRepositoryGetParentMap._expand_requested_revs``
(overridden), and ``readv``'s ``_relpath``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import threading
from collections import deque
from collections.abc import Iterator

from breezy import errors, urlutils
from breezy.branch import Branch
from breezy.bzr.smart import bzrdir, protocol, request, vfs
from breezy.bzr.smart.branch import SmartServerBranchSetTagsBytes
from breezy.bzr.smart.repository import (
    SmartServerRepositoryAnnotateFileRevision,
    SmartServerRepositoryGetParentMap,
    SmartServerRepositoryInsertStreamLocked,
    _byte_stream_to_stream,
)
from breezy.transport import Transport
from fastbencode import bdecode, bencode

from ..store import branches, contentcheck, provenance
from ..store.budget import (
    ANNOTATE_LIMIT,
    VFS_READ_LIMIT,
)
from .verbs import MAX_BACKLOG, MAX_CHUNK

__all__ = [
    "BUFFERED_READ_LIMIT",
    "MAX_READV_RANGES",
    "OVERRIDES",
    "InsertStream",
    "readv_ranges",
]

_V3 = protocol.ProtocolThreeDecoder


logger = logging.getLogger(__name__)


#: Largest file-level answer built whole in memory; a larger one (up to
#: :data:`VFS_READ_LIMIT`) is streamed, read from disk as the client takes
#: it, and holds a reader slot of the :class:`StreamBudget` while it runs.
BUFFERED_READ_LIMIT = 64 * 1024


#: Most ranges one ``readv`` asks for (breezy's client asks for at most
#: 5 MiB at once, in ranges of a page or more).
MAX_READV_RANGES = 10_000


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
    verified (see :mod:`breezy_janitor_store.store.provenance`)."""

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
OVERRIDES = {
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
