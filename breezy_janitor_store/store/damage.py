"""Telling a damaged repository from any other failure.

After a crash on storage without syncs, a disk error or a hand edit, a
codebase's repository can name packs that are not there, or hold an index
or ``pack-names`` that does not parse.  Every request reading it then
fails.  :func:`damage_of` recognises such a failure, so the request is
answered with a clear reason (a smart error, or ``503`` naming it) instead
of an internal error, and :func:`report` logs it, once in a while per
codebase rather than on every request.  ``brz janitor-store check`` says
exactly what is wrong.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib

from breezy import errors
from breezy.bzr import index
from breezy.bzr.groupcompress import DecompressCorruption
from breezy.bzr.pack_repo import RetryAutopack, RetryWithNewPacks
from breezy.transport import NoSuchFile

__all__ = ["REPORT_INTERVAL", "DamagedRepository", "damage_of", "report"]

logger = logging.getLogger(__name__)

#: Seconds between two log lines about the same damaged codebase.
REPORT_INTERVAL = 600.0
_INDEX_ERRORS = (
    index.BadIndexFormatSignature,
    index.BadIndexData,
    index.BadIndexDuplicateKey,
    index.BadIndexKey,
    index.BadIndexOptions,
    index.BadIndexValue,
)
_REPOSITORY_PATH = "/.bzr/repository/"


def _is_pack_data(path: str) -> bool:
    """Whether (virtual) ``path`` is ``pack-names``, a pack or an index."""
    at = path.rfind(_REPOSITORY_PATH)
    if at < 0:
        return False
    rest = path[at + len(_REPOSITORY_PATH) :]
    return rest == "pack-names" or rest.startswith(("packs/", "indices/"))


class DamagedRepository(errors.BzrError):
    """A request failed on a damaged repository; ``reason`` says how."""

    _fmt = (
        "the repository of this codebase is damaged (%(reason)s); "
        "the store's operator has been told"
    )

    def __init__(self, reason: str) -> None:
        super().__init__(reason=reason)


def damage_of(e: BaseException) -> str | None:
    """What damage of a repository ``e`` (or what caused it) shows, or None."""
    seen = 0
    while e is not None and seen < 8:
        seen += 1
        if isinstance(e, DamagedRepository):
            return e.reason
        if isinstance(e, _INDEX_ERRORS):
            return "an index or pack-names does not parse"
        if isinstance(e, (DecompressCorruption, zlib.error, errors.CorruptRepository)):
            return "pack data is corrupt"
        if isinstance(e, NoSuchFile) and _is_pack_data(str(e.path)):
            return "a file its pack-names names is missing"
        if isinstance(e, (RetryWithNewPacks, RetryAutopack)):
            inner = e.exc_info[1] if e.exc_info else None
            if inner is not None and inner is not e:
                e = inner
                continue
        e = e.__cause__ or e.__context__
    return None


_reported: dict[str, float] = {}
_lock = threading.Lock()


def report(codebase: str, reason: str) -> None:
    """Log that ``codebase`` is damaged (at most once per
    :data:`REPORT_INTERVAL` for each codebase and reason)."""
    key = f"{codebase}\0{reason}"
    now = time.monotonic()
    with _lock:
        last = _reported.get(key)
        if last is not None and now - last < REPORT_INTERVAL:
            return
        _reported[key] = now
        if len(_reported) > 10000:
            _reported.clear()
    logger.error(
        "codebase %s is damaged: %s (run 'brz janitor-store check %s')",
        codebase,
        reason,
        codebase,
    )
