"""What the browser's views read of a request and of the application.

Each view reads the application only through these helpers (the storage,
the campaigns and codebase policy through :func:`repository`, the stream
budget through :func:`heavy_slot`, the public URL and prefix through
:func:`base`), and checks everything a client names here: the revision
(``?rev=``), the path in the tree, page numbers.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import TYPE_CHECKING

from breezy import errors
from breezy.revision import NULL_REVISION
from breezy.transport import NoSuchFile

from ...store import diff
from .. import browse
from ..http import HTTPError, Released, Request
from .twins import json_response, revid_text, scope, wants_json

if TYPE_CHECKING:
    from breezy.repository import Repository
    from breezy.revisiontree import RevisionTree

    from ..face import Face

__all__ = [
    "MAX_PATH",
    "MAX_REVID",
    "Released",
    "base",
    "crumbs",
    "heavy_slot",
    "json_response",
    "page_number",
    "query",
    "repository",
    "require_revision",
    "revid_text",
    "revision_arg",
    "revision_tree",
    "scope",
    "tree_path",
    "wants_json",
]

#: Longest revision id a request may name (breezy's own are under 100).
MAX_REVID = 1024
#: Longest path in a tree a request may name, in bytes.
MAX_PATH = 4096


def repository(face: Face, codebase: str) -> Repository:
    """The codebase's shared repository (404 if there is none)."""
    return browse.open_codebase(face, codebase)


def base(face: Face, req: Request) -> str:
    """Path of ``/bzr`` for links."""
    return face.branches_base(req)


def crumbs(
    face: Face, req: Request, codebase: str, *rest: tuple[str, str | None]
) -> list[tuple[str, str | None]]:
    b = base(face, req)
    return [
        ("Home", face.home(req)),
        ("bzr", b + "/"),
        (codebase, f"{b}/{codebase}/"),
        *rest,
    ]


def query(req: Request) -> dict[str, bytes]:
    """The query's parameters, percent-decoded to bytes (``+`` is kept:
    revision ids hold it); the last of a repeated name wins."""
    found = {}
    for item in req.environ.get("QUERY_STRING", "").split("&"):
        name, sep, value = item.partition("=")
        if sep:
            found[name] = urllib.parse.unquote_to_bytes(value)
    return found


def revision_arg(req: Request) -> bytes:
    """The revision id in ``?rev=``: 400 if missing, too long or not text."""
    revid = query(req).get("rev")
    if not revid:
        raise HTTPError(400, "name a revision: ?rev=REVISION-ID")
    if len(revid) > MAX_REVID:
        raise HTTPError(400, f"revision ids are at most {MAX_REVID} bytes")
    if revid == NULL_REVISION:
        raise HTTPError(404, "the null revision has no tree")
    return revid


def page_number(req: Request, key: str = "page") -> int:
    """``?page=N`` (1 if absent); 400 unless a positive number."""
    return browse._page_number(req, key)


_VIEW_PATH = re.compile(r"/\+(?:tree|file|raw|annotate|log)/(.*)")


def _raw_path(req: Request, path: str) -> bytes:
    """The bytes of the path as the client sent them: from the request
    target when the server keeps it (``REQUEST_URI``, ``RAW_URI``), else
    from ``PATH_INFO`` (PEP 3333's latin-1, or UTF-8 as paste decodes it)."""
    target = req.environ.get("REQUEST_URI") or req.environ.get("RAW_URI")
    if target:
        m = _VIEW_PATH.search(target.split("?", 1)[0].split("#", 1)[0])
        if m is not None:
            return urllib.parse.unquote_to_bytes(m.group(1))
    try:
        return path.encode("latin-1")
    except UnicodeEncodeError:
        return path.encode("utf-8")


def tree_path(req: Request, path: str | None) -> str:
    """The path in the tree a URL names, checked: UTF-8, no empty, ``.`` or
    ``..`` segment, no control character, at most :data:`MAX_PATH` bytes.
    ``""`` is the root."""
    if not path:
        return ""
    raw = _raw_path(req, path)
    if len(raw) > MAX_PATH:
        raise HTTPError(400, f"paths are at most {MAX_PATH} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "paths are UTF-8") from None
    text = text.rstrip("/")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise HTTPError(400, "paths hold no control characters")
    if text and any(p in ("", ".", "..") for p in text.split("/")):
        raise HTTPError(400, "paths have no empty, '.' or '..' segments")
    return text


def require_revision(repo: Repository, revid: bytes) -> None:
    """404 unless ``revid`` is in the repository (read-locked)."""
    if not repo.has_revision(revid):
        raise HTTPError(404, f"no such revision: {browse._revid_text(revid)}")


def revision_tree(repo: Repository, revid: bytes) -> RevisionTree:
    """The tree of ``revid`` (the repository read-locked); 404 if absent."""
    try:
        require_revision(repo, revid)
        return repo.revision_tree(revid)
    except (errors.NoSuchRevision, errors.RevisionNotPresent):
        raise HTTPError(404, f"no such revision: {browse._revid_text(revid)}") from None


def kind(tree: RevisionTree, path: str) -> str:
    """The kind of ``path`` in ``tree``; 404 if it is not there."""
    if not path:
        return "directory"
    try:
        return tree.kind(path)
    except NoSuchFile:
        raise HTTPError(404, f"no such file in this revision: {path}") from None


def heavy_slot(face: Face) -> diff.Slot:
    """A reader's slot of ``face.stream_budget`` (503 with ``Retry-After``
    when none comes free)."""
    return browse.diff_slot(face)
