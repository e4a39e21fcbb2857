"""JSON twins of pages, and what scopes a page's ETag (no view imports:
:mod:`breezy_janitor_store.web.browse` uses these too)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from breezy import errors

from ..http import Request, negotiate

if TYPE_CHECKING:
    from breezy.repository import Repository

    from ..face import Face

__all__ = ["json_response", "revid_text", "scope", "wants_json"]


def scope(face: Face, repo: Repository | None) -> tuple:
    """What a page's ETag holds besides what it shows: the store it comes
    from and the identity of the codebase's repository directory (a
    codebase removed and made again is another one)."""
    ident: tuple = ()
    if repo is not None:
        try:
            st = repo.control_transport.stat(".")
            ident = (st.st_dev, st.st_ino)
        except (errors.PathError, errors.TransportError, OSError, AttributeError):
            ident = ()
    return (face.storage.directory, *ident)


def wants_json(req: Request) -> bool:
    """Whether the client prefers the page's JSON twin (``Accept``)."""
    offers = ("text/html", "application/json")
    return negotiate(req.environ.get("HTTP_ACCEPT"), offers) == "application/json"


def revid_text(revid: bytes | None) -> str | None:
    return None if revid is None else revid.decode("utf-8", "replace")


def json_response(
    req: Request,
    value: object,
    headers: Iterable[tuple[str, str]] = (),
    keep: bool = True,
) -> list[bytes]:
    """``value`` as the JSON twin of a page (with the page's validators),
    kept in the page cache unless ``keep`` is false (it shows something
    cut short by time)."""
    from . import caching

    body = json.dumps(value, ensure_ascii=True, sort_keys=True).encode("ascii")
    all_headers = [
        ("Content-Length", str(len(body))),
        ("Content-Type", "application/json"),
        ("X-Content-Type-Options", "nosniff"),
        *headers,
    ]
    req.respond(200, None, all_headers)
    if keep:
        caching.PAGES.put(req, all_headers, body)
    return [body]
