"""HTTP validators of the store's answers: ``ETag``, ``304`` and caching.

Every answer to a ``GET`` that shows something carries a strong ``ETag``
derived from what it shows, and a request whose ``If-None-Match`` holds it
is answered ``304 Not Modified`` with no body:

* an answer made whole before it is sent (codebase lists, directory
  listings) by its bytes (:func:`buffered`), revalidated every time
  (:data:`REVALIDATE`), so it is never stale;
* an answer addressed by revision ids (``diff``, ``revision-info``), by
  those ids and the settings that shape it (:func:`tag`), decided before
  any of it is made; such an answer can never change
  (:data:`IMMUTABLE`: a revision, once stored, is never rewritten; a diff
  cut by its deadline ends the connection, so no cache keeps it whole),
  unless it shows a ghost (``revision-info`` whose line stops at a
  revision not stored: revalidated, under another tag);
* a ``.bzr`` file (:func:`file_tag`) by its identity, size and time of
  change; a pack or index, named by its content's digest, is
  :data:`IMMUTABLE`, the rest revalidated.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources

import breezy

from .http import Request

__all__ = [
    "IMMUTABLE",
    "REVALIDATE",
    "buffered",
    "file_tag",
    "holds",
    "not_modified",
    "seeded_tag",
    "tag",
]

IMMUTABLE = ("Cache-Control", "public, max-age=31536000, immutable")
REVALIDATE = ("Cache-Control", "no-cache")



def _code_digest() -> bytes:
    """Digest of breezy's version and the modules that shape the answers
    tagged here: an upgrade changing how one is made changes its tag."""
    package = resources.files("breezy_janitor_store")
    digest = hashlib.sha256(breezy.version_string.encode())
    for module in ("store/diff.py", "store/history.py", "web/api.py"):
        digest.update(package.joinpath(module).read_bytes())
    return digest.digest()


#: Every computed tag starts from it.
_CODE = _code_digest()


def tag(*parts: object) -> str:
    """A strong validator of ``parts`` (bytes or text, in order)."""
    return seeded_tag(_CODE, *parts)


def seeded_tag(seed: bytes, *parts: object) -> str:
    """A strong validator of ``parts`` after ``seed`` (a digest of the code
    that makes the answer)."""
    digest = hashlib.sha256(seed)
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode("utf-8", "replace")
        digest.update(len(data).to_bytes(8, "big") + data)
    return f'"{digest.hexdigest()[:40]}"'


def file_tag(status: os.stat_result) -> str:
    """The validator of a file from its ``stat``: which file, its size and
    when it last changed."""
    return tag("file", status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def holds(req: Request, etag: str) -> bool:
    """Whether the request's ``If-None-Match`` names ``etag`` (or ``*``);
    weak comparison, as RFC 9110 asks of ``If-None-Match``."""
    held = req.environ.get("HTTP_IF_NONE_MATCH", "")
    if not held:
        return False
    tags = {t.strip().removeprefix("W/") for t in held.split(",")}
    return etag in tags or "*" in tags


def not_modified(
    req: Request, etag: str, cache: tuple[str, str] = IMMUTABLE
) -> list[bytes] | None:
    """The ``304`` answer when the client holds ``etag``, else None."""
    if not holds(req, etag):
        return None
    req.respond(304, None, [("ETag", etag), cache])
    return [b""]


def buffered(
    req: Request,
    content_type: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    cache: tuple[str, str] = REVALIDATE,
) -> list[bytes]:
    """Answer ``body`` (``200``) with an ``ETag`` of its bytes, or ``304``
    when the client holds that."""
    etag = tag("body", content_type, body)
    found = not_modified(req, etag, cache)
    if found is not None:
        return found
    req.respond(
        200,
        content_type,
        [("Content-Length", str(len(body))), *(headers or []), ("ETag", etag), cache],
    )
    return [body]
