"""One autopack at a time per shared repository, in this process.

Every push ends by committing a write group, and breezy then *autopacks*
the repository once its pack count passes a threshold: it combines old packs
into a new one and moves the old ones to ``obsolete_packs``.  Two pushes
into one codebase that autopack at the same time race: breezy's packer reads
the packs it combines through indices without a reload hook, so when the
other autopack has just obsoleted them it fails with ``NoSuchFile`` and the
push fails.  The store serves many campaigns of one codebase at once, so it
takes a per-repository lock around autopacking, and re-reads ``pack-names``
inside it so the pack list it combines is the current one.  (Processes do
not share the lock; across processes breezy's own behaviour remains.)
"""

from __future__ import annotations

import threading

from breezy.bzr.pack_repo import RepositoryPackCollection

from .transport import URL_SCHEME

__all__ = ["install"]

_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()
_breezy_autopack = RepositoryPackCollection.autopack


def _lock_for(url: str) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(url, threading.Lock())


def _autopack(self: RepositoryPackCollection):
    url = self.transport.base
    if not url.startswith(URL_SCHEME):  # not a repository of the store
        return _breezy_autopack(self)
    with _lock_for(url):
        self.reload_pack_names()
        return _breezy_autopack(self)


def install() -> None:
    """Serialise autopacking of the store's repositories (idempotent)."""
    RepositoryPackCollection.autopack = _autopack
