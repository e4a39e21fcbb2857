"""Held branch and repository locks: listing and breaking them.

A push takes the branch's write lock (``.bzr/branch/lock``) from
``Branch.lock_write`` until ``Branch.unlock``, and the codebase's shared
repository lock (``.bzr/repository/lock``) while it records new packs.  A
client killed in between leaves the lock held on disk: every later push to
that branch then fails with breezy's lock-contention error.  The locks are
physical ``LockDir`` directories, so they are read and broken here through
the codebase's :class:`~breezy_janitor_store.transport.StoreTransport`
(the one enforcement point for disk access), never by following paths.

* :func:`list_locks` / :func:`break_lock` — the library, used by the admin
  face's ``GET``/``POST /CODEBASE/locks``, by ``brz janitor-store
  break-lock`` and by the automatic policy;
* :func:`break_stale_locks` — the optional automatic policy
  (``--break-locks-older-than SECONDS``): before a write, locks at the
  request's location older than that are broken.

A lock's record (``held/info``) is written by the client that takes it, so
it is read only up to :data:`MAX_LOCK_INFO` bytes: a bigger or unparsable one
is listed with an unknown holder and the age of its ``held`` directory
(its modification time), and can be broken like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from breezy import errors, osutils, urlutils
from breezy.lockdir import LockDir, LockHeldInfo
from breezy.transport import NoSuchFile

from . import layout
from .context import current_request_id
from .holders import CLIENT, REQUEST_ID, holder_fields
from .storage import layout_names
from .transport import URL_SCHEME

if TYPE_CHECKING:
    from .storage import Storage

__all__ = [
    "BRANCH",
    "REPOSITORY",
    "HeldLock",
    "LockChanged",
    "before_write",
    "break_lock",
    "break_stale_locks",
    "is_held",
    "list_locks",
]

logger = logging.getLogger(__name__)

BRANCH = "branch"
REPOSITORY = "repository"
_LOCK_DIRS = {
    BRANCH: layout.CONTROL + "/branch/lock",
    REPOSITORY: layout.CONTROL + "/repository/lock",
}
#: Largest lock record (``held/info``) read; breezy's are a few hundred bytes.
MAX_LOCK_INFO = 64 * 1024


class LockChanged(Exception):
    """The lock is now held by someone other than the one to break."""


@dataclass(frozen=True)
class HeldLock:
    """A lock found held on disk."""

    #: ``CODEBASE`` (the repository lock) or ``CODEBASE/CAMPAIGN[/ROLE]``.
    location: str
    #: :data:`BRANCH` or :data:`REPOSITORY`.
    lock: str
    #: Who took it (for locks taken through the store: the server process).
    holder: str
    #: Seconds since it was taken (from its ``held`` directory's modification
    #: time when the record has no readable start time).
    age: float | None
    #: breezy's lock nonce: identifies this holding of the lock.
    nonce: str | None
    #: For a lock the store took for a client: the client's address and the
    #: id of its request (the worker is the holder's user).
    client: str | None = None
    request_id: str | None = None

    def to_json(self) -> dict:
        return {
            "location": self.location,
            "lock": self.lock,
            "holder": self.holder,
            "client": self.client,
            "request_id": self.request_id,
            "age": None if self.age is None else round(self.age, 1),
            "nonce": self.nonce,
        }

    def describe(self) -> str:
        age = "unknown age" if self.age is None else f"{self.age:.0f} s old"
        taken = (
            f", for {self.client} in request {self.request_id or '?'}"
            if self.client
            else ""
        )
        return (
            f"{self.lock} lock on {self.location}, held by {self.holder}{taken} ({age})"
        )


class _Oversized:
    """A lock record over :data:`MAX_LOCK_INFO` bytes, as first seen."""

    def __init__(self, st) -> None:
        self.identity = (st.st_size, st.st_mtime, getattr(st, "st_ino", None))


class _Found:
    """A held lock and the LockDir to break it with."""

    def __init__(self, held: HeldLock, lockdir: LockDir, info) -> None:
        self.held = held
        self.lockdir = lockdir
        # LockHeldInfo, the lines of a corrupt record, or _Oversized
        self.info = info

    def force_break(self) -> None:
        if isinstance(self.info, LockHeldInfo):
            self.lockdir.force_break(self.info)
        elif isinstance(self.info, _Oversized):
            self._break_oversized()
        else:
            self.lockdir.force_break_corrupt(self.info)

    def _break_oversized(self) -> None:
        """``force_break_corrupt`` without reading the record: move ``held``
        aside as breezy does, check it is the record seen, remove it."""
        transport, path = self.lockdir.transport, self.lockdir.path
        aside = f"{path}/broken.{osutils.rand_chars(20)}.tmp"
        transport.rename(f"{path}/held", aside)
        if _Oversized(transport.stat(aside + "/info")).identity != self.info.identity:
            raise errors.LockBreakMismatch(self.lockdir, "another record", "oversized")
        transport.delete(aside + "/info")
        transport.rmdir(aside)


def _lock_transport(storage: Storage, codebase: str):
    """The codebase's jailed, writable transport (locks are in any campaign)."""
    return storage.transport(codebase, writable=True, is_campaign=layout.is_valid_name)


def _read_info(transport, lockdir: str) -> tuple[bytes | None, object, object]:
    """The record of the lock held at ``lockdir`` (None if over
    :data:`MAX_LOCK_INFO` bytes), and the stats of ``held`` and its record.

    :raises NoSuchFile: the lock is not held.
    """
    held = transport.stat(lockdir + "/held")
    st = transport.stat(lockdir + "/held/info")
    if st.st_size > MAX_LOCK_INFO:
        return None, held, st
    f = transport.get(lockdir + "/held/info")
    try:
        raw = f.read(MAX_LOCK_INFO + 1)
    finally:
        f.close()
    return (None if len(raw) > MAX_LOCK_INFO else raw), held, st


def _peek(transport, location: layout.Location, kind: str, now: float) -> _Found | None:
    """The lock of ``kind`` at ``location`` if it is held."""
    base = transport.clone("/".join(location.segments) or ".")
    lockdir = LockDir(base, _LOCK_DIRS[kind])
    try:
        raw, held_st, info_st = _read_info(base, _LOCK_DIRS[kind])
    except (NoSuchFile, errors.PathError, errors.PermissionDenied):
        return None
    dir_age = max(0.0, now - held_st.st_mtime)
    where = str(location)
    if raw is None:
        holder = "unknown (oversized lock record)"
        return _Found(
            HeldLock(where, kind, holder, dir_age, None), lockdir, _Oversized(info_st)
        )
    try:
        info = LockHeldInfo.from_info_file_bytes(raw)
    except errors.LockCorrupt as e:
        holder = "unknown (corrupt lock record)"
        return _Found(
            HeldLock(where, kind, holder, dir_age, None), lockdir, e.file_data
        )
    return _Found(_held(location, kind, info, now, dir_age), lockdir, info)


def _held(
    location: layout.Location, kind: str, info, now: float, dir_age: float
) -> HeldLock:
    get = info.get
    start = get("start_time")
    age = max(0.0, now - start) if isinstance(start, (int, float)) else dir_age
    holder = "{} on {} (process {})".format(
        get("user") or "unknown", get("hostname") or "unknown", get("pid") or "?"
    )
    fields = holder_fields(info)
    return HeldLock(
        str(location),
        kind,
        holder,
        age,
        get("nonce"),
        fields[CLIENT],
        fields[REQUEST_ID],
    )


def _branch_locations(transport, codebase: str) -> Iterator[layout.Location]:
    """Campaign and role locations with a directory on disk."""
    for campaign in layout_names(transport, "."):
        yield layout.Location(codebase, campaign)
        for role in layout_names(transport, campaign):
            if role != layout.MAIN_ROLE:
                yield layout.Location(codebase, campaign, role)


def _find(storage: Storage, location: layout.Location, now: float) -> _Found | None:
    transport = _lock_transport(storage, location.codebase)
    kind = REPOSITORY if location.campaign is None else BRANCH
    return _peek(transport, location, kind, now)


def list_locks(storage: Storage, codebase: str) -> list[HeldLock]:
    """Every lock held in ``codebase``: its repository's, then its branches'."""
    if not storage.has_repository(codebase):
        return []
    now = time.time()
    transport = _lock_transport(storage, codebase)
    found = [_peek(transport, layout.Location(codebase), REPOSITORY, now)]
    for location in _branch_locations(transport, codebase):
        found.append(_peek(transport, location, BRANCH, now))
    return [f.held for f in found if f is not None]


def is_held(storage: Storage, url: str, nonce: str | None) -> bool:
    """Whether the lock at ``url`` (a store transport URL, as breezy's lock
    hooks report it) is still held on disk by the holding ``nonce``."""
    prefix = URL_SCHEME + "///"
    if not url.startswith(prefix):
        return False
    codebase, _, path = urlutils.unescape(url[len(prefix) :]).partition("/")
    if not layout.is_valid_name(codebase) or not storage.has_repository(codebase):
        return False
    try:
        raw = _read_info(_lock_transport(storage, codebase), path)[0]
        info = LockHeldInfo.from_info_file_bytes(raw) if raw is not None else None
    except (errors.LockCorrupt, NoSuchFile, errors.PathError, errors.PermissionDenied):
        return False
    return info is not None and info.nonce == nonce


def break_lock(
    storage: Storage,
    location: layout.Location,
    *,
    nonce: str | None = None,
    older_than: float | None = None,
) -> HeldLock | None:
    """Break the lock at ``location`` (repository lock for a bare codebase).

    :param nonce: break it only if it is still this holding (as listed).
    :param older_than: break it only if it is older than this many seconds.
    :return: the lock broken, or None if none was held (or it was younger
        than ``older_than``).
    :raises LockChanged: it is held, but not with ``nonce``.
    """
    if not storage.has_repository(location.codebase):
        return None
    found = _find(storage, location, time.time())
    if found is None:
        return None
    held = found.held
    if nonce is not None and held.nonce != nonce:
        raise LockChanged(f"the {held.lock} lock on {held.location} has changed hands")
    if older_than is not None and (held.age is None or held.age < older_than):
        return None
    try:
        found.force_break()
    except errors.LockBreakMismatch:
        raise LockChanged(
            f"the {held.lock} lock on {held.location} changed hands while breaking it"
        ) from None
    return held


def break_stale_locks(
    storage: Storage,
    location: layout.Location,
    older_than: float,
    kinds: tuple[str, ...] = (BRANCH, REPOSITORY),
) -> list[HeldLock]:
    """The automatic policy: break locks a write at ``location`` would wait for.

    Those are the branch lock of ``location`` (if it names a branch) and its
    codebase's repository lock (of ``kinds``), when older than ``older_than``
    seconds.
    """
    broken = []
    candidates = []
    if REPOSITORY in kinds:
        candidates.append(layout.Location(location.codebase))
    if BRANCH in kinds and location.campaign is not None:
        candidates.append(location)
    for candidate in candidates:
        try:
            held = break_lock(storage, candidate, older_than=older_than)
        except LockChanged:
            continue
        if held is not None:
            logger.warning(
                "broke stale %s (request %s)", held.describe(), current_request_id()
            )
            broken.append(held)
    return broken


#: Verbs that start taking a lock, and the locks a stale holder of which
#: would make them wait: a new writer of the branch, or of the repository.
#: (Verbs carrying a lock token continue a holding: never break theirs.)
LOCK_TAKING_VERBS = {
    b"Branch.lock_write": (BRANCH, REPOSITORY),
    b"Repository.lock_write": (REPOSITORY,),
    b"Repository.start_write_group": (REPOSITORY,),
    b"Repository.insert_stream": (REPOSITORY,),
    b"Repository.insert_stream_1.19": (REPOSITORY,),
    b"Repository.insert_stream_locked": (REPOSITORY,),
}


def before_write(
    storage: Storage,
    location: layout.Location,
    verb: bytes,
    older_than: float | None,
) -> None:
    """The automatic policy's hook, run before each verb on a writable face.

    Does nothing unless ``older_than`` (seconds) is set; otherwise, when
    ``verb`` starts taking a lock, breaks the locks it would wait for that
    are older than that.
    """
    kinds = LOCK_TAKING_VERBS.get(verb)
    if older_than is not None and kinds:
        break_stale_locks(storage, location, older_than, kinds)
