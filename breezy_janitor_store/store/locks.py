"""Held branch and repository locks: listing and breaking them.

A push takes the branch's write lock (``.bzr/branch/lock``) from
``Branch.lock_write`` until ``Branch.unlock``, and the codebase's shared
repository lock (``.bzr/repository/lock``) while it records new packs.  A
client killed in between leaves the lock held on disk: every later push to
that branch then fails with breezy's lock-contention error.  The locks are
physical ``LockDir`` directories, so they are read and broken here through
the codebase's :class:`~breezy_janitor_store.store.transport.StoreTransport`
(the one enforcement point for disk access), never by following paths.

* :func:`list_locks` / :func:`break_lock` — the library, used by the admin
  face's ``GET``/``POST /CODEBASE/locks``, by ``brz janitor-store
  break-lock`` and by the automatic policy;
* :func:`break_stale_locks` — the optional automatic policy
  (``--break-locks-older-than SECONDS``): before a write, locks at the
  request's location older than that are broken;
* :func:`break_expired_leases` — lock leases (``--lock-lease SECONDS``, see
  :mod:`breezy_janitor_store.smart.leases`): a lock the store took for a client
  whose holder has been silent for the lease is broken before a write that
  would wait for it.  The holder's activity is the modification time of the
  lock's record (``held/info``), which the store touches (:func:`touch`)
  while the holder uses the lock; clients cannot write inside a control
  directory, so only the store moves it.

A lock's record (``held/info``) is written by the client that takes it, so
it is read only up to :data:`MAX_LOCK_INFO` bytes: a bigger or unparsable one
is listed with an unknown holder and the age of its ``held`` directory
(its modification time), and can be broken like any other.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
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
    "break_expired_leases",
    "break_lock",
    "break_stale_locks",
    "is_held",
    "list_locks",
    "lock_url",
    "read_raw_record",
    "read_record",
    "record_nonce",
    "touch",
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
    #: Seconds since its holder last used it (for locks the store took for
    #: a client; else since its record was written).
    idle: float | None = None
    #: The lease of a lock the store took for a client, in seconds (None:
    #: no lease: a lock from outside the store, or leases are off).
    lease: float | None = None

    @property
    def leased(self) -> bool:
        """Whether the lock was taken through the store (its record names
        the request): a lease applies to it."""
        return self.request_id is not None

    @property
    def expires_in(self) -> float | None:
        """Seconds until its lease expires (0 or less: expired)."""
        if self.lease is None or self.idle is None:
            return None
        return self.lease - self.idle

    def to_json(self) -> dict:
        expires_in = self.expires_in
        expires = None
        if expires_in is not None:
            expires = time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expires_in)
            )
        return {
            "location": self.location,
            "lock": self.lock,
            "holder": self.holder,
            "client": self.client,
            "request_id": self.request_id,
            "age": _round(self.age),
            "idle": _round(self.idle),
            "lease": self.lease,
            "expires": expires,
            "expires_in": _round(expires_in),
            "nonce": self.nonce,
        }

    def describe(self) -> str:
        age = "unknown age" if self.age is None else f"{self.age:.0f} s old"
        taken = (
            f", for {self.client} in request {self.request_id or '?'}"
            if self.client
            else ""
        )
        if self.leased and self.idle is not None:
            age += f", idle {self.idle:.0f} s"
        expires_in = self.expires_in
        if expires_in is not None:
            age += (
                f", lease of {self.lease:g} s expires in {expires_in:.0f} s"
                if expires_in > 0
                else f", lease of {self.lease:g} s expired"
            )
        return (
            f"{self.lock} lock on {self.location}, held by {self.holder}{taken} ({age})"
        )


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


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


def _peek(
    transport,
    location: layout.Location,
    kind: str,
    now: float,
    lease: float | None = None,
) -> _Found | None:
    """The lock of ``kind`` at ``location`` if it is held (with ``lease``,
    the lease of a lock the store took for a client)."""
    base = transport.clone("/".join(location.segments) or ".")
    lockdir = LockDir(base, _LOCK_DIRS[kind])
    try:
        raw, held_st, info_st = _read_info(base, _LOCK_DIRS[kind])
    except (NoSuchFile, errors.PathError, errors.PermissionDenied):
        return None
    dir_age = max(0.0, now - held_st.st_mtime)
    idle = max(0.0, now - info_st.st_mtime)
    where = str(location)
    if raw is None:
        holder = "unknown (oversized lock record)"
        return _Found(
            HeldLock(where, kind, holder, dir_age, None, idle=idle),
            lockdir,
            _Oversized(info_st),
        )
    try:
        info = LockHeldInfo.from_info_file_bytes(raw)
    except errors.LockCorrupt as e:
        holder = "unknown (corrupt lock record)"
        return _Found(
            HeldLock(where, kind, holder, dir_age, None, idle=idle),
            lockdir,
            e.file_data,
        )
    held = _held(location, kind, info, now, dir_age, idle)
    if lease is not None and held.leased:
        held = dataclasses.replace(held, lease=lease)
    return _Found(held, lockdir, info)


def _held(
    location: layout.Location,
    kind: str,
    info,
    now: float,
    dir_age: float,
    idle: float,
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
        idle,
    )


def _branch_locations(transport, codebase: str) -> Iterator[layout.Location]:
    """Campaign and role locations with a directory on disk."""
    for campaign in layout_names(transport, "."):
        yield layout.Location(codebase, campaign)
        for role in layout_names(transport, campaign):
            if layout.is_role_name(role):
                yield layout.Location(codebase, campaign, role)


def _find(
    storage: Storage,
    location: layout.Location,
    now: float,
    lease: float | None = None,
) -> _Found | None:
    transport = _lock_transport(storage, location.codebase)
    kind = REPOSITORY if location.campaign is None else BRANCH
    return _peek(transport, location, kind, now, lease)


def list_locks(
    storage: Storage, codebase: str, lease: float | None = None
) -> list[HeldLock]:
    """Every lock held in ``codebase``: its repository's, then its branches'.

    :param lease: the store's lock lease (seconds), shown for the locks it
        took for clients; None: leases are off.
    """
    if not storage.has_repository(codebase):
        return []
    now = time.time()
    transport = _lock_transport(storage, codebase)
    found = [_peek(transport, layout.Location(codebase), REPOSITORY, now, lease)]
    for location in _branch_locations(transport, codebase):
        found.append(_peek(transport, location, BRANCH, now, lease))
    return [f.held for f in found if f is not None]


def lock_url(location: layout.Location) -> str:
    """The URL of the lock a write at ``location`` takes (the branch lock of
    a branch, the repository lock of a bare codebase), as breezy's lock
    hooks report it for a lock taken through the store's transport."""
    kind = REPOSITORY if location.campaign is None else BRANCH
    path = "/".join((*location.segments, _LOCK_DIRS[kind]))
    return f"{URL_SCHEME}///{urlutils.escape(location.codebase)}/{path}"


def _parse_lock_url(storage: Storage, url: str) -> tuple[str, str] | None:
    """Codebase and lock directory (virtual path in it) of a store lock URL."""
    prefix = URL_SCHEME + "///"
    if not url.startswith(prefix):
        return None
    codebase, _, path = urlutils.unescape(url[len(prefix) :]).partition("/")
    if not layout.is_valid_name(codebase) or not storage.has_repository(codebase):
        return None
    return codebase, path


def read_raw_record(storage: Storage, url: str) -> bytes | None:
    """The record of the lock at ``url`` (a store transport URL, as breezy's
    lock hooks report it), as on disk; None when it is not held, or not
    readable (or over :data:`MAX_LOCK_INFO` bytes)."""
    parsed = _parse_lock_url(storage, url)
    if parsed is None:
        return None
    codebase, path = parsed
    try:
        return _read_info(_lock_transport(storage, codebase), path)[0]
    except (NoSuchFile, errors.PathError, errors.PermissionDenied):
        return None


#: The nonce line of a record breezy wrote (YAML quotes a nonce of digits).
_NONCE_LINE = re.compile(rb"^nonce: '?([0-9a-z]+)'?$", re.MULTILINE)


def record_nonce(raw: bytes | None) -> bytes | None:
    """The nonce of lock record ``raw`` (without parsing its YAML, which
    costs a thousand times more), or None."""
    m = _NONCE_LINE.search(raw) if raw is not None else None
    return m.group(1) if m is not None else None


def read_record(storage: Storage, url: str) -> LockHeldInfo | None:
    """The record of the lock at ``url``, parsed; None when it is not held,
    or not readable."""
    raw = read_raw_record(storage, url)
    try:
        return LockHeldInfo.from_info_file_bytes(raw) if raw is not None else None
    except errors.LockCorrupt:
        return None


def is_held(storage: Storage, url: str, nonce: bytes | str | None) -> bool:
    """Whether the lock at ``url`` (a store transport URL, as breezy's lock
    hooks report it) is still held on disk by the holding ``nonce``."""
    if isinstance(nonce, str):
        nonce = nonce.encode("ascii", "replace")
    held = record_nonce(read_raw_record(storage, url))
    return held is not None and held == nonce


def touch(storage: Storage, url: str, nonce: bytes) -> bool:
    """Renew the lease of the lock at ``url`` if it is still the holding
    ``nonce``: set its record's modification time to now.

    :return: whether it was renewed.
    """
    parsed = _parse_lock_url(storage, url)
    if parsed is None or not is_held(storage, url, nonce):
        return False
    codebase, path = parsed
    # (the record was just read through the jail, which refuses symbolic
    # links out of the codebase; the record itself is never followed)
    disk = layout.to_disk(tuple(p for p in path.split("/") if p))
    record = os.path.join(storage.path(codebase), *disk, "held", "info")
    try:
        os.utime(record, follow_symlinks=False)
    except OSError:  # released or broken meanwhile
        return False
    return True


def break_lock(
    storage: Storage,
    location: layout.Location,
    *,
    nonce: str | None = None,
    older_than: float | None = None,
    lease: float | None = None,
) -> HeldLock | None:
    """Break the lock at ``location`` (repository lock for a bare codebase).

    :param nonce: break it only if it is still this holding (as listed).
    :param older_than: break it only if it is older than this many seconds.
    :param lease: break it only if the store took it for a client and its
        holder has been silent for longer than this many seconds.
    :return: the lock broken, or None if none was held (or it was younger
        than ``older_than``, or its lease has not expired).
    :raises LockChanged: it is held, but not with ``nonce``.
    """
    if not storage.has_repository(location.codebase):
        return None
    found = _find(storage, location, time.time(), lease)
    if found is None:
        return None
    held = found.held
    if nonce is not None and held.nonce != nonce:
        raise LockChanged(f"the {held.lock} lock on {held.location} has changed hands")
    if older_than is not None and (held.age is None or held.age < older_than):
        return None
    if lease is not None and (held.expires_in is None or held.expires_in > 0):
        return None
    try:
        found.force_break()
    except errors.LockBreakMismatch:
        raise LockChanged(
            f"the {held.lock} lock on {held.location} changed hands while breaking it"
        ) from None
    return held


def _candidates(
    location: layout.Location, kinds: tuple[str, ...]
) -> list[layout.Location]:
    """Where the locks of ``kinds`` a write at ``location`` waits for are."""
    candidates = []
    if REPOSITORY in kinds:
        candidates.append(layout.Location(location.codebase))
    if BRANCH in kinds and location.campaign is not None:
        candidates.append(location)
    return candidates


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
    for candidate in _candidates(location, kinds):
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


def break_expired_leases(
    storage: Storage,
    location: layout.Location,
    lease: float,
    kinds: tuple[str, ...] = (BRANCH, REPOSITORY),
) -> list[HeldLock]:
    """Lock leases: break the locks a write at ``location`` would wait for
    (as :func:`break_stale_locks` finds them) that the store took for a
    client who has not used them for ``lease`` seconds; log who held them."""
    broken = []
    for candidate in _candidates(location, kinds):
        try:
            held = break_lock(storage, candidate, lease=lease)
        except LockChanged:
            continue
        if held is not None:
            logger.warning(
                "broke the expired lease of the %s (request %s)",
                held.describe(),
                current_request_id(),
            )
            broken.append(held)
    return broken


#: Verbs that start taking a lock, and the locks a stale holder of which
#: would make them wait: a new writer of the branch, or of the repository.
#: (A holder's own requests renew its lease before this policy runs.)
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
    lease: float | None = None,
) -> None:
    """The automatic policies' hook, run before each verb on a writable face.

    When ``verb`` starts taking a lock, breaks the locks it would wait for
    that are older than ``older_than`` seconds (if set), and those whose
    lease of ``lease`` seconds has expired (if set).
    """
    kinds = LOCK_TAKING_VERBS.get(verb)
    if not kinds:
        return
    if older_than is not None:
        break_stale_locks(storage, location, older_than, kinds)
    if lease is not None:
        break_expired_leases(storage, location, lease, kinds)
