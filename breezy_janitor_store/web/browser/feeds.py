"""Atom feeds: a branch's latest revisions, and a campaign's latest tips.

``GET /bzr/CODEBASE/CAMPAIGN[/ROLE]/+atom``: the newest
:data:`FEED_ENTRIES` revisions of the branch's mainline.

``GET /bzr/+atom/CAMPAIGN``: the campaign's branches across codebases
whose tips moved last (by the time their ``last-revision`` file changed,
read through each codebase's jail; at most :data:`MAX_SCANNED` codebases
are looked at; the scan is reused for :data:`SCAN_TTL` seconds), newest
first.  Both carry an ``ETag`` of what they show.
"""

from __future__ import annotations

import datetime
import threading
import time
from typing import TYPE_CHECKING

from breezy import errors
from breezy.revision import NULL_REVISION

from ...store import history, layout
from ..http import HTTPError, Request
from . import caching, common, render

if TYPE_CHECKING:
    from ..face import Face

__all__ = ["ATOM_TYPE", "branch_feed", "campaign_feed"]

ATOM_TYPE = "application/atom+xml; charset=utf-8"
FEED_ENTRIES = 20
MAX_SCANNED = 100_000


def _when(rev) -> str:
    try:
        tz = datetime.timezone(datetime.timedelta(seconds=int(rev.timezone or 0)))
        return datetime.datetime.fromtimestamp(float(rev.timestamp), tz).isoformat()
    except (TypeError, ValueError, OverflowError, OSError, AttributeError):
        return "1970-01-01T00:00:00+00:00"


def _text(call, default: str = "") -> str:
    try:
        return str(call())
    except (AttributeError, TypeError, ValueError):
        return default


def _entry(root: str, codebase: str, revid: bytes, rev, title_prefix: str = "") -> dict:
    url = root + "/bzr" + history.revision_path(codebase, revid)
    return {
        "id": url,
        "url": url,
        "title": title_prefix
        + (_text(rev.get_summary, "(unreadable)") if rev else "(unreadable)"),
        "updated": _when(rev) if rev else "1970-01-01T00:00:00+00:00",
        "authors": _text(lambda: ", ".join(rev.get_apparent_authors()), "unknown")
        if rev
        else "unknown",
        "message": _text(lambda: rev.message or "") if rev else "",
    }


def _respond(req: Request, tag: str, **context: object) -> list[bytes]:
    cached = caching.not_modified(req, tag, caching.REVALIDATE)
    if cached is not None:
        return cached
    body = render.render("feed.xml", **context)
    req.respond(
        200,
        ATOM_TYPE,
        [
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            *caching.headers(tag, caching.REVALIDATE),
        ],
    )
    return [body]


def branch_feed(
    face: Face, req: Request, codebase: str, campaign: str, role: str | None = None
) -> list[bytes]:
    repo = common.repository(face, codebase)
    if campaign not in face.campaigns:
        raise HTTPError(404, f"unknown campaign: {campaign}")
    segments = (campaign,) if role in (None, layout.MAIN_ROLE) else (campaign, role)
    try:
        branch = history.open_branch(
            face.storage, codebase, segments, face.campaigns, repo
        )
    except history.RefusedBranch as e:
        raise HTTPError(409, f"{codebase}/{e}") from None
    if branch is None:
        raise HTTPError(404, f"no such branch: {'/'.join((codebase, *segments))}")
    with branch.lock_read():
        tip = branch.last_revision()
    tag = caching.etag("atom", codebase, *segments, tip, *common.scope(face, repo))
    line = history.mainline(repo, tip)[:FEED_ENTRIES] if tip != NULL_REVISION else []
    with repo.lock_read():
        present = repo.has_revisions(line)
    line = [r for r in line if r in present]
    root = face.public_root(req)
    entries = [
        _entry(root, codebase, r, rev) for r, rev in history.iter_revisions(repo, line)
    ]
    location = "/".join((codebase, *segments))
    return _respond(
        req,
        tag,
        feed_id=f"{root}/bzr/{location}/+atom",
        title=f"{location}: latest revisions",
        alternate=f"{root}/bzr/{location}/",
        updated=entries[0]["updated"] if entries else "1970-01-01T00:00:00+00:00",
        entries=entries,
    )


#: Seconds a campaign's scan of the codebases is reused (it reads one
#: ``stat`` a codebase: with many thousands, too much for every request).
SCAN_TTL = 30.0
_scans: dict[tuple[int, str], tuple[float, list[tuple[float, str]]]] = {}
_scans_lock = threading.Lock()


def _moved(face: Face, campaign: str) -> list[tuple[float, str]]:
    """``(mtime of last-revision, codebase)`` of the campaign's branches,
    newest first; reused for :data:`SCAN_TTL` seconds."""
    key = (id(face), campaign)
    now = time.monotonic()
    with _scans_lock:
        found = _scans.get(key)
        if found is not None and now - found[0] < SCAN_TTL:
            return found[1]
    marker = f"{campaign}/.bzr/branch/last-revision"
    moved = []
    for codebase in face.storage.codebases()[:MAX_SCANNED]:
        if not face.codebase_policy.codebase_exists(codebase):
            continue
        try:
            jail = face.storage.transport(
                codebase, writable=False, is_campaign=face.campaigns.__contains__
            )
            moved.append((jail.stat(marker).st_mtime, codebase))
        except (errors.PathError, errors.TransportError, OSError):
            continue
    moved.sort(reverse=True)
    with _scans_lock:
        if len(_scans) > 1000:
            _scans.clear()
        _scans[key] = (now, moved)
    return moved


def campaign_feed(face: Face, req: Request, campaign: str) -> list[bytes]:
    if campaign not in face.campaigns:
        raise HTTPError(404, f"unknown campaign: {campaign}")
    moved = _moved(face, campaign)
    root = face.public_root(req)
    entries, shown = [], []
    for _, codebase in moved:
        if len(entries) >= FEED_ENTRIES:
            break
        try:
            repo = history.open_repository(face.storage, codebase, face.campaigns)
            branch = history.open_branch(
                face.storage, codebase, (campaign,), face.campaigns, repo
            )
        except (history.NoRepository, history.RefusedBranch):
            continue
        if branch is None:
            continue
        with branch.lock_read():
            tip = branch.last_revision()
        if tip == NULL_REVISION or not history.has_revision(repo, tip):
            continue
        (rev,) = history.read_revisions(repo, [tip])
        entries.append(_entry(root, codebase, tip, rev, f"{codebase}: "))
        shown.append((codebase, tip))
    entries.sort(key=lambda e: e["updated"], reverse=True)
    tag = caching.etag(
        "campaign-atom", campaign, *caching.pairs(shown), *common.scope(face, None)
    )
    return _respond(
        req,
        tag,
        feed_id=f"{root}/bzr/+atom/{campaign}",
        title=f"{campaign}: latest branch tips",
        alternate=f"{root}/bzr/",
        updated=entries[0]["updated"] if entries else "1970-01-01T00:00:00+00:00",
        entries=entries,
    )
