"""``GET /bzr/CODEBASE/+children/REVID``: what came after a revision.

A revision page reached by its id is immutable, so it cannot say what
came after it (later pushes do).  This page can: for each branch of the
codebase whose mainline holds REVID (the first :data:`MAX_BRANCHES`
branches are looked at), REVID's revno there and the next mainline
revision; and those next revisions, each a revision whose left-hand
parent is REVID.  It is revalidated (``no-cache``), its ETag made of the
tips it looked at.  The branches' ancestry is read once and each revision
of their mainlines walked at most once (:func:`_positions`).
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
    revno, after = _positions(repo, codebase, raw, [tip for _, tip in looked])
    for ref, tip in looked:
        following = after.get(tip, _ABSENT)
        if tip == NULL_REVISION or following is _ABSENT:
            continue
        name = "/".join(ref.segments)
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


#: A tip whose mainline does not hold the revision.
_ABSENT = object()


def _positions(
    repo, codebase: str, revid: bytes, tips: list[bytes]
) -> tuple[int, dict[bytes, object]]:
    """``revid``'s revno, and for each of ``tips`` holding it on its
    mainline the revision after it there (None: the tip is ``revid``).

    The tips' ancestry is read once and each revision of their mainlines
    walked at most once (branches of a codebase share most of their
    history): a walk per branch cost the length of its history each, 64
    times over (seconds of CPU a request on a long history)."""
    tips = [t for t in dict.fromkeys(tips) if t != NULL_REVISION]
    known = getattr(repo.revisions, "get_known_graph_ancestry", None)
    if known is None or not tips:  # not a versioned-file repository
        return _positions_by_line(repo, codebase, revid, tips)
    with repo.lock_read():
        graph = known([(t,) for t in tips])

    def parent(revision: bytes) -> bytes | None:
        try:
            parents = graph.get_parent_keys((revision,))
        except KeyError:  # a ghost ends the line
            return None
        return parents[0][0] if parents else None

    # memo: revision -> the revision after revid on its mainline, None for
    # revid itself, _ABSENT when revid is not on it
    memo: dict[bytes, object] = {revid: None}
    for tip in tips:
        path = []
        revision: bytes | None = tip
        while revision is not None and revision not in memo:
            path.append(revision)
            revision = parent(revision)
        if revision is None:
            found: object = _ABSENT
        elif revision == revid:
            found = path[-1] if path else None
        else:
            found = memo[revision]
        for walked in path:
            memo[walked] = found
    revno, revision = 0, revid
    while revision is not None:  # as history.mainline counts it
        revno += 1
        revision = parent(revision)
    return revno, {t: memo[t] for t in tips}


def _positions_by_line(
    repo, codebase: str, revid: bytes, tips: list[bytes]
) -> tuple[int, dict[bytes, object]]:
    revno, after = 0, {}
    for tip in tips:
        line = mainline(repo, codebase, tip)
        try:
            index = line.index(revid)
        except ValueError:
            continue
        revno = len(line) - index
        after[tip] = line[index - 1] if index > 0 else None
    return revno, after
