"""``GET /bzr/CODEBASE/+children/REVID``: what came after a revision.

A revision page reached by its id is immutable, so it cannot say what
came after it (later pushes do).  This page can: for each branch of the
codebase whose mainline holds REVID (the first :data:`MAX_BRANCHES`
branches are looked at), REVID's revno there and the next mainline
revision; and those next revisions, each a revision whose left-hand
parent is REVID.  It is revalidated (``no-cache``), its ETag made of the
tips it looked at; the mainlines come from the bounded cache of
:func:`breezy_janitor_store.web.browse.mainline`.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from breezy.revision import NULL_REVISION

from ...store import history
from ..browse import mainline, open_codebase
from ..http import HTTPError, Request
from . import caching, common, render

if TYPE_CHECKING:
    from ..face import Face

__all__ = ["MAX_BRANCHES", "children_page", "children_path"]

#: Branches of a codebase looked at (each mainline walked or cached).
MAX_BRANCHES = 64


def children_path(codebase: str, revid: bytes) -> str:
    """Path of a revision's children page below the public face's ``/bzr``."""
    return f"/{codebase}/+children/{urllib.parse.quote(revid, safe='@:+/')}"


def children_page(
    face: Face, req: Request, codebase: str, revid: str
) -> list[bytes]:
    """The branches whose mainline holds the revision, and what follows it
    on each; ``revid`` as the server decoded it from the path."""
    try:
        raw = revid.encode("latin-1")  # PEP 3333: PATH_INFO bytes as latin-1
    except UnicodeEncodeError:
        raw = revid.encode("utf-8")
    if len(raw) > common.MAX_REVID:
        raise HTTPError(400, f"revision ids are at most {common.MAX_REVID} bytes")
    repo = open_codebase(face, codebase)
    if raw == NULL_REVISION or not history.has_revision(repo, raw):
        raise HTTPError(404, f"no such revision: {common.revid_text(raw)}")
    refs = history.branches(
        face.storage, codebase, face.campaigns, limit=MAX_BRANCHES
    )
    looked = []
    for ref in refs:
        if ref.branch is None:  # a branch reference or stacked: not followed
            continue
        with ref.branch.lock_read():
            looked.append((ref, ref.branch.last_revision()))
    as_json = common.wants_json(req)
    tag = caching.etag(
        "children",
        *common.scope(face, repo),
        codebase,
        raw,
        as_json,
        len(refs),
        *caching.pairs(("/".join(ref.segments), tip) for ref, tip in looked),
    )
    cached = caching.not_modified(req, tag, caching.REVALIDATE)
    if cached is not None:
        return cached
    base = common.base(face, req)
    rows = []
    for ref, tip in looked:
        if tip == NULL_REVISION:
            continue
        line = mainline(repo, codebase, tip)
        try:
            index = line.index(raw)
        except ValueError:
            continue
        name = "/".join(ref.segments)
        revno = len(line) - index
        following = line[index - 1] if index > 0 else None
        rows.append(
            {
                "name": name,
                "href": f"{base}/{codebase}/{name}/",
                "revno": revno,
                "revno_href": f"{base}/{codebase}/{name}/+revno/{revno}",
                "next": following,
                "next_revno": revno + 1 if following is not None else None,
                "next_href": f"{base}/{codebase}/{name}/+revno/{revno + 1}",
            }
        )
    children = list(dict.fromkeys(r["next"] for r in rows if r["next"] is not None))
    more = len(refs) >= MAX_BRANCHES
    headers = caching.headers(tag, caching.REVALIDATE)
    if as_json:
        value = {
            "codebase": codebase,
            "revision": common.revid_text(raw),
            "branches": [
                {
                    "name": r["name"],
                    "revno": r["revno"],
                    "next": common.revid_text(r["next"]),
                    "next_revno": r["next_revno"],
                }
                for r in rows
            ],
            "children": [common.revid_text(c) for c in children],
            "branches_looked_at": len(looked),
            "more_branches": more,
        }
        return common.json_response(req, value, headers)
    body = render.render(
        "children.html",
        title=f"{codebase}: newer revisions",
        crumbs=common.crumbs(
            face,
            req,
            codebase,
            ("revision", base + history.revision_path(codebase, raw)),
            ("newer revisions", None),
        ),
        base=base,
        codebase=codebase,
        revid=raw,
        rows=rows,
        children=list(history.iter_revisions(repo, children)),
        looked=len(looked),
        more=more,
        limit=MAX_BRANCHES,
    )
    return render.respond(req, body, headers=headers)
