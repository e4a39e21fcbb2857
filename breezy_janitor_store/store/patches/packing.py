"""One repacking at a time per shared repository, across processes and hosts.

Every push ends by committing a write group, and breezy then *autopacks*
the repository once its pack count passes a threshold: it combines old packs
into a new one and moves the old ones to ``obsolete_packs``; a push of a
``2a`` repository then also asks for its new packs to be recompressed
(``Repository.pack`` with a hint).  Two of these running on one repository
at once race: breezy's packer reads the packs it combines through indices
without a reload hook, so when the other one has just obsoleted them it fails
with ``NoSuchFile`` and the push fails.  Several store processes (gunicorn
workers, hosts sharing the storage over NFS) serve one codebase at once, so:

* each repacking of a store repository takes the *pack lock*, a breezy
  ``LockDir`` at ``.bzr/repository/pack-lock`` taken through the request's
  transport (the layout allows it; a rename that exactly one contender wins,
  on every filesystem including NFS), and re-reads ``pack-names`` inside it
  so the packs it combines are the current ones;
* an autopack, or a hinted pack after a push, that finds the lock held is
  skipped: the holder is packing the same repository, the new pack is
  recorded in ``pack-names`` as usual, and the next push packs it.  A full
  ``pack`` waits for the lock as long as breezy waits for any lock (30 s)
  and then fails with lock contention;
* a pack lock whose holder is known dead (same host, no such process) is
  taken over by breezy's ``LockDir``; one held longer than
  :data:`STALE_AFTER` (a host that died) is broken and logged.

breezy offers no hook around autopacking (the pack collection's packer is
called directly from ``commit_write_group``), so :func:`install` wraps
``RepositoryPackCollection.autopack`` and ``pack``; repositories outside the
store keep breezy's behaviour.

breezy names replaced (check them on a breezy upgrade):
``RepositoryPackCollection.autopack`` and ``.pack`` (by :func:`install`);
no private name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from breezy.bzr.pack_repo import RepositoryPackCollection
from breezy.errors import LockBreakMismatch, LockContention
from breezy.lockdir import LockDir

from ..transport import URL_SCHEME

__all__ = ["PACK_LOCK", "STALE_AFTER", "install", "pack_lock"]

logger = logging.getLogger(__name__)

#: The pack lock, relative to the repository's control directory.
PACK_LOCK = "pack-lock"
#: Seconds after which a held pack lock is taken to be left by a dead host.
STALE_AFTER = 6 * 3600
#: Seconds a full ``pack`` waits for the pack lock (breezy's lock wait).
LOCK_WAIT = 30.0

_breezy_autopack = RepositoryPackCollection.autopack
_breezy_pack = RepositoryPackCollection.pack


@contextmanager
def pack_lock(repository_transport, wait: float | None = None) -> Iterator[bool]:
    """Hold the pack lock of the repository at ``repository_transport``.

    Yields whether it is held: False when another holder has it and
    ``wait`` is None.  With ``wait`` (seconds), waits that long and then
    raises ``LockContention``.
    """
    lock = LockDir(repository_transport, PACK_LOCK)
    try:
        if wait is None:
            lock.attempt_lock()
        else:
            lock.wait_lock(timeout=wait)
    except LockContention:
        try:
            if not _break_if_stale(lock):
                raise
            lock.attempt_lock()  # another contender may win it meanwhile
        except (LockContention, LockBreakMismatch):
            if wait is not None:
                raise
            yield False
            return
    try:
        yield True
    finally:
        lock.unlock()


def _break_if_stale(lock: LockDir) -> bool:
    """Break ``lock`` if it was taken more than :data:`STALE_AFTER` ago."""
    info = lock.peek()
    start = None if info is None else info.get("start_time")
    if start is None or time.time() - float(start) < STALE_AFTER:
        return False
    logger.warning("breaking a stale pack lock of %s: %s", lock.transport.base, info)
    lock.force_break(info)
    return True


def _is_store_repository(collection: RepositoryPackCollection) -> bool:
    return collection.transport.base.startswith(URL_SCHEME)


def _autopack_due(collection: RepositoryPackCollection) -> bool:
    """Whether breezy would autopack ``collection`` as this process sees it:
    it keeps at most as many packs as the digits of its revision count add
    up to (at least one)."""
    revisions = collection.revision_index.combined_index.key_count()
    allowed = sum(int(digit) for digit in str(revisions)) or 1
    return len(collection.names()) > allowed


def _autopack(self: RepositoryPackCollection):
    if not _is_store_repository(self):
        return _breezy_autopack(self)
    if not _autopack_due(self):
        return None  # as breezy's: the caller saves pack-names
    with pack_lock(self.transport) as held:
        if not held:
            return None  # the holder packs; pack-names is saved by the caller
        self.reload_pack_names()
        return _breezy_autopack(self)


def _pack(self: RepositoryPackCollection, hint=None, clean_obsolete_packs=False):
    if not _is_store_repository(self):
        return _breezy_pack(self, hint, clean_obsolete_packs)
    wait = None if hint is not None else LOCK_WAIT
    with pack_lock(self.transport, wait=wait) as held:
        if not held:
            return None
        self.reload_pack_names()
        return _breezy_pack(self, hint, clean_obsolete_packs)


def install() -> None:
    """Serialise repacking of the store's repositories (idempotent)."""
    RepositoryPackCollection.autopack = _autopack
    RepositoryPackCollection.pack = _pack
