"""Making writes durable: ``fsync`` of files and of the directories naming them.

A write is on stable storage once the file's content is synced *and* the
directory that received its name is synced after the name arrived (a
rename or create is a change of the directory, not of the file).  The
store's transport (:class:`breezy_janitor_store.store.transport.StoreTransport`)
calls these for every file and name a writer changes, so a request is only
acknowledged once what it wrote would survive a power loss.

Each sync is logged at debug level on the ``breezy_janitor_store.store.durable``
logger (``sync file PATH`` / ``sync dir PATH``), which is how the sync trace
of a push is read.
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = [
    "SYNC_VARIABLE",
    "PendingSyncs",
    "sync_directory",
    "sync_file",
    "sync_from_environment",
    "sync_tree",
]

logger = logging.getLogger(__name__)

#: Environment variable turning syncs off (``0``, ``false``, ``no``, ``off``).
SYNC_VARIABLE = "BZR_STORE_SYNC"
_OFF = frozenset({"0", "false", "no", "off"})


def sync_from_environment(default: bool = True) -> bool:
    """Whether syncs are on, as :data:`SYNC_VARIABLE` says (unset: ``default``)."""
    raw = os.environ.get(SYNC_VARIABLE, "").strip().lower()
    if not raw:
        return default
    return raw not in _OFF


def sync_file(path: str) -> None:
    """Sync the content of the file at ``path`` (opened read-only: Linux
    syncs a file's data through any descriptor of it)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    logger.debug("sync file %s", path)


def sync_directory(path: str) -> None:
    """Sync directory ``path``: the names created in it, or renamed into it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    logger.debug("sync dir %s", path)


def sync_tree(path: str) -> None:
    """Sync every file and directory below ``path`` (and ``path``), the
    deepest first, so the tree is whole once ``path``'s parent names it."""
    for top, dirs, files in os.walk(path, topdown=False):
        for name in files:
            sync_file(os.path.join(top, name))
        sync_directory(top)


class PendingSyncs:
    """The directory syncs one request owes, shared by its transports.

    File contents are synced as each file is written.  A directory that
    received a name is synced at once, or, while :attr:`deferred`, at the
    next :meth:`flush` (one sync per distinct directory), which the request
    flow calls before the response acknowledging the request is sent, and
    the transport before a write that must follow them (a ``pack-names``
    naming new packs, packs retired once ``pack-names`` no longer names
    them).  A flush syncs the deepest directories first: a new directory's
    names are durable before the name of the directory itself.

    :param enabled: False for throw-away stores: nothing is synced.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.deferred = False
        self._directories: set[str] = set()
        self._lock = threading.Lock()  # an insert runs in a thread of its own

    def file(self, path: str) -> None:
        """Sync the file at ``path`` now."""
        if self.enabled:
            sync_file(path)

    def directory(self, path: str) -> None:
        """Directory ``path`` received a name: sync it now or at the flush."""
        if not self.enabled:
            return
        if not self.deferred:
            sync_directory(path)
            return
        with self._lock:
            self._directories.add(path)

    def flush(self) -> None:
        """Sync the directories owed, the deepest first."""
        if not self.enabled:
            return
        with self._lock:
            owed = sorted(self._directories, key=lambda p: (-p.count(os.sep), p))
            self._directories.clear()
        for done, path in enumerate(owed):
            try:
                sync_directory(path)
            except FileNotFoundError:
                continue  # removed since (an aborted write group's, say)
            except BaseException:
                with self._lock:  # still owed, and those after it
                    self._directories.update(owed[done:])
                raise
