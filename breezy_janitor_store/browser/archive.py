"""A revision's tree as a ``.tar.gz``, streamed.

``GET /bzr/CODEBASE/+tarball?rev=REVID`` sends breezy's own tar.gz export
of the tree as it is made: one file's text at a time is in memory, never
the whole archive.  The download holds a reader's slot of the stream
budget from before its first byte to its last (503 with ``Retry-After``
when none is free).  Every entry carries the revision's date; nested trees
are not followed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from breezy import archive

from .. import history
from ..http import Request
from . import blob, caching, common

if TYPE_CHECKING:
    from ..app import StoreApp

__all__ = ["tarball"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def tarball(app: StoreApp, req: Request, codebase: str) -> common.Released:
    repo = common.repository(app, codebase)
    revid = common.revision_arg(req)
    tag = caching.etag("tarball", codebase, revid)
    with repo.lock_read():
        common.revision_tree(repo, revid)  # 404 unless present
    cached = caching.not_modified(req, tag)
    if cached is not None:
        return cached
    slot = common.heavy_slot(app)
    repo.lock_read()
    try:
        tree = common.revision_tree(repo, revid)
        timestamp = _timestamp(repo, revid)
    except BaseException:
        repo.unlock()
        slot.release()
        raise
    root = f"{codebase}-{_UNSAFE.sub('_', revid.decode('utf-8', 'replace'))[:80]}"
    name = root + ".tar.gz"
    req.respond(
        200,
        "application/gzip",
        [
            ("Content-Disposition", blob.content_disposition("attachment", name)),
            *blob.RAW_HEADERS,
            *caching.headers(tag),
        ],
    )
    chunks = archive.create_archive(
        "tgz", tree, name, root=root, force_mtime=timestamp, recurse_nested=False
    )

    def release() -> None:
        try:
            slot.release()
        finally:
            repo.unlock()

    return common.Released((c for c in chunks if c), release)


def _timestamp(repo, revid: bytes) -> float:
    """The revision's date (0 when its text cannot be read)."""
    (rev,) = history.read_revisions(repo, [revid])
    try:
        when = float(rev.timestamp) if rev is not None else 0.0
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return when if 0 <= when < 2**32 else 0.0  # what gzip and tar can hold
