"""HTTP validators of the public face's pages.

Every page built from what it shows has an ``ETag`` derived from it (the
revision ids it shows, the tip, the tags, the page asked for, and the
store's version, so a new release never serves an old page); a request
whose ``If-None-Match`` holds it is answered ``304`` before the page is
made.  Pages addressed by a revision id (trees, files, raw bytes,
annotations, histories of a file, tarballs, revision pages) cannot change
(a revision, once in a repository, is never rewritten) and are sent with
:data:`IMMUTABLE`; pages of branches are revalidated (:data:`REVALIDATE`),
so none is stale after a push.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .. import __version__
from ..http import Request

__all__ = ["IMMUTABLE", "REVALIDATE", "etag", "not_modified"]

IMMUTABLE = ("Cache-Control", "public, max-age=31536000, immutable")
REVALIDATE = ("Cache-Control", "no-cache")


def etag(*parts: object) -> str:
    """A strong validator of ``parts`` (bytes or text)."""
    digest = hashlib.sha256(__version__.encode())
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode("utf-8", "replace")
        digest.update(len(data).to_bytes(8, "big") + data)
    return f'"{digest.hexdigest()[:40]}"'


def not_modified(
    req: Request, tag: str, cache: tuple[str, str] = IMMUTABLE
) -> list[bytes] | None:
    """The ``304`` answer when the client holds ``tag``, else None."""
    held = req.environ.get("HTTP_IF_NONE_MATCH", "")
    if not held:
        return None
    tags = {t.strip().removeprefix("W/") for t in held.split(",")}
    if tag in tags or "*" in tags:
        req.respond(304, None, [("ETag", tag), cache])
        return [b""]
    return None


def headers(tag: str, cache: tuple[str, str] = IMMUTABLE) -> list[tuple[str, str]]:
    """The validator and caching headers of a page (which has a JSON twin:
    its representation depends on ``Accept``)."""
    return [("ETag", tag), cache, ("Vary", "Accept")]


def pairs(items: Iterable[tuple[object, object]]) -> list[object]:
    """``items`` flattened, for :func:`etag`."""
    return [x for item in items for x in item]
