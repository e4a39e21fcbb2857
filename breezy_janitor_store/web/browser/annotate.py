"""Annotate: each line of a file with the revision that last changed it.

``GET /bzr/CODEBASE/+annotate/PATH?rev=REVID``: breezy's annotation of
the file (``Tree.annotate_iter``), for files of at most
:data:`~breezy_janitor_store.store.budget.ANNOTATE_LIMIT` bytes (as the smart
verb), made in a reader's slot of the stream budget.  Each line shows the
revision's number on the mainline of REVID (or its id when it was
merged), its author and a link to it; at most
:data:`~.blob.VIEW_LINES` lines are shown.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from ...store import history
from ...store.budget import ANNOTATE_LIMIT
from .. import browse
from ..http import Request
from . import blob, caching, common, render, urls

if TYPE_CHECKING:
    from ..face import Face

__all__ = ["annotate_view"]


def annotate_view(
    face: Face, req: Request, codebase: str, path: str | None = None
) -> list[bytes]:
    repo, tree, path, revid, size = blob.open_file(face, req, codebase, path)
    as_json = common.wants_json(req)
    tag = caching.etag(
        "annotate", codebase, revid, path, as_json, *common.scope(face, repo)
    )
    cached = caching.not_modified(req, tag)
    if cached is not None:
        repo.unlock()
        return cached
    b = common.base(face, req)
    rows = []
    too_large = size is not None and size > ANNOTATE_LIMIT
    cut = binary = False
    try:
        if not too_large:
            slot = common.heavy_slot(face)
            try:
                annotated = list(tree.annotate_iter(path))
            finally:
                slot.release()
            text_bytes = b"".join(line for _, line in annotated)
            binary = blob.is_binary(text_bytes)
            cut = len(annotated) > blob.VIEW_LINES
            annotated = annotated[: blob.VIEW_LINES]
            distinct = sorted({r for r, _ in annotated})
            revnos = _revnos(browse.mainline(repo, codebase, revid), distinct)
            present = repo.has_revisions(distinct)
            known = [r for r in distinct if r in present]
            revisions = dict(zip(known, history.read_revisions(repo, known)))
    finally:
        repo.unlock()
    if as_json:
        return common.json_response(
            req,
            {
                "codebase": codebase,
                "revision": common.revid_text(revid),
                "path": path,
                "annotated": not (too_large or binary),
                "cut": cut,
                "lines": [
                    {
                        "revision": common.revid_text(r),
                        "revno": revnos.get(r),
                        "text": t.decode("utf-8", "replace"),
                    }
                    for r, t in annotated
                ]
                if not (too_large or binary)
                else [],
            },
            caching.headers(tag),
        )
    if not too_large and not binary:
        shown = b"".join(t for _, t in annotated)
        if len(shown) <= blob.VIEW_BYTES:
            lines = blob.highlight(
                posixpath.basename(path), shown.decode("utf-8", "replace")
            )
        else:
            lines = [t.decode("utf-8", "replace").rstrip("\n") for _, t in annotated]
        # what a line shows of its revision, made once per revision
        shown_of = {
            r: (
                b + history.revision_path(codebase, r),
                render.markup(browse._author(revisions[r])) if revisions.get(r) else "",
            )
            for r in distinct
        }
        previous = None
        for (rev_id, _), text in zip(annotated, lines):
            href, author = shown_of[rev_id]
            rows.append(
                {
                    "first": rev_id != previous,
                    "revno": revnos.get(rev_id),
                    "revid": rev_id,
                    "href": href,
                    "author": author,
                    "text": text,
                }
            )
            previous = rev_id
    body = render.render(
        "annotate.html",
        title=f"{codebase}: annotate {path}",
        crumbs=common.crumbs(
            face,
            req,
            codebase,
            ("files", b + urls.tree(codebase, revid)),
            (path, b + urls.file(codebase, revid, path)),
            ("annotate", None),
        ),
        highlight=True,
        base=b,
        codebase=codebase,
        revid=revid,
        path=path,
        rows=rows,
        cut=cut,
        binary=binary,
        too_large=too_large,
        limit=ANNOTATE_LIMIT,
        file_href=b + urls.file(codebase, revid, path),
        raw_href=b + urls.raw(codebase, revid, path),
    )
    return render.respond(req, body, headers=caching.headers(tag))


def _revnos(line: list[bytes], revids: list[bytes]) -> dict[bytes, int]:
    """The numbers on ``line`` (a mainline, newest first) of those of
    ``revids`` on it."""
    wanted = set(revids)
    found = {}
    for i, r in enumerate(line):
        if r in wanted:
            found[r] = len(line) - i
            if len(found) == len(wanted):
                break
    return found
