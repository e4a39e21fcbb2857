"""The history of one file: the revisions that changed it, paged.

``GET /bzr/CODEBASE/+log/PATH?rev=REVID[&page=N]`` walks the file's own
graph in the repository (its versions, keyed by file id and the revision
that made each), from the version in REVID's tree: renames are followed,
and merged changes are included.  Newest first, :data:`LOG_PAGE_SIZE` a
page; at most :data:`MAX_VERSIONS` versions are walked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from breezy.revision import NULL_REVISION

from ...store import history
from .. import browse
from ..http import HTTPError, Request
from . import blob, caching, common, render, urls

if TYPE_CHECKING:
    from ..face import Face

__all__ = ["LOG_PAGE_SIZE", "MAX_VERSIONS", "file_log"]

LOG_PAGE_SIZE = 50
#: Most versions of one file walked for its history.
MAX_VERSIONS = 100_000


def file_log(
    face: Face, req: Request, codebase: str, path: str | None = None
) -> list[bytes]:
    repo, tree, path, revid, _ = blob.open_file(face, req, codebase, path)
    try:
        number = common.page_number(req)
    except BaseException:
        repo.unlock()
        raise
    as_json = common.wants_json(req)
    tag = caching.etag(
        "log", codebase, revid, path, number, as_json, *common.scope(face, repo)
    )
    cached = caching.not_modified(req, tag)
    if cached is not None:
        repo.unlock()
        return cached
    try:
        file_id = tree.path2id(path)
        last = tree.get_file_revision(path)
        versions = _versions(repo, (file_id, last))
        start = (number - 1) * LOG_PAGE_SIZE
        if number > 1 and start >= len(versions):
            raise HTTPError(
                404, f"no page {number}: the file has {len(versions)} versions"
            )
        shown = versions[start : start + LOG_PAGE_SIZE]
        present = repo.has_revisions(shown)
        known = [r for r in shown if r in present]
        revisions = dict(zip(known, history.read_revisions(repo, known)))
    finally:
        repo.unlock()
    b = common.base(face, req)
    rows = [
        {
            "revid": r,
            "rev": revisions.get(r),
            "file_href": b + urls.file(codebase, r, path) if r in present else None,
        }
        for r in shown
    ]
    if as_json:
        return common.json_response(
            req,
            {
                "codebase": codebase,
                "revision": common.revid_text(revid),
                "path": path,
                "count": len(versions),
                "page": number,
                "next_page": number + 1
                if start + LOG_PAGE_SIZE < len(versions)
                else None,
                "revisions": [common.revid_text(r) for r in shown],
            },
            caching.headers(tag),
        )
    pager = browse.Pager(
        number,
        start + LOG_PAGE_SIZE < len(versions),
        query=urls.filelog("", revid, path).split("?", 1)[1] + "&",
    )
    body = render.render(
        "filelog.html",
        title=f"{codebase}: history of {path}",
        crumbs=common.crumbs(
            face,
            req,
            codebase,
            ("files", b + urls.tree(codebase, revid)),
            (path, b + urls.file(codebase, revid, path)),
            ("history", None),
        ),
        base=b,
        codebase=codebase,
        revid=revid,
        path=path,
        rows=rows,
        count=len(versions),
        truncated=len(versions) >= MAX_VERSIONS,
        pager=pager,
    )
    return render.respond(req, body, headers=caching.headers(tag))


def _versions(repo, key: tuple[bytes, bytes]) -> list[bytes]:
    """Revisions of the file's versions from ``key`` back, newest first
    (by the file graph's topological order, then by revision order)."""
    graph = repo.texts.get_known_graph_ancestry([key])
    order = [k for k in graph.topo_sort() if k[-1] != NULL_REVISION]
    order.reverse()
    return [k[-1] for k in order[:MAX_VERSIONS]]
