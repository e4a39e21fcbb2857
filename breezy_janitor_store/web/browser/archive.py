"""A revision's tree as a ``.tar.gz``, streamed.

``GET /bzr/CODEBASE/+tarball?rev=REVID`` sends the tree as a tar.gz made
as it is sent (:func:`tgz_stream`): a large file's text is read from its
pack in pieces (:mod:`...store.textstream`), never the whole archive nor
a whole large file.  The download holds a reader's slot of the stream
budget from before its first byte to its last (503 with ``Retry-After``
when none is free).  Every entry carries the revision's date; nested trees
are not followed.
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ...store import history, textstream
from ..http import Request
from . import blob, caching, common

if TYPE_CHECKING:
    from ..face import Face

__all__ = ["tarball"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def tarball(face: Face, req: Request, codebase: str) -> common.Released:
    repo = common.repository(face, codebase)
    revid = common.revision_arg(req)
    tag = caching.etag("tarball", codebase, revid, *common.scope(face, repo))
    with repo.lock_read():
        common.revision_tree(repo, revid)  # 404 unless present
    cached = caching.not_modified(req, tag)
    if cached is not None:
        return cached
    slot = common.heavy_slot(face)
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
    chunks = tgz_stream(repo, tree, root, timestamp)

    def release() -> None:
        try:
            slot.release()
        finally:
            repo.unlock()

    return common.Released((c for c in chunks if c), release)


#: Bytes of compressed output gathered before they are sent.
SEND_BYTES = 64 * 1024
#: Bytes of a file's text handed to the compressor at a time.
FEED_BYTES = 1024 * 1024


def tgz_stream(repo, tree, root: str, mtime: float) -> Iterator[bytes]:
    """The tree (of ``repo``) as a gzip-compressed tar archive below
    ``root/``, made as it is sent: each file's text goes from the
    repository to the compressor in pieces (:mod:`...store.textstream`),
    with no copy of the archive or of a large file in memory (breezy's own
    export holds several)."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip stream
    out: list[bytes] = []
    size = 0
    written = 0

    def put(data: bytes):
        nonlocal size, written
        written += len(data)
        for start in range(0, len(data), FEED_BYTES):
            piece = deflate.compress(data[start : start + FEED_BYTES])
            if piece:
                out.append(piece)
                size += len(piece)

    def ready() -> bool:
        return size >= SEND_BYTES

    def take() -> bytes:
        nonlocal size
        chunk = b"".join(out)
        out.clear()
        size = 0
        return chunk

    with tree.lock_read():
        for path, entry in tree.iter_entries_by_dir():
            if not path:
                continue
            info = tarfile.TarInfo(f"{root}/{path}")
            info.mtime = int(mtime)
            if entry.kind == "file":
                info.type = tarfile.REGTYPE
                info.mode = 0o755 if entry.executable else 0o644
                info.size = tree.get_file_size(path)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.mode = 0o777
                info.linkname = entry.symlink_target or ""
            else:  # a directory, or a nested tree (not followed)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.name += "/"
            put(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            if entry.kind == "file":
                sent = 0
                for piece in textstream.text_chunks(repo, tree, path, FEED_BYTES):
                    put(piece)
                    sent += len(piece)
                    if ready():
                        yield take()
                if sent != info.size:
                    raise ValueError(f"{path}: {sent} bytes, not {info.size}")
                if sent % tarfile.BLOCKSIZE:
                    put(NUL * (tarfile.BLOCKSIZE - sent % tarfile.BLOCKSIZE))
            if ready():
                yield take()
    put(NUL * (2 * tarfile.BLOCKSIZE))
    if written % tarfile.RECORDSIZE:
        put(NUL * (tarfile.RECORDSIZE - written % tarfile.RECORDSIZE))
    out.append(deflate.flush())
    yield take()


NUL = b"\0"


def _timestamp(repo, revid: bytes) -> float:
    """The revision's date (0 when its text cannot be read)."""
    (rev,) = history.read_revisions(repo, [revid])
    try:
        when = float(rev.timestamp) if rev is not None else 0.0
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return when if 0 <= when < 2**32 else 0.0  # what gzip and tar can hold
