"""Revision pages, comparisons of two revisions and their diffs.

A revision page shows the revision's message and metadata (each shown as
unreadable when it cannot be read), the files it changed with the lines
each gained and lost, and its diff against its left-hand parent, run in a
slot of the face's stream budget (:mod:`.diffs`); ``/+revno/N`` of a branch is its N-th mainline revision's page;
``/+compare/OLD..NEW`` diffs two revisions (see :mod:`.compare`).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from breezy.revision import NULL_REVISION

from ...store import history, layout
from ..browse import (
    _UNSHOWABLE,
    HTML_HEADERS,
    HTML_TYPE,
    PAGE_DIFF_LIMIT,
    PAGE_SIZE,
    _author,
    _bugs,
    _date,
    _location,
    _rev_link,
    _revid_text,
    _summary,
    _unreadable,
    diff_slot,
    esc,
    mainline,
    open_codebase,
)
from ..http import HTTPError, Request
from . import caching, common, diffs, render, urls
from .children import children_path
from .diffs import file_anchor
from .twins import json_response, revid_text, scope, wants_json

if TYPE_CHECKING:
    from ..face import Face

__all__ = ["compare_page", "file_anchor", "revision_page", "revno_page"]

logger = logging.getLogger(__name__)


#: Changed files listed above a diff; merged revisions listed on a page.
MAX_CHANGED = 1000
MAX_MERGED = 100


def revision_page(
    face: Face,
    req: Request,
    codebase: str,
    revid: bytes,
    branch: tuple[str, ...] | None = None,
) -> Iterable[bytes]:
    """The revision's message and metadata (each shown as unreadable when
    it cannot be read), the files it changed, the revisions it merged, and
    its diff against its left-hand parent (as the repository's graph has
    it) in a slot of ``face.stream_budget``."""
    repo = open_codebase(face, codebase)
    if revid == NULL_REVISION or not history.has_revision(repo, revid):
        raise HTTPError(404, f"no such revision: {_revid_text(revid)}")
    as_json = wants_json(req)
    on_branch = (
        _on_branch(face, repo, codebase, revid, branch) if branch is not None else None
    )
    tag = caching.etag(
        "revision",
        *scope(face, repo),
        codebase,
        revid,
        as_json,
        *(on_branch or ()),
        *_diff_settings(face),
    )
    cache = caching.IMMUTABLE if on_branch is None else caching.REVALIDATE
    cached = caching.not_modified(req, tag, cache)
    if cached is not None:
        return cached
    (rev,) = history.read_revisions(repo, [revid])
    parent_ids = history.parents(repo, revid)
    if _ghosts(repo, parent_ids):
        # its diff and merged revisions change once they arrive
        tag, cache = caching.unsettled(tag)
    if as_json:
        return _revision_json(face, req, repo, revid, rev, parent_ids, tag, cache)
    base = face.branches_base(req)
    parent = parent_ids[0] if parent_ids else NULL_REVISION
    meta = [("Revision id", render.markup(f"<code>{esc(_revid_text(revid))}</code>"))]
    if rev is None:
        meta.append(
            ("Revision", render.markup(f"{_unreadable()}: its text cannot be read"))
        )
        title = summary = message = ""
    else:
        meta += [
            ("Committer", rev.committer),
            ("Author", render.markup(_author(rev))),
            ("Date", render.markup(_date(rev))),
        ]
        title = _UNSHOWABLE.sub("\ufffd", str(rev.get_summary()))
        summary = render.markup(_summary(rev))
        message = rev.message or ""
    meta.append(
        (
            "Parents",
            render.markup(
                ", ".join(_rev_link(base, codebase, p) for p in parent_ids) or "none"
            ),
        )
    )
    bugs = _bugs(rev) if rev is not None else None
    if bugs:
        meta.append(("Bugs", render.markup(bugs)))
    if on_branch is not None:
        name, _, revno, older, newer = on_branch

        def link(other: bytes, number: int):
            href = f"{base}/{codebase}/{name}/+revno/{number}"
            return render.markup(
                f'<a href="{esc(href)}">{number}</a> '
                f"<code>{esc(_revid_text(other))}</code>"
            )

        meta.append((f"Revno on {name}", revno))
        meta.append((f"Older on {name}", link(older, revno - 1) if older else "none"))
        meta.append(
            (f"Newer on {name}", link(newer, revno + 1) if newer else "none (the tip)")
        )
    merged, merged_count = _merged(repo, revid, parent_ids)
    return _diff_page(
        face,
        req,
        repo,
        codebase,
        parent,
        revid,
        "revision.html",
        tag,
        cache,
        title=f"{codebase}: {title or 'revision'}",
        crumbs=common.crumbs(face, req, codebase, ("revision", None)),
        summary=summary,
        message=message,
        meta=meta,
        has_parents=bool(parent_ids),
        merged=merged,
        merged_count=merged_count,
        tree_href=base + urls.tree(codebase, revid),
        children_href=base + children_path(codebase, revid),
        tarball_href=base + urls.tarball(codebase, revid),
    )


def _diff_settings(face: Face) -> tuple:
    """What a page's diff depends on besides its revisions (for its ETag)."""
    return (repr(face.diff_limits), face.diff_timeout, PAGE_DIFF_LIMIT)


def _open_named_branch(face, repo, codebase: str, segments: tuple[str, ...]):
    """The branch ``CODEBASE/CAMPAIGN[/ROLE]`` (404, 409 as the branch page)."""
    if segments[0] not in face.campaigns:
        raise HTTPError(404, f"unknown campaign: {segments[0]}")
    try:
        branch = history.open_branch(
            face.storage, codebase, segments, face.campaigns, repo
        )
    except history.RefusedBranch as e:
        raise HTTPError(409, f"{codebase}/{e}") from None
    if branch is None:
        raise HTTPError(404, f"no such branch: {_location(codebase, segments)}")
    return branch


def _on_branch(face, repo, codebase: str, revid: bytes, segments) -> tuple:
    """``(branch name, tip, revno, older, newer)`` of ``revid`` on the
    mainline of ``CODEBASE/segments`` (404 if it is not on it)."""
    branch = _open_named_branch(face, repo, codebase, segments)
    with branch.lock_read():
        tip = branch.last_revision()
    line = mainline(repo, codebase, tip)
    name = "/".join(segments)
    try:
        index = line.index(revid)
    except ValueError:
        raise HTTPError(
            404, f"{_revid_text(revid)} is not on the mainline of {name}"
        ) from None
    newer = line[index - 1] if index > 0 else None
    older = line[index + 1] if index + 1 < len(line) else None
    return name, tip, len(line) - index, older, newer


def revno_page(
    face: Face,
    req: Request,
    codebase: str,
    campaign: str,
    revno: str,
    role: str | None = None,
) -> Iterable[bytes]:
    """``/bzr/CODEBASE/CAMPAIGN[/ROLE]/+revno/N``: the revision page of the
    branch's mainline revision number N, with its neighbours there."""
    repo = open_codebase(face, codebase)
    segments = layout.branch_segments(campaign, role)
    branch = _open_named_branch(face, repo, codebase, segments)
    with branch.lock_read():
        tip = branch.last_revision()
    line = mainline(repo, codebase, tip)
    number = int(revno)
    if not 1 <= number <= len(line):
        raise HTTPError(
            404,
            f"no revno {number} on {_location(codebase, segments)}: it has {len(line)}",
        )
    return revision_page(face, req, codebase, line[len(line) - number], segments)


def _ghosts(repo, revids: list[bytes]) -> bool:
    """Whether any of ``revids`` is missing from the repository (a ghost)."""
    wanted = [r for r in revids if r != NULL_REVISION]
    if not wanted:
        return False
    with repo.lock_read():
        return len(repo.has_revisions(wanted)) < len(set(wanted))


def _revision_json(
    face, req, repo, revid, rev, parent_ids, tag, cache=caching.IMMUTABLE
) -> list[bytes]:
    """The revision page's JSON twin: its metadata, the files it changed
    with their lines added and removed, and the revisions it merged (the
    diff is the API's ``diff``)."""

    def text(call):
        try:
            return call()
        except (AttributeError, TypeError, ValueError):
            return None

    parent = parent_ids[0] if parent_ids else NULL_REVISION
    changes, counted = _counted_changes(face, repo, parent, revid)
    merged, merged_count = _merged(repo, revid, parent_ids)
    value = {
        "revision": revid_text(revid),
        "parents": [revid_text(p) for p in parent_ids],
        "readable": rev is not None,
        "committer": text(lambda: str(rev.committer)) if rev else None,
        "authors": text(lambda: [str(a) for a in rev.get_apparent_authors()])
        if rev
        else None,
        "timestamp": text(lambda: float(rev.timestamp)) if rev else None,
        "timezone": text(lambda: int(rev.timezone or 0)) if rev else None,
        "message": text(lambda: str(rev.message or "")) if rev else None,
        "changes": changes,
        "merged": [revid_text(r) for r, _ in merged],
        "merged_count": merged_count,
    }
    return json_response(
        req, value, caching.headers(tag, cache), keep=not counted.transient
    )


def _counted_changes(
    face: Face, repo, old: bytes, new: bytes
) -> tuple[list[dict] | None, diffs.PageDiff]:
    """The files changed from ``old`` to ``new`` (the first
    :data:`MAX_CHANGED`) as the JSON twins list them, with the lines each
    gained and lost (the diff runs in a slot, as on the page)."""
    changes = _changes(repo, old, new)
    listed = [] if changes is None else changes[:MAX_CHANGED]
    slot = diff_slot(face)
    try:
        counted = diffs.page_diff(
            repo,
            old,
            new,
            face.diff_timeout,
            face.diff_limits,
            slot,
            [path for _, path, _ in listed],
        )
    finally:
        slot.release_unused()
    if changes is None:
        return None, counted
    return [
        {
            "change": kind,
            "path": path,
            "old_path": old_path,
            **counted.lines(path).as_json(),
        }
        for kind, path, old_path in listed
    ], counted


def compare_page(
    face: Face, req: Request, codebase: str, old: bytes, new: bytes
) -> Iterable[bytes]:
    """What ``new`` has that ``old`` lacks: its revisions (the left-hand
    line first) and the diff from ``old`` to ``new``."""
    repo = open_codebase(face, codebase)
    for revid in (old, new):
        if not history.has_revision(repo, revid):
            raise HTTPError(404, f"no such revision: {_revid_text(revid)}")
    as_json = wants_json(req)
    tag = caching.etag(
        "compare",
        codebase,
        old,
        new,
        as_json,
        *_diff_settings(face),
        *scope(face, repo),
    )
    cached = caching.not_modified(req, tag)
    if cached is not None:
        return cached
    line = history.mainline(repo, new, old)
    with repo.lock_read():
        unique = (
            repo.get_graph().find_unique_ancestors(new, [old])
            if new != NULL_REVISION
            else set()
        )
    shown = line[:PAGE_SIZE]
    with repo.lock_read():
        present = repo.has_revisions(shown)
    shown = [r for r in shown if r in present]
    cache = caching.IMMUTABLE
    if line and _ghosts(repo, [line[-1]]):
        # the line stops at a ghost: it grows once the ghost arrives
        tag, cache = caching.unsettled(tag)
    if as_json:
        changes, counted = _counted_changes(face, repo, old, new)
        value = {
            "codebase": codebase,
            "old": revid_text(old),
            "new": revid_text(new),
            "revision_count": len(unique),
            "line_count": len(line),
            "revisions": [revid_text(r) for r in shown],
            "changes": changes,
        }
        return json_response(
            req, value, caching.headers(tag, cache), keep=not counted.transient
        )
    rows = list(history.iter_revisions(repo, shown))
    return _diff_page(
        face,
        req,
        repo,
        codebase,
        old,
        new,
        "compare.html",
        tag,
        cache,
        title=f"{codebase}: compare",
        crumbs=common.crumbs(face, req, codebase, ("compare", None)),
        old=old,
        new=new,
        rows=rows,
        line_count=len(line),
        unique_count=len(unique),
    )


def _diff_page(
    face: Face,
    req: Request,
    repo,
    codebase: str,
    old_revid: bytes,
    new_revid: bytes,
    template: str,
    tag: str,
    cache: tuple[str, str] = caching.IMMUTABLE,
    **context: object,
) -> Iterable[bytes]:
    """A page of ``template``: the files changed from ``old`` to ``new``,
    each with its lines added and removed, then the diff (see
    :func:`.diffs.page_diff`: run in a slot of ``face.stream_budget`` once
    the body is iterated, its markup bounded by ``PAGE_DIFF_LIMIT``)."""
    base = face.branches_base(req)
    old, new = old_revid, new_revid
    changes = _changes(repo, old, new)
    listed = None if changes is None else changes[:MAX_CHANGED]
    raw = urllib.parse.urlencode(
        {"old": old.decode("utf-8", "replace"), "new": new.decode("utf-8", "replace")}
    )
    slot = diff_slot(face)

    def make() -> tuple[Iterator[bytes], bool]:
        counted = diffs.page_diff(
            repo,
            old,
            new,
            face.diff_timeout,
            face.diff_limits,
            slot,
            [path for _, path, _ in listed or ()],
        )
        rows = (
            None
            if listed is None
            else [(*change, counted.lines(change[1])) for change in listed]
        )
        page = render.stream(
            template,
            base=base,
            codebase=codebase,
            changes=rows,
            change_count=0 if changes is None else len(changes),
            file_href=lambda path: base + urls.file(codebase, new, path),
            anchor=file_anchor,
            raw_diff_href=f"{base}/{codebase}/diff?{raw}",
            diff=counted.chunks,
            notes=counted.notes,
            **context,
        )
        return page, counted.transient

    headers = [("Content-Type", HTML_TYPE), *HTML_HEADERS, *caching.headers(tag, cache)]
    req.respond(200, None, headers)
    return diffs.PageBody(make, slot, req, headers)


def _changes(repo, old: bytes, new: bytes) -> list[tuple[str, str, str | None]] | None:
    """``(kind of change, path, old path of a rename)`` of each file that
    differs between the two trees; None if the trees cannot be compared."""
    try:
        with repo.lock_read():
            delta = repo.revision_tree(new).changes_from(repo.revision_tree(old))
    except Exception:  # whatever breezy makes of bad data on disk
        logger.debug("no delta %r..%r", old, new, exc_info=True)
        return None
    rows = []
    for kind, items in (
        ("added", delta.added),
        ("removed", delta.removed),
        ("renamed", delta.renamed),
        ("modified", delta.modified),
        ("kind changed", delta.kind_changed),
        ("copied", delta.copied),
    ):
        for change in items:
            old_path, new_path = change.path
            rows.append(
                (
                    kind,
                    new_path if new_path is not None else old_path,
                    old_path if kind in ("renamed", "copied") else None,
                )
            )
    return rows


def _merged(repo, revid: bytes, parent_ids: list[bytes]) -> tuple[list, int]:
    """The revisions a merge brought in: the merged branch's left-hand line
    (at most :data:`MAX_MERGED`, with their texts) and how many revisions
    it brought in all."""
    if len(parent_ids) < 2:
        return [], 0
    with repo.lock_read():
        unique = repo.get_graph().find_unique_ancestors(revid, [parent_ids[0]])
    unique.discard(revid)
    line = []
    for other in parent_ids[1:]:
        line += [r for r in history.mainline(repo, other, parent_ids[0]) if r in unique]
    line = list(dict.fromkeys(line))[:MAX_MERGED]
    return list(history.iter_revisions(repo, line)), len(unique)
