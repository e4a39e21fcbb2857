"""Revision pages, comparisons of two revisions and their diffs.

A revision page shows the revision's message and metadata (each shown as
unreadable when it cannot be read), the files it changed and its diff
against its left-hand parent, streamed in a slot of the face's stream
budget; ``/+revno/N`` of a branch is its N-th mainline revision's page;
``/+compare/OLD..NEW`` diffs two revisions (see :mod:`.compare`).
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from breezy.revision import NULL_REVISION

from ...store import diff, history, layout
from ..browse import (
    _UNSHOWABLE,
    HTML_HEADERS,
    HTML_TYPE,
    PAGE_DIFF_LIMIT,
    PAGE_SIZE,
    _author,
    _branch_path,
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
from . import caching, render, urls
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
    if as_json:
        return _revision_json(req, repo, revid, rev, parent_ids, tag)
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
        crumbs=[
            ("Home", face.home(req)),
            ("bzr", base + "/"),
            (codebase, base + _branch_path(codebase, ())),
            ("revision", None),
        ],
        summary=summary,
        message=message,
        meta=meta,
        has_parents=bool(parent_ids),
        merged=merged,
        merged_count=merged_count,
        tree_href=base + urls.tree(codebase, revid),
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


def _revision_json(req, repo, revid, rev, parent_ids, tag) -> list[bytes]:
    """The revision page's JSON twin: its metadata, the files it changed
    and the revisions it merged (the diff is the API's ``diff``)."""

    def text(call):
        try:
            return call()
        except (AttributeError, TypeError, ValueError):
            return None

    parent = parent_ids[0] if parent_ids else NULL_REVISION
    changes = _changes(repo, parent, revid)
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
        "changes": None
        if changes is None
        else [
            {"change": kind, "path": path, "old_path": old_path}
            for kind, path, old_path in changes[:MAX_CHANGED]
        ],
        "merged": [revid_text(r) for r, _ in merged],
        "merged_count": merged_count,
    }
    return json_response(req, value, caching.headers(tag))


def compare_page(
    face: Face, req: Request, codebase: str, old: bytes, new: bytes
) -> Iterable[bytes]:
    """What ``new`` has that ``old`` lacks: its revisions (the left-hand
    line first) and the diff from ``old`` to ``new``."""
    repo = open_codebase(face, codebase)
    for revid in (old, new):
        if not history.has_revision(repo, revid):
            raise HTTPError(404, f"no such revision: {_revid_text(revid)}")
    tag = caching.etag(
        "compare", codebase, old, new, *_diff_settings(face), *scope(face, repo)
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
    rows = list(history.iter_revisions(repo, shown))
    base = face.branches_base(req)
    return _diff_page(
        face,
        req,
        repo,
        codebase,
        old,
        new,
        "compare.html",
        tag,
        title=f"{codebase}: compare",
        crumbs=[
            ("Home", face.home(req)),
            ("bzr", base + "/"),
            (codebase, base + _branch_path(codebase, ())),
            ("compare", None),
        ],
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
    """A page of ``template`` ending with the diff from ``old`` to ``new``
    (streamed, in a slot of ``face.stream_budget``), after the list of the
    files changed."""
    base = face.branches_base(req)
    old, new = old_revid, new_revid
    changes = _changes(repo, old, new)
    raw = urllib.parse.urlencode(
        {"old": old.decode("utf-8", "replace"), "new": new.decode("utf-8", "replace")}
    )
    slot = diff_slot(face)
    notes: list[str] = []
    chunks = _revision_diff(
        repo, old, new, face.diff_timeout, face.diff_limits, slot, notes
    )
    headers = [("Content-Type", HTML_TYPE), *HTML_HEADERS, *caching.headers(tag, cache)]
    req.respond(200, None, headers)
    page_body = render.stream(
        template,
        base=base,
        codebase=codebase,
        changes=None if changes is None else changes[:MAX_CHANGED],
        change_count=0 if changes is None else len(changes),
        file_href=lambda path: base + urls.file(codebase, new, path),
        anchor=file_anchor,
        raw_diff_href=f"{base}/{codebase}/diff?{raw}",
        diff=chunks,
        notes=notes,
        **context,
    )
    return _RevisionBody(page_body, slot, chunks, req, headers, notes)


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


class _RevisionBody:
    """A revision page's body: gives the diff's slot back when it is closed
    before the diff started (a ``HEAD``, a client gone early); a page sent
    whole, with no note of a diff cut short by time or failure, is kept in
    :data:`.browser.caching.PAGES` when ``headers`` make it immutable."""

    def __init__(
        self,
        body: Iterator[bytes],
        slot: diff.Slot,
        chunks: Iterator[object],
        req: Request | None = None,
        headers: list[tuple[str, str]] | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self._body = body
        self._slot = slot
        self._chunks = chunks
        self._req = req
        self._headers = headers
        self._notes = notes

    def __iter__(self) -> Iterator[bytes]:
        kept: list[bytes] | None = [] if self._req is not None else None
        size = 0
        for chunk in self._body:
            if kept is not None:
                kept.append(chunk)
                size += len(chunk)
                if size > caching.PAGES.max_page:
                    kept = None
            yield chunk
        transient = any(
            n.startswith(("The diff was cut off", "The diff could not"))
            for n in self._notes or ()
        )
        if kept is not None and not transient:
            caching.PAGES.put(self._req, self._headers or [], b"".join(kept))

    def close(self) -> None:
        try:
            self._body.close()  # type: ignore[attr-defined]
            self._chunks.close()  # type: ignore[attr-defined]
        finally:
            self._slot.release_unused()


def _revision_diff(
    repo,
    parent: bytes,
    revid: bytes,
    timeout: float,
    limits: diff.DiffLimits,
    slot: diff.Slot,
    notes: list[str],
) -> Iterator[object]:
    """The diff as markup chunks; a note on how it ended goes to ``notes``."""
    # Started only once the body is iterated: nothing runs for HEAD.
    stream = diff.DiffStream(
        lambda out: diff.write_revision_diff(repo, parent, revid, out, None, limits),
        timeout,
        limits.output_bytes,
        slot,
    )
    try:
        note = yield from _diff_html(stream)
    except diff.DiffTimeout as e:
        note = f"The diff was cut off: {e}."
    except Exception:
        logger.exception("diff of %r failed", revid)
        note = "The diff could not be produced."
    finally:
        stream.close()
    if note:
        notes.append(note)


def file_anchor(path: str) -> str:
    """The id of a file's part of a diff on a page."""
    return "f-" + hashlib.sha1(path.encode("utf-8", "replace")).hexdigest()[:16]


def _diff_file(line: bytes) -> str | None:
    """The path a diff's ``=== KIND file 'PATH'`` line names (the new one
    of a rename)."""
    text = line.decode("utf-8", "replace")
    _, arrow, new = text.partition(" => '")
    quoted = new if arrow else text.partition("'")[2]
    return quoted[:-1] if quoted.endswith("'") else None


class _Counts:
    """Lines added and removed in one file of a diff."""

    def __init__(self) -> None:
        self.added = self.removed = 0

    def count(self, line: bytes) -> None:
        if line.startswith(b"+") and not line.startswith(b"+++"):
            self.added += 1
        elif line.startswith(b"-") and not line.startswith(b"---"):
            self.removed += 1

    def html(self) -> str:
        return f'<span class="note">(+{self.added} \u2212{self.removed})</span>\n'


def _diff_html(stream: diff.DiffStream):
    """Yield the diff as escaped, classed lines, each file's header with its
    anchor (:func:`file_anchor`) and its part followed by its counts of
    lines added and removed; return a note if cut short."""
    pending = b""
    size = 0
    empty = True
    counts: _Counts | None = None
    for chunk in stream:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        out = []
        for line in lines:
            empty = False
            if line.startswith(b"=== "):
                if counts is not None:
                    out.append(counts.html())
                counts = _Counts()
                path = _diff_file(line)
                anchor = f' id="{file_anchor(path)}"' if path is not None else ""
                html_line = (
                    f'<span class="file"{anchor}>'
                    f"{esc(line.decode('utf-8', 'replace'))}</span>\n"
                )
            else:
                html_line = _diff_line(line)
                if counts is not None:
                    counts.count(line)
            size += len(html_line)
            if size > PAGE_DIFF_LIMIT:
                yield render.markup("".join(out))
                return (
                    "The diff is too long to show here in full; the rest is left out."
                )
            out.append(html_line)
        yield render.markup("".join(out))
    if pending:
        empty = False
        if counts is not None:
            counts.count(pending)
        yield render.markup(_diff_line(pending))
    if counts is not None:
        yield render.markup(counts.html())
    return "No changes." if empty else ""


_DIFF_CLASSES = (
    (b"+++", "file"),
    (b"---", "file"),
    (b"===", "file"),
    (b"+", "add"),
    (b"-", "del"),
    (b"@@", "hunk"),
)


def _diff_line(line: bytes) -> str:
    text = esc(line.decode("utf-8", "replace"))
    for prefix, cls in _DIFF_CLASSES:
        if line.startswith(prefix):
            return f'<span class="{cls}">{text}</span>\n'
    return text + "\n"
