"""Server-rendered HTML pages of the public face (no JavaScript).

Every page is sent with :data:`HTML_HEADERS`: a ``Content-Security-Policy``
that allows nothing but the pages' own inline stylesheet (by its hash; no
script, no frames, no forms), ``nosniff``, ``X-Frame-Options: DENY`` and
``Referrer-Policy: same-origin``.

``/`` says what the store is; ``/bzr/`` lists the codebases; a codebase page
lists its branches with the command to branch each; a branch page shows its
recent history (paged) and tags (at most :data:`MAX_TAGS`; unreadable
tags are said to be so); revision and compare pages are in
:mod:`.browser.revision`, the other views in :mod:`.browser`.  Every value that comes
from a repository or a request is escaped with :func:`esc` (which also
replaces control characters and lone surrogates); a revision's text, date,
authors or bugs that cannot be read are shown as unreadable, never an error.
"""

from __future__ import annotations

import datetime
import logging
import threading
import urllib.parse
from collections import OrderedDict
from typing import TYPE_CHECKING

import jinja2
from breezy import errors, osutils
from breezy.revision import NULL_REVISION, Revision

from ..store import diff, history, layout
from .browser import caching, render, urls
from .browser.twins import json_response, revid_text, scope, wants_json
from .http import HTTPError, Request

if TYPE_CHECKING:
    from .face import Face

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "HTML_HEADERS",
    "MAX_TAGS",
    "PAGE_SIZE",
    "branch_page",
    "codebase_list_page",
    "codebase_page",
    "diff_slot",
    "home_page",
]

#: Revisions per page of a branch's history.
PAGE_SIZE = 50
#: Tags listed on a branch page (the first by name; the rest are counted).
MAX_TAGS = 200
#: Bytes of (HTML) diff on a revision page before the rest is left out.
PAGE_DIFF_LIMIT = 1024 * 1024
#: Seconds a client refused a diff for want of a stream slot is told to
#: wait (the same as a refused smart stream, ``face.RETRY_AFTER``).
RETRY_AFTER = 10
HTML_TYPE = "text/html; charset=utf-8"

logger = logging.getLogger(__name__)

#: The pages' policy and headers (see :mod:`.browser.render`).
CONTENT_SECURITY_POLICY = render.CONTENT_SECURITY_POLICY
HTML_HEADERS = render.HTML_HEADERS
_UNSHOWABLE = render.UNSHOWABLE
esc = render.esc


def page(title: str, crumbs: list[tuple[str, str | None]], body: str) -> bytes:
    """A whole HTML document: the shared header, ``body`` (markup) and footer."""
    return render.render(
        "base.html", title=title, crumbs=crumbs, body=render.markup(body)
    )


def respond_html(req: Request, body: bytes) -> list[bytes]:
    return render.respond(req, body)


# -- URLs --


def _branch_path(codebase: str, segments: tuple[str, ...]) -> str:
    return "/" + "/".join((codebase, *segments)) + "/"


def _location(codebase: str, segments: tuple[str, ...]) -> str:
    return "/".join((codebase, *segments))


# -- formatting --


#: What a page shows for a value of a revision that cannot be read.
UNREADABLE = "unreadable"


def _unreadable(detail: str = "") -> str:
    """``unreadable``, with ``detail`` (the stored value) in parentheses."""
    shown = f" ({detail})" if detail else ""
    return f'<span class="note">{UNREADABLE}{esc(shown)}</span>'


def _raw(value: object, limit: int = 80) -> str:
    """A value as it was stored, shortened."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "?"
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _date(rev: Revision) -> str:
    """The revision's date in its own offset; unreadable if out of range."""
    try:
        timestamp = float(rev.timestamp)
        tz = int(rev.timezone or 0)
        when = datetime.datetime.fromtimestamp(
            timestamp, datetime.timezone(datetime.timedelta(seconds=tz))
        )
        shown = osutils.format_date(
            timestamp, tz, date_fmt="%Y-%m-%d %H:%M:%S", show_offset=True
        )
    except (TypeError, ValueError, OverflowError, OSError):
        return _unreadable(
            f"timestamp {_raw(rev.timestamp)}, offset {_raw(rev.timezone)}"
        )
    return f'<time datetime="{esc(when.isoformat())}">{esc(shown)}</time>'


def _revid_text(revid: bytes) -> str:
    return revid.decode("utf-8", "replace")


def _rev_link(base: str, codebase: str, revid: bytes) -> str:
    href = base + history.revision_path(codebase, revid)
    return f'<a href="{esc(href)}"><code>{esc(_revid_text(revid))}</code></a>'


def _author(rev: Revision) -> str:
    """The apparent authors, escaped."""
    try:
        return esc(", ".join(map(str, rev.get_apparent_authors())))
    except (AttributeError, TypeError):  # an author property that is not text
        return _unreadable()


def _summary(rev: Revision) -> str:
    """The first line of the message, escaped."""
    try:
        return esc(rev.get_summary())
    except (AttributeError, TypeError):  # a message that is not text
        return _unreadable()


def _bugs(rev: Revision) -> str | None:
    """The bugs property as links' text, escaped; None when there is none."""
    raw = rev.properties.get("bugs")
    if raw is None:
        return None
    try:
        bugs = [f"{esc(url)} ({esc(status)})" for url, status in rev.iter_bugs()]
    except (errors.BzrError, AttributeError, TypeError, ValueError):
        return _unreadable(_raw(raw))  # breezy's parser refuses the property
    return ", ".join(bugs)


# -- pages --


def _revlink_filter(context, revid: bytes):
    return render.markup(_rev_link(context["base"], context["codebase"], revid))


render.ENV.filters.update(
    date=lambda rev: render.markup(_date(rev)),
    author=lambda rev: render.markup(_author(rev)),
    summary=lambda rev: render.markup(_summary(rev)),
    revlink=jinja2.pass_context(_revlink_filter),
    revquote=lambda revid, path=False: urllib.parse.quote(
        revid, safe="@:+-._~/" if path else "@:-._~"
    ),
)
render.ENV.globals.update(unreadable=lambda: render.markup(_unreadable()))

#: Codebases per page of the codebase list.
CODEBASES_PAGE_SIZE = 500


def home_page(face: Face, req: Request) -> list[bytes]:
    count = len(face.storage.codebases())
    body = render.render(
        "home.html",
        title="Debian Janitor: Bazaar branches",
        crumbs=[("Home", None)],
        root=face.public_root(req),
        base=face.branches_base(req),
        count=count,
    )
    return respond_html(req, body)


class Pager:
    """Links to the previous and next page of a list (``?page=N``)."""

    def __init__(
        self, number: int, has_next: bool, query: str = "", key: str = "page"
    ) -> None:
        self.previous = f"?{query}{key}={number - 1}" if number > 1 else None
        self.next = f"?{query}{key}={number + 1}" if has_next else None


def codebase_list_page(face: Face, req: Request, names: list[str]) -> list[bytes]:
    number = _page_number(req)
    start = (number - 1) * CODEBASES_PAGE_SIZE
    if number > 1 and start >= len(names):
        raise HTTPError(404, f"no page {number}: there are {len(names)} codebases")
    shown = names[start : start + CODEBASES_PAGE_SIZE]
    pager = Pager(number, start + CODEBASES_PAGE_SIZE < len(names))
    pager.previous_text, pager.next_text = "Previous", "Next"
    body = render.render(
        "codebases.html",
        title="Codebases",
        crumbs=[("Home", face.home(req)), ("bzr", None)],
        base=face.branches_base(req),
        names=shown,
        count=len(names),
        first=start + 1,
        pager=pager,
    )
    return respond_html(req, body)


def open_codebase(face: Face, codebase: str, *, inaccessible: bool = False):
    """The repository of ``codebase``, or a 404.

    :param inaccessible: answer a codebase the policy lists (the janitor's
        database knows it) whose repository is missing with a 503 ("temporarily
        inaccessible", as the janitor's API clients expect) rather than 404.
        A policy admitting every name lists none: 404.
    """
    face.codebase(codebase, inaccessible=inaccessible)
    try:
        return history.open_repository(face.storage, codebase, face.campaigns)
    except history.NoRepository:  # gone since
        raise face.missing(codebase, inaccessible=inaccessible) from None


def codebase_page(face: Face, req: Request, codebase: str) -> list[bytes]:
    repo = open_codebase(face, codebase)
    base = face.branches_base(req)
    root = face.public_root(req)
    refs = history.branches(face.storage, codebase, face.campaigns)
    tips = []
    for ref in refs:
        if ref.branch is None:  # a branch reference or stacked: not followed
            tips.append((0, NULL_REVISION))
            continue
        with ref.branch.lock_read():
            tips.append(ref.branch.last_revision_info())
    as_json = wants_json(req)
    tag = caching.etag(
        "codebase",
        *scope(face, repo),
        codebase,
        as_json,
        face.public_root(req),
        *(
            x
            for ref, tip in zip(refs, tips)
            for x in (*ref.segments, ref.refused, *tip)
        ),
    )
    cached = caching.not_modified(req, tag, caching.REVALIDATE)
    if cached is not None:
        return cached
    revids = sorted({revid for _, revid in tips if revid != NULL_REVISION})
    with repo.lock_read():
        present = sorted(repo.has_revisions(revids))
    revisions = dict(zip(present, history.read_revisions(repo, present)))
    base_ref, against = _against_base(repo, refs, tips, set(present))
    rows = []
    for ref, (revno, revid) in zip(refs, tips):
        rev = revisions.get(revid)
        if rev is not None:
            state = "ok"
        elif revid in revisions:
            state = "unreadable"
        elif revid == NULL_REVISION:
            state = "empty"
        else:
            state = "missing"
        rows.append(
            {
                "href": base + _branch_path(codebase, ref.segments),
                "url": f"{root}/bzr/{_location(codebase, ref.segments)}",
                "name": "/".join(ref.segments),
                "role": ref.role,
                "refused": ref.refused,
                "revno": revno,
                "revid": revid,
                "rev": rev,
                "state": state,
                "is_base": ref is base_ref,
                **against.get(id(ref), {}),
            }
        )
    if as_json:
        return json_response(
            req,
            {
                "codebase": codebase,
                "base": "/".join(base_ref.segments) if base_ref is not None else None,
                "branches": [
                    {
                        "name": row["name"],
                        "role": row["role"],
                        "url": row["url"],
                        "refused": row["refused"],
                        "revno": row["revno"] if row["refused"] is None else None,
                        "tip": revid_text(row["revid"])
                        if row["state"] != "empty" and row["refused"] is None
                        else None,
                        "ahead": row.get("ahead"),
                        "behind": row.get("behind"),
                        "merge_base": revid_text(row.get("merge_base")),
                    }
                    for row in rows
                ],
            },
            caching.headers(tag, caching.REVALIDATE),
        )
    body = render.render(
        "codebase.html",
        title=codebase,
        crumbs=[("Home", face.home(req)), ("bzr", base + "/"), (codebase, None)],
        base=base,
        codebase=codebase,
        rows=rows,
        base_name="/".join(base_ref.segments) if base_ref is not None else None,
    )
    return render.respond(req, body, headers=caching.headers(tag, caching.REVALIDATE))


def _base_branch(refs: list) -> object | None:
    """The codebase's base branch: a cache branch ``VENDOR/latest``, else
    ``main``; None when it has neither."""
    for ref in refs:
        if ref.role == "latest" and ref.branch is not None:
            return ref
    for ref in refs:
        if ref.segments == ("main",) and ref.branch is not None:
            return ref
    return None


def _against_base(repo, refs: list, tips: list, present: set) -> tuple:
    """The base branch, and for each other branch (by ``id``) how many
    revisions it has that the base lacks (``ahead``), the base has that it
    lacks (``behind``), and the merge base (``merge_base``)."""
    base_ref = _base_branch(refs)
    if base_ref is None:
        return None, {}
    base_tip = tips[refs.index(base_ref)][1]
    if base_tip not in present:
        return base_ref, {}
    found = {}
    with repo.lock_read():
        graph = repo.get_graph()
        for ref, (_, tip) in zip(refs, tips):
            if ref is base_ref or ref.branch is None or tip not in present:
                continue
            try:
                behind, ahead = graph.find_difference(base_tip, tip)
                merge_base = graph.find_unique_lca(base_tip, tip)
            except errors.BzrError:  # ghosts, unreadable graph data
                continue
            found[id(ref)] = {
                "ahead": len(ahead),
                "behind": len(behind),
                "merge_base": merge_base,
            }
    return base_ref, found


def branch_page(
    face: Face, req: Request, codebase: str, campaign: str, role: str | None
) -> list[bytes]:
    repo = open_codebase(face, codebase)
    face.admit_campaign(campaign)
    segments = layout.branch_segments(campaign, role)
    try:
        branch = history.open_branch(
            face.storage, codebase, segments, face.campaigns, repo
        )
    except history.RefusedBranch as e:
        raise HTTPError(409, f"{codebase}/{e}") from None
    if branch is None:
        raise HTTPError(404, f"no such branch: {_location(codebase, segments)}")
    number = _page_number(req)
    tag_number = _page_number(req, "tags")
    base = face.branches_base(req)
    with branch.lock_read():
        tip_revno, tip = branch.last_revision_info()
        tags = _tags(branch)
    as_json = wants_json(req)
    tag = caching.etag(
        "branch",
        *scope(face, repo),
        codebase,
        as_json,
        face.public_root(req),
        *segments,
        tip,
        tip_revno,
        number,
        tag_number,
        *(caching.pairs(tags) if tags is not None else ["unreadable"]),
    )
    cached = caching.not_modified(req, tag, caching.REVALIDATE)
    if cached is not None:
        return cached
    start = (number - 1) * PAGE_SIZE
    line = _mainline_to(repo, codebase, tip, start + PAGE_SIZE + 1)
    if number > 1 and start >= len(line):
        raise HTTPError(404, f"no page {number}: the history has {len(line)} revisions")
    shown = line[start : start + PAGE_SIZE]
    with repo.lock_read():
        present = repo.has_revisions(shown)
    # bad data on disk (a tip or parent not in the repository) ends the history
    ghost = next((revid for revid in shown if revid not in present), None)
    if ghost is not None:
        shown = shown[: shown.index(ghost)]
    rows = [
        (tip_revno - start - i, revid, rev)
        for i, (revid, rev) in enumerate(history.iter_revisions(repo, shown))
    ]
    tag_count = 0 if tags is None else len(tags)
    tag_start = (tag_number - 1) * MAX_TAGS
    if tag_number > 1 and tag_start >= tag_count:
        raise HTTPError(404, f"no page {tag_number} of tags: there are {tag_count}")
    tag_pager = []
    if tag_number > 1:
        tag_pager.append(("Previous tags", f"?tags={tag_number - 1}"))
    if tag_start + MAX_TAGS < tag_count:
        tag_pager.append(("More tags", f"?tags={tag_number + 1}"))
    location = _location(codebase, segments)
    if as_json:
        return json_response(
            req,
            {
                "branch": location,
                "tip": revid_text(tip) if tip != NULL_REVISION else None,
                "revno": tip_revno,
                "page": number,
                "next_page": number + 1 if start + PAGE_SIZE < len(line) else None,
                "revisions": [
                    {"revno": revno, "revision": revid_text(revid)}
                    for revno, revid, _ in rows
                ],
                "tags": None
                if tags is None
                else {
                    n: revid_text(r) for n, r in tags[tag_start : tag_start + MAX_TAGS]
                },
                "tag_count": tag_count,
            },
            caching.headers(tag, caching.REVALIDATE),
        )
    has_tip = tip != NULL_REVISION and history.has_revision(repo, tip)
    body = render.render(
        "branch.html",
        title=location,
        crumbs=[
            ("Home", face.home(req)),
            ("bzr", base + "/"),
            (codebase, base + _branch_path(codebase, ())),
            *((s, None) for s in segments),
        ],
        base=base,
        codebase=codebase,
        location=location,
        branch_name="/".join(segments),
        url=f"{face.public_root(req)}/bzr/{location}",
        tip_href=base + urls.tree(codebase, tip) if has_tip else None,
        tarball_href=base + urls.tarball(codebase, tip) if has_tip else None,
        tip_revno=tip_revno,
        ghost=_revid_text(ghost) if ghost is not None else None,
        rows=rows,
        pager=Pager(number, start + PAGE_SIZE < len(line)),
        tags=None if tags is None else tags[tag_start : tag_start + MAX_TAGS],
        tag_count=tag_count,
        tag_first=tag_start + 1,
        tag_pager=tag_pager,
        feeds=[
            (f"{location}: latest revisions", f"{base}/{location}/+atom"),
            (f"{campaign}: latest branch tips", f"{base}/+atom/{campaign}"),
        ],
    )
    return render.respond(req, body, headers=caching.headers(tag, caching.REVALIDATE))


def empty_directory_page(
    face: Face, req: Request, codebase: str, segments: tuple[str, ...]
) -> list[bytes]:
    """A campaign or role directory a writer may create: no branch yet."""
    base = face.branches_base(req)
    title = _location(codebase, segments)
    body = render.render(
        "nobranch.html",
        title=title,
        crumbs=[
            ("Home", face.home(req)),
            ("bzr", base + "/"),
            (codebase, base + _branch_path(codebase, ())),
            *((s, None) for s in segments),
        ],
    )
    return respond_html(req, body)


#: Most revision ids kept in :func:`mainline`'s cache, all lines together.
MAINLINE_CACHE_REVISIONS = 1_000_000
_mainlines: OrderedDict[tuple[str, bytes], list[bytes]] = OrderedDict()
_mainlines_size = 0
_mainlines_lock = threading.Lock()
#: Revisions a branch page reads one by one from its tip rather than
#: the whole mainline at once (a few index lookups each, against reading
#: the whole ancestry: cheaper for the first pages of a long history).
PREFIX_WALK = 1000


def mainline(repo, codebase: str, tip: bytes) -> list[bytes]:
    """``history.mainline(repo, tip)``, kept in a bounded cache when it
    reaches the start of history (a line cut short by a missing revision
    may grow once the revision arrives; a whole one never changes)."""
    global _mainlines_size
    key = (codebase, tip)
    with _mainlines_lock:
        line = _mainlines.get(key)
        if line is not None:
            _mainlines.move_to_end(key)
            return line
    line = history.mainline(repo, tip)
    if not line or len(line) > MAINLINE_CACHE_REVISIONS:
        return line
    with repo.lock_read():
        parents = repo.get_parent_map([line[-1]]).get(line[-1])
    if parents is None or any(p != NULL_REVISION for p in parents[:1]):
        return line  # stopped at a revision not in the repository
    with _mainlines_lock:
        if key not in _mainlines:
            _mainlines[key] = line
            _mainlines_size += len(line)
        while _mainlines_size > MAINLINE_CACHE_REVISIONS:
            _, dropped = _mainlines.popitem(last=False)
            _mainlines_size -= len(dropped)
    return line


def _mainline_to(repo, codebase: str, tip: bytes, count: int) -> list[bytes]:
    """At least the first ``count`` revisions of ``tip``'s mainline (all of
    it when it is shorter): the whole line when it is cached or ``count``
    is over :data:`PREFIX_WALK`, else only those, read one by one."""
    with _mainlines_lock:
        line = _mainlines.get((codebase, tip))
    if line is not None or count > PREFIX_WALK:
        return line if line is not None else mainline(repo, codebase, tip)
    return history.lefthand_prefix(repo, tip, count)


def _tags(branch) -> list[tuple[str, bytes]] | None:
    """The branch's tags sorted by name; None when they cannot be read
    (a writer may store any bytes as its tags)."""
    try:
        tags = sorted(branch.tags.get_tag_dict().items())
    except Exception:  # whatever breezy's parser makes of bad bytes
        logger.debug("unreadable tags in %s", branch.base, exc_info=True)
        return None
    if all(isinstance(n, str) and isinstance(r, bytes) for n, r in tags):
        return tags
    return None


def _page_number(req: Request, key: str = "page") -> int:
    values = urllib.parse.parse_qs(req.environ.get("QUERY_STRING", "")).get(key)
    if not values:
        return 1
    value = values[-1]
    number = (
        int(value) if value.isascii() and value.isdigit() and len(value) < 10 else 0
    )
    if number < 1:
        raise HTTPError(400, f"{key} must be a positive number")
    return number


def diff_slot(face: Face) -> diff.Slot:
    """A slot of ``face.stream_budget`` for a diff, or a ``503`` telling the
    client to retry after :data:`RETRY_AFTER` seconds."""
    try:
        return diff.Slot(face.stream_budget)
    except diff.Busy as e:
        raise HTTPError(
            503, f"{e}; retry later", [("Retry-After", str(RETRY_AFTER))]
        ) from None
