"""Who sent which revision: a stored revision is part of a writer's branch
only once that writer sent it too.

All writers of a codebase share one repository, and a revision is stored
once, under its revision id: whatever a writer stores first under an id is
what every branch naming that id shows.  So a worker could store, under the
id of a public upstream revision, content of its own, and every later push
of the real history would be "already there".  The store therefore keeps,
per codebase and per writer, the revisions that writer has *verified*: sent
itself, either new to the repository or byte for byte equal (by SHA-1) to
the stored copy (:mod:`breezy_janitor_store.store.contentcheck` compares them on
insert, and refuses a push whose copy differs).  For a writer:

* ``Repository.get_parent_map`` answers only revisions the writer verified,
  so a stock client sends the others (:func:`filter_parent_map`); the
  insert then compares its copy with the stored one;
* a branch tip or tag may not bring in a stored revision the writer has not
  verified (:func:`check_new_history`): a push that did not send it (a
  client that asked otherwise) fails with the reason, never silently.

Revisions written on the admin face (trusted) count as verified for every
writer.  Revisions stored before this record existed count for nobody:
each writer's first push of such history sends it once.

The record is a directory the store keeps inside the codebase's control
directory, ``.bzr/janitor-store/verified/`` (clients can neither read nor
write it: see :func:`breezy_janitor_store.store.layout.is_store_record`): one
append-only file per writer (named by the SHA-1 of the writer's name),
one line per revision (the SHA-1 of its id, hex).  A line is appended only
after the revision is committed and found equal, so a crash, a torn or
lost append, or concurrent appends on a shared filesystem lose lines
(that writer sends those revisions again) but never add one.
"""

from __future__ import annotations

import contextvars
import errno
import fcntl
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from breezy import errors
from breezy.branch import Branch
from breezy.revision import NULL_REVISION, is_null

from .layout import CONTROL, STORE_DIRECTORY

__all__ = [
    "Verified",
    "Writer",
    "check_new_history",
    "commit_lock",
    "current",
    "filter_parent_map",
    "install",
    "record_verified",
    "unverified",
    "writing_as",
]

logger = logging.getLogger(__name__)

#: The record's directory, relative to the codebase directory.
VERIFIED = (CONTROL, STORE_DIRECTORY, "verified")
#: The file of revisions written by trusted (admin-face) writers.
TRUSTED_FILE = "trusted"
#: The lock serialising commits of write groups in one codebase.
COMMIT_LOCK = (CONTROL, STORE_DIRECTORY, "commit.lock")
#: Seconds a commit waits for another one in the same codebase.
COMMIT_WAIT = 120.0
#: Record files kept parsed in memory per process.
CACHE_SIZE = 64
_LINE = 41  # 40 hex digits and a newline
_WRITE_BATCH = 64 * 1024 // _LINE


@dataclass(frozen=True)
class Writer:
    """Who a smart request writes for, in which codebase directory.

    :ivar name: the authenticated worker (``REMOTE_USER``); None for a
        trusted writer (the admin face).
    :ivar codebase_dir: the codebase's directory on disk.
    """

    name: str | None
    codebase_dir: str

    @property
    def trusted(self) -> bool:
        return self.name is None

    def shown(self) -> str:
        return "the admin face" if self.name is None else repr(self.name)


_current: contextvars.ContextVar[Writer | None] = contextvars.ContextVar(
    "breezy_janitor_store_writer", default=None
)


class _WritingAs:
    __slots__ = ("_token", "_writer")

    def __init__(self, writer: Writer | None) -> None:
        self._writer = writer

    def __enter__(self) -> None:
        self._token = _current.set(self._writer)

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)


def writing_as(writer: Writer | None) -> _WritingAs:
    """Verbs run in this context (and threads started with a copy of it)
    write for ``writer``; None: a reader (nothing is filtered or checked
    beyond the content of what is inserted)."""
    return _WritingAs(writer)


def current() -> Writer | None:
    """The writer of the request being served, or None."""
    return _current.get()


def _digest(revision_id: bytes) -> bytes:
    return hashlib.sha1(revision_id).hexdigest().encode("ascii")


def _file_name(writer: Writer) -> str:
    if writer.trusted:
        return TRUSTED_FILE
    return hashlib.sha1(writer.name.encode("utf-8")).hexdigest()


class _Parsed:
    """One record file as read so far: the digests of its whole lines."""

    __slots__ = ("digests", "identity", "offset")

    def __init__(self, identity: tuple[int, int]) -> None:
        self.identity = identity
        self.offset = 0
        self.digests: set[bytes] = set()


_cache: OrderedDict[str, _Parsed] = OrderedDict()
_cache_lock = threading.Lock()


def _digests(path: str) -> set[bytes]:
    """The digests recorded in ``path`` (empty when there is none); read
    incrementally, the file being append-only."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return set()
    identity = (st.st_dev, st.st_ino)
    with _cache_lock:
        parsed = _cache.get(path)
        if parsed is None or parsed.identity != identity or st.st_size < parsed.offset:
            parsed = _Parsed(identity)
        _cache[path] = parsed
        _cache.move_to_end(path)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        if st.st_size > parsed.offset:
            with open(path, "rb") as f:
                f.seek(parsed.offset)
                data = f.read(st.st_size - parsed.offset)
            end = data.rfind(b"\n") + 1  # a line being appended waits
            for line in data[:end].split(b"\n"):
                # a torn line, or two run together, is no record
                if len(line) == _LINE - 1 and _is_hex(line):
                    parsed.digests.add(line)
            parsed.offset += end
        return parsed.digests


def _is_hex(line: bytes) -> bool:
    try:
        int(line, 16)
    except ValueError:
        return False
    return True


def _record_dir(codebase_dir: str) -> str:
    return os.path.join(codebase_dir, *VERIFIED)


class Verified:
    """What ``writer`` has verified, as recorded when this was made (its
    files are read once: a graph walk asks it many times)."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        if writer.trusted:
            self._sets: tuple[set[bytes], ...] = ()
        else:
            directory = _record_dir(writer.codebase_dir)
            self._sets = (
                _digests(os.path.join(directory, _file_name(writer))),
                _digests(os.path.join(directory, TRUSTED_FILE)),
            )

    def unverified(self, revision_ids: Iterable[bytes]) -> set[bytes]:
        """Those of ``revision_ids`` not verified (none for a trusted
        writer; the null revision never)."""
        if self.writer.trusted:
            return set()
        mine, trusted = self._sets
        return {
            r
            for r in revision_ids
            if not is_null(r) and (d := _digest(r)) not in mine and d not in trusted
        }


def unverified(writer: Writer, revision_ids: Iterable[bytes]) -> set[bytes]:
    """Those of ``revision_ids`` that ``writer`` has not verified (none
    for a trusted writer; the null revision never)."""
    return Verified(writer).unverified(revision_ids)


def record_verified(writer: Writer, revision_ids: Iterable[bytes]) -> None:
    """Append ``revision_ids`` (committed, and equal to what ``writer``
    sent) to the writer's record.  A failure to write is logged: the writer
    only sends those revisions again."""
    directory = _record_dir(writer.codebase_dir)
    path = os.path.join(directory, _file_name(writer))
    known = _digests(path)  # (shared: membership tests only)
    lines = sorted(d for d in {_digest(r) for r in revision_ids} if d not in known)
    if not lines:
        return
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            for start in range(0, len(lines), _WRITE_BATCH):
                # whole lines per write: a torn append loses lines, never
                # makes one
                os.write(
                    fd, b"".join(d + b"\n" for d in lines[start : start + _WRITE_BATCH])
                )
        finally:
            os.close(fd)
    except OSError as e:
        logger.warning(
            "could not record %d revisions verified by %s: %s",
            len(lines),
            writer.shown(),
            e.strerror,
        )


@contextmanager
def commit_lock(codebase_dir: str, wait: float = COMMIT_WAIT) -> Iterator[None]:
    """Hold the codebase's commit lock (an ``flock``, across processes):
    the check that no other writer committed the same revisions meanwhile
    and the commit itself happen under it."""
    path = os.path.join(codebase_dir, *COMMIT_LOCK)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pause = threading.Event()
        waited = 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if waited >= wait:
                    raise errors.LockContention(
                        "(commit lock)", "another push to this codebase is committing"
                    ) from None
                pause.wait(0.05)
                waited += 0.05
        yield
    finally:
        os.close(fd)  # releases the lock


def _reason(revision_id: bytes, writer: Writer) -> str:
    shown = revision_id.decode("utf-8", "replace")
    return (
        f"revision {shown} is stored by another writer and {writer.shown()} "
        "has not sent it: push again from a client that sends it (stock brz "
        "does), or ask the operator"
    )


def new_history(
    branch: Branch, new_heads: Iterable[bytes], known: Iterable[bytes]
) -> set[bytes]:
    """Revisions of the branch's repository that ``new_heads`` bring in
    beyond the ancestry of ``known``."""
    graph = branch.repository.get_graph()
    known = [r for r in known if not is_null(r)] or [NULL_REVISION]
    found: set[bytes] = set()
    for head in new_heads:
        if is_null(head) or head in found:
            continue
        if not branch.repository.has_revision(head):
            continue  # a ghost: nothing stored to show
        found |= set(graph.find_unique_ancestors(head, known))
    return found


def check_new_history(
    branch: Branch, new_heads: Iterable[bytes], known: Iterable[bytes]
) -> str | None:
    """Why the current writer may not make ``branch`` show ``new_heads``
    (tip or tags), or None: every stored revision they bring in beyond
    ``known`` must be verified for the writer."""
    writer = current()
    if writer is None or writer.trusted:
        return None
    missing = unverified(writer, new_history(branch, new_heads, known))
    if not missing:
        return None
    first = min(missing)
    logger.warning(
        "refused a change of %s by %s: %d revisions stored by others and not "
        "sent by this writer, first %s",
        branch.base,
        writer.shown(),
        len(missing),
        first.decode("utf-8", "replace"),
    )
    return _reason(first, writer)


def _pre_change_branch_tip(params) -> None:
    """breezy's ``pre_change_branch_tip`` hook: refuse a tip the writer has
    not verified the new history of."""
    reason = check_new_history(params.branch, [params.new_revid], [params.old_revid])
    if reason is not None:
        raise errors.TipChangeRejected(reason)


def filter_parent_map(parent_map: dict, verified: Verified | None) -> dict:
    """``parent_map`` without the revisions not ``verified``."""
    if verified is None or verified.writer.trusted or not parent_map:
        return parent_map
    hidden = verified.unverified(parent_map)
    if not hidden:
        return parent_map
    return {k: v for k, v in parent_map.items() if k not in hidden}


_installed = False


def install() -> None:
    """Install the tip check (once per process)."""
    global _installed
    if not _installed:
        Branch.hooks.install_named_hook(
            "pre_change_branch_tip", _pre_change_branch_tip, "janitor store provenance"
        )
        _installed = True
