"""Garbage in the shared repositories: abandoned uploads and obsolete packs.

A pack repository leaves two kinds of files behind that nothing reads again:

* ``.bzr/repository/upload/``: a write group writes its new pack (and, when
  suspended, its indices) here and renames the pack into ``packs/`` when it
  commits.  The store deletes them itself when a write group is aborted (a
  client that disconnects or is killed); they stay behind when the process
  running the write group dies (a store killed or restarted mid-push, a host
  that crashes) or when a client never resumes a suspended write group.
* ``.bzr/repository/obsolete_packs/``: packs an autopack replaced; breezy
  empties the directory at the next autopack only.

:func:`collect` removes both once they are old enough, and never the files
of a write group in progress.  Whether a write group is live cannot be read
from the files, and on a shared filesystem the writer may be another host,
so age decides:

* a write group in progress writes its pack as its data arrives (the
  blocks of a push are written as they are received), the store drops a
  connection that makes no progress for 120 s and aborts its write group,
  and a suspended write group is resumed by the same push moments later.
  So an upload whose files have all been unmodified (``mtime``) for a long
  time has no writer: only a push slower than a few MiB per
  :data:`UPLOAD_MIN_AGE` could be mistaken for one, and uploads modified
  more recently than that are kept whatever ``older_than`` says;
* an obsolete pack's age counts from its move into ``obsolete_packs``
  (the rename updates its ``ctime``), so a reader that listed the pack just
  before has long finished with it.

Each codebase is collected under its pack lock (see
:mod:`breezy_janitor_store.store.patches.packing`), so collections by several processes or
hosts and an autopack never overlap; a codebase whose pack lock is held is
skipped and reported.  Files are removed through the codebase's
:class:`~breezy_janitor_store.store.transport.StoreTransport`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from breezy import errors
from breezy.transport import NoSuchFile

from . import layout
from .patches.packing import pack_lock
from .storage import Storage

__all__ = [
    "DEFAULT_OLDER_THAN",
    "UPLOAD_MIN_AGE",
    "Collector",
    "GcReport",
    "collect",
]

logger = logging.getLogger(__name__)

#: Default age (seconds) after which garbage is removed.
DEFAULT_OLDER_THAN = 24 * 3600
#: Uploads younger than this (seconds) are kept whatever the age asked for.
UPLOAD_MIN_AGE = 3600
UPLOAD = "upload"
OBSOLETE = "obsolete_packs"


@dataclass
class Removed:
    """Files removed from one codebase's ``upload`` or ``obsolete_packs``."""

    codebase: str
    directory: str
    files: int = 0
    bytes: int = 0


@dataclass
class GcReport:
    """What :func:`collect` removed, kept and skipped."""

    removed: list[Removed] = field(default_factory=list)
    #: Upload packs kept because they may belong to a write group in progress.
    kept_uploads: int = 0
    #: Codebases skipped because their pack lock was held.
    busy: list[str] = field(default_factory=list)
    #: Codebases whose collection stopped, with why (e.g. a planted symlink).
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removed)

    @property
    def files(self) -> int:
        return sum(r.files for r in self.removed)

    def lines(self) -> list[str]:
        """One line per codebase and directory, then the total."""
        out = [
            f"{r.codebase}: {r.files} files ({_size(r.bytes)}) from {r.directory}/"
            for r in self.removed
        ]
        out += [f"{c}: skipped, its pack lock is held" for c in self.busy]
        out += [f"{c}: not collected: {why}" for c, why in self.failed]
        if self.kept_uploads:
            out.append(
                f"kept {self.kept_uploads} recent uploads (possibly in progress)"
            )
        out.append(f"freed {_size(self.bytes)} in {self.files} files")
        return out


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def collect(
    storage: Storage,
    codebases: Iterable[str] | None = None,
    *,
    older_than: float = DEFAULT_OLDER_THAN,
    now: float | None = None,
) -> GcReport:
    """Remove garbage older than ``older_than`` seconds from ``codebases``
    (default: every codebase of ``storage``).

    A codebase is first looked at without its pack lock; only one with
    something to remove is locked and looked at again, so a periodic
    collection of many clean codebases writes nothing.
    """
    now = time.time() if now is None else now
    cutoffs = {
        UPLOAD: now - max(older_than, UPLOAD_MIN_AGE),
        OBSOLETE: now - older_than,
    }
    report = GcReport()
    for codebase in storage.codebases() if codebases is None else codebases:
        if not storage.has_repository(codebase):
            continue
        try:
            _collect_codebase(storage, codebase, cutoffs, report)
        except (errors.PathError, errors.TransportError, OSError) as e:
            # (a symlink planted in the repository, say: the jail refuses it)
            logger.warning("gc of %s stopped: %s", codebase, e)
            report.failed.append((codebase, str(e)))
    return report


def _collect_codebase(
    storage: Storage, codebase: str, cutoffs: dict[str, float], report: GcReport
) -> None:
    """:func:`collect` for one codebase, adding to ``report``."""
    repository = storage.transport(
        codebase, writable=True, is_campaign=layout.is_valid_name
    ).clone(layout.CONTROL + "/repository")
    found = {d: _scan(repository, d, cutoff) for d, cutoff in cutoffs.items()}
    if not any(dead for dead, _ in found.values()):
        report.kept_uploads += found[UPLOAD][1]
        return
    with pack_lock(repository) as held:
        if not held:
            report.busy.append(codebase)
            return
        for directory, cutoff in cutoffs.items():
            dead, kept = _scan(repository, directory, cutoff)
            removed = _remove(repository, codebase, directory, dead)
            if removed.files:
                report.removed.append(removed)
            if directory == UPLOAD:
                report.kept_uploads += kept


def _scan(
    repository, directory: str, cutoff: float
) -> tuple[list[tuple[str, int]], int]:
    """Files of the packs in ``directory`` that are all older than
    ``cutoff`` (uploads: last modified; obsolete packs: moved there), with
    their sizes; and how many packs are younger."""
    try:
        names = repository.list_dir(directory)
    except NoSuchFile:
        return [], 0
    packs: dict[str, list[tuple[str, int, float]]] = {}
    for name in names:
        try:
            st = repository.stat(f"{directory}/{name}")
        except NoSuchFile:
            continue
        changed = st.st_ctime if directory == OBSOLETE else st.st_mtime
        packs.setdefault(name.split(".", 1)[0], []).append((name, st.st_size, changed))
    dead: list[tuple[str, int]] = []
    kept = 0
    for files in packs.values():
        if any(changed >= cutoff for _, _, changed in files):
            kept += 1
        else:
            dead += [(name, size) for name, size, _ in files]
    return dead, kept


def _remove(
    repository, codebase: str, directory: str, files: list[tuple[str, int]]
) -> Removed:
    removed = Removed(codebase, directory)
    for name, size in files:
        try:
            repository.delete(f"{directory}/{name}")
        except NoSuchFile:
            continue  # removed meanwhile
        except errors.PathError as e:
            logger.warning("cannot remove %s/%s: %s", codebase, name, e)
            continue
        removed.files += 1
        removed.bytes += size
    return removed


class Collector:
    """Runs :func:`collect` on every codebase every ``interval`` seconds, on
    a daemon thread, logging what it freed."""

    def __init__(
        self,
        storage: Storage,
        interval: float,
        older_than: float = DEFAULT_OLDER_THAN,
    ) -> None:
        self.storage = storage
        self.interval = interval
        self.older_than = older_than
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="janitor-store-gc", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                report = collect(self.storage, older_than=self.older_than)
            except Exception:
                logger.exception("garbage collection failed")
                continue
            if report.files or report.busy:
                logger.info("gc: %s", "; ".join(report.lines()))
