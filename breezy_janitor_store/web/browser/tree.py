"""The tree of a revision: a directory's entries, paged.

``GET /bzr/CODEBASE/+tree/[PATH]?rev=REVID[&page=N]``: directories first,
then the other entries by name, each with its size (files) and the
revision that last changed it (from the inventory: no extra reads but
the revisions of the entries shown, for their dates and messages).  A
nested tree (``tree-reference``) is listed but never followed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...store import history
from .. import browse
from ..http import HTTPError, Request
from . import caching, common, render, urls

if TYPE_CHECKING:
    from ..face import Face

__all__ = ["TREE_PAGE_SIZE", "tree_view"]

#: Entries per page of a directory.
TREE_PAGE_SIZE = 500


def tree_view(
    face: Face, req: Request, codebase: str, path: str | None = None
) -> list[bytes]:
    repo = common.repository(face, codebase)
    revid = common.revision_arg(req)
    path = common.tree_path(req, path)
    number = common.page_number(req)
    b = common.base(face, req)
    with repo.lock_read():
        common.require_revision(repo, revid)
        as_json = common.wants_json(req)
        tag = caching.etag(
            "tree", codebase, revid, path, number, as_json, *common.scope(face, repo)
        )
        cached = caching.not_modified(req, tag)
        if cached is not None:
            return cached
        tree = common.revision_tree(repo, revid)
        with tree.lock_read():
            kind = common.kind(tree, path)
            if kind != "directory":
                raise HTTPError(404, f"not a directory: {path}")
            children = sorted(
                tree.iter_child_entries(path),
                key=lambda e: (e.kind != "directory", e.name),
            )
            start = (number - 1) * TREE_PAGE_SIZE
            if number > 1 and start >= len(children):
                raise HTTPError(
                    404, f"no page {number}: the directory has {len(children)} entries"
                )
            shown = children[start : start + TREE_PAGE_SIZE]
            changed = sorted({e.revision for e in shown if e.revision})
            present = repo.has_revisions(changed)
            known = [r for r in changed if r in present]
            revisions = dict(zip(known, history.read_revisions(repo, known)))
            rows = []
            for entry in shown:
                child = f"{path}/{entry.name}" if path else entry.name
                href = None
                if entry.kind == "directory":
                    href = b + urls.tree(codebase, revid, child)
                elif entry.kind == "file":
                    href = b + urls.file(codebase, revid, child)
                rows.append(
                    {
                        "name": entry.name + ("/" if entry.kind == "directory" else ""),
                        "href": href,
                        "kind": entry.kind,
                        "size": entry.text_size if entry.kind == "file" else None,
                        "target": entry.symlink_target
                        if entry.kind == "symlink"
                        else None,
                        "revid": entry.revision,
                        "rev": revisions.get(entry.revision),
                        "history": b + urls.filelog(codebase, revid, child)
                        if entry.kind == "file"
                        else None,
                    }
                )
    if as_json:
        return common.json_response(
            req,
            {
                "codebase": codebase,
                "revision": common.revid_text(revid),
                "path": path,
                "count": len(children),
                "page": number,
                "next_page": number + 1
                if start + TREE_PAGE_SIZE < len(children)
                else None,
                "entries": [
                    {
                        "name": r["name"].rstrip("/"),
                        "kind": r["kind"],
                        "size": r["size"],
                        "symlink_target": r["target"],
                        "last_changed": common.revid_text(r["revid"]),
                    }
                    for r in rows
                ],
            },
            caching.headers(tag),
        )
    parts = path.split("/") if path else []
    trail = [("(root)", b + urls.tree(codebase, revid))]
    for i, name in enumerate(parts):
        trail.append((name, b + urls.tree(codebase, revid, "/".join(parts[: i + 1]))))
    pager = browse.Pager(
        number, start + TREE_PAGE_SIZE < len(children), query=_rev_query(revid)
    )
    pager.previous_text, pager.next_text = "Previous", "Next"
    body = render.render(
        "tree.html",
        title=f"{codebase}: /{path}",
        crumbs=common.crumbs(face, req, codebase, ("files", None)),
        base=b,
        codebase=codebase,
        revid=revid,
        revision_href=b + history.revision_path(codebase, revid),
        tarball_href=b + urls.tarball(codebase, revid),
        trail=trail,
        rows=rows,
        count=len(children),
        first=start + 1,
        pager=pager,
    )
    return render.respond(req, body, headers=caching.headers(tag))


def _rev_query(revid: bytes) -> str:
    return urls.tree("", revid).split("?", 1)[1] + "&"
