"""Server-rendered HTML pages of the public face (no JavaScript).

Every page is sent with :data:`HTML_HEADERS`: a ``Content-Security-Policy``
that allows nothing but the pages' own inline stylesheet (by its hash; no
script, no frames, no forms), ``nosniff``, ``X-Frame-Options: DENY`` and
``Referrer-Policy: same-origin``.

``/`` says what the store is; ``/bzr/`` lists the codebases; a codebase page
lists its branches with the command to branch each; a branch page shows its
recent history (paged) and tags (at most :data:`MAX_TAGS`; unreadable
tags are said to be so); a revision page shows its message,
metadata and the diff against its left-hand parent.  Every value that comes
from a repository or a request is escaped with :func:`esc` (which also
replaces control characters and lone surrogates); a revision's text, date,
authors or bugs that cannot be read are shown as unreadable, never an error.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from wsgiref.util import application_uri

import jinja2
from breezy import errors, osutils
from breezy.revision import NULL_REVISION, Revision

from . import diff, history, layout
from .browser import caching, render, urls
from .browser.twins import json_response, revid_text, scope, wants_json
from .http import HTTPError, Request
from .policies import is_listed

if TYPE_CHECKING:
    from .app import StoreApp

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
    "public_root",
    "revision_page",
]

#: Revisions per page of a branch's history.
PAGE_SIZE = 50
#: Tags listed on a branch page (the first by name; the rest are counted).
MAX_TAGS = 200
#: Bytes of (HTML) diff on a revision page before the rest is left out.
PAGE_DIFF_LIMIT = 1024 * 1024
#: Seconds a client refused a diff for want of a stream slot is told to
#: wait (the same as a refused smart stream, ``app.RETRY_AFTER``).
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


#: A ``Host`` header links may be built from: a host name, an IPv4 or a
#: bracketed IPv6 address, and an optional port.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


def public_root(app: StoreApp, req: Request) -> str:
    """Absolute URL of the public face's root, without a trailing slash.

    ``app.public_url`` when set, else (on the public face) derived from the
    request: its ``Host`` when that is a host name or address with an
    optional port, else the server's own name and port (a client still
    chooses which valid host name links show: set ``public_url`` behind a
    cache).  On the admin face without ``public_url``, ``""`` (links are
    then root-relative: the public face is assumed to share the host).
    """
    configured = getattr(app, "public_url", None)
    if configured:
        return configured.rstrip("/")
    if app.face == "public":
        environ = req.environ
        if not _HOST.fullmatch(environ.get("HTTP_HOST", "")):
            # not a host name or address: the address the server listens on
            environ = {k: v for k, v in environ.items() if k != "HTTP_HOST"}
        return application_uri(environ).rstrip("/")
    return ""


def _base(app: StoreApp, req: Request) -> str:
    """Path (or URL, on the admin face) of ``/bzr`` for links in pages."""
    if app.face == "public":
        return req.environ.get("SCRIPT_NAME", "").rstrip("/") + app.prefix
    return public_root(app, req) + "/bzr"


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


def home_page(app: StoreApp, req: Request) -> list[bytes]:
    count = len(app.storage.codebases())
    body = render.render(
        "home.html",
        title="Debian Janitor: Bazaar branches",
        crumbs=[("Home", None)],
        root=public_root(app, req),
        base=_base(app, req),
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


def codebase_list_page(app: StoreApp, req: Request, names: list[str]) -> list[bytes]:
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
        crumbs=[("Home", _home(app, req)), ("bzr", None)],
        base=_base(app, req),
        names=shown,
        count=len(names),
        first=start + 1,
        pager=pager,
    )
    return respond_html(req, body)


def _home(app: StoreApp, req: Request) -> str | None:
    if app.face == "public":
        return req.environ.get("SCRIPT_NAME", "") + "/"
    return None


def open_codebase(app: StoreApp, codebase: str, *, inaccessible: bool = False):
    """The repository of ``codebase``, or a 404.

    :param inaccessible: answer a codebase the policy lists (the janitor's
        database) but whose repository is missing with 503 ("temporarily
        inaccessible", as the janitor's API clients expect) rather than 404.
        A policy admitting every name lists none: 404.
    """
    if not layout.is_valid_name(codebase) or not app.codebase_policy.codebase_exists(
        codebase
    ):
        raise HTTPError(404, f"no such codebase: {codebase}")
    try:
        return history.open_repository(app.storage, codebase, app.campaigns)
    except history.NoRepository:
        if inaccessible and is_listed(app.codebase_policy, codebase):
            raise HTTPError(
                503, f"the repository of {codebase} is temporarily inaccessible"
            ) from None
        raise HTTPError(404, f"no such codebase: {codebase}") from None


def codebase_page(app: StoreApp, req: Request, codebase: str) -> list[bytes]:
    repo = open_codebase(app, codebase)
    base = _base(app, req)
    root = public_root(app, req)
    refs = history.branches(app.storage, codebase, app.campaigns)
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
        *scope(app, repo),
        codebase,
        as_json,
        public_root(app, req),
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
        crumbs=[("Home", _home(app, req)), ("bzr", base + "/"), (codebase, None)],
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
    app: StoreApp, req: Request, codebase: str, campaign: str, role: str | None
) -> list[bytes]:
    repo = open_codebase(app, codebase)
    if campaign not in app.campaigns:
        raise HTTPError(404, f"unknown campaign: {campaign}")
    segments = (campaign,) if role in (None, layout.MAIN_ROLE) else (campaign, role)
    try:
        branch = history.open_branch(
            app.storage, codebase, segments, app.campaigns, repo
        )
    except history.RefusedBranch as e:
        raise HTTPError(409, f"{codebase}/{e}") from None
    if branch is None:
        raise HTTPError(404, f"no such branch: {_location(codebase, segments)}")
    number = _page_number(req)
    tag_number = _page_number(req, "tags")
    base = _base(app, req)
    with branch.lock_read():
        tip_revno, tip = branch.last_revision_info()
        tags = _tags(branch)
    as_json = wants_json(req)
    tag = caching.etag(
        "branch",
        *scope(app, repo),
        codebase,
        as_json,
        public_root(app, req),
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
    line = mainline(repo, codebase, tip)
    start = (number - 1) * PAGE_SIZE
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
            ("Home", _home(app, req)),
            ("bzr", base + "/"),
            (codebase, base + _branch_path(codebase, ())),
            *((s, None) for s in segments),
        ],
        base=base,
        codebase=codebase,
        location=location,
        branch_name="/".join(segments),
        url=f"{public_root(app, req)}/bzr/{location}",
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
    app: StoreApp, req: Request, codebase: str, segments: tuple[str, ...]
) -> list[bytes]:
    """A campaign or role directory a writer may create: no branch yet."""
    base = _base(app, req)
    title = _location(codebase, segments)
    body = render.render(
        "nobranch.html",
        title=title,
        crumbs=[
            ("Home", _home(app, req)),
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


#: Changed files listed above a diff; merged revisions listed on a page.
MAX_CHANGED = 1000
MAX_MERGED = 100


def revision_page(
    app: StoreApp,
    req: Request,
    codebase: str,
    revid: bytes,
    branch: tuple[str, ...] | None = None,
) -> Iterable[bytes]:
    """The revision's message and metadata (each shown as unreadable when
    it cannot be read), the files it changed, the revisions it merged, and
    its diff against its left-hand parent (as the repository's graph has
    it) in a slot of ``app.stream_budget``."""
    repo = open_codebase(app, codebase)
    if revid == NULL_REVISION or not history.has_revision(repo, revid):
        raise HTTPError(404, f"no such revision: {_revid_text(revid)}")
    as_json = wants_json(req)
    on_branch = (
        _on_branch(app, repo, codebase, revid, branch) if branch is not None else None
    )
    tag = caching.etag(
        "revision",
        *scope(app, repo),
        codebase,
        revid,
        as_json,
        *(on_branch or ()),
        *_diff_settings(app),
    )
    cache = caching.IMMUTABLE if on_branch is None else caching.REVALIDATE
    cached = caching.not_modified(req, tag, cache)
    if cached is not None:
        return cached
    (rev,) = history.read_revisions(repo, [revid])
    parent_ids = history.parents(repo, revid)
    if as_json:
        return _revision_json(req, repo, revid, rev, parent_ids, tag)
    base = _base(app, req)
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
        app,
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
            ("Home", _home(app, req)),
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


def _diff_settings(app: StoreApp) -> tuple:
    """What a page's diff depends on besides its revisions (for its ETag)."""
    return (repr(app.diff_limits), app.diff_timeout, PAGE_DIFF_LIMIT)


def _open_named_branch(app, repo, codebase: str, segments: tuple[str, ...]):
    """The branch ``CODEBASE/CAMPAIGN[/ROLE]`` (404, 409 as the branch page)."""
    if segments[0] not in app.campaigns:
        raise HTTPError(404, f"unknown campaign: {segments[0]}")
    try:
        branch = history.open_branch(
            app.storage, codebase, segments, app.campaigns, repo
        )
    except history.RefusedBranch as e:
        raise HTTPError(409, f"{codebase}/{e}") from None
    if branch is None:
        raise HTTPError(404, f"no such branch: {_location(codebase, segments)}")
    return branch


def _on_branch(app, repo, codebase: str, revid: bytes, segments) -> tuple:
    """``(branch name, tip, revno, older, newer)`` of ``revid`` on the
    mainline of ``CODEBASE/segments`` (404 if it is not on it)."""
    branch = _open_named_branch(app, repo, codebase, segments)
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
    app: StoreApp,
    req: Request,
    codebase: str,
    campaign: str,
    revno: str,
    role: str | None = None,
) -> Iterable[bytes]:
    """``/bzr/CODEBASE/CAMPAIGN[/ROLE]/+revno/N``: the revision page of the
    branch's mainline revision number N, with its neighbours there."""
    repo = open_codebase(app, codebase)
    segments = (campaign,) if role in (None, layout.MAIN_ROLE) else (campaign, role)
    branch = _open_named_branch(app, repo, codebase, segments)
    with branch.lock_read():
        tip = branch.last_revision()
    line = mainline(repo, codebase, tip)
    number = int(revno)
    if not 1 <= number <= len(line):
        raise HTTPError(
            404,
            f"no revno {number} on {_location(codebase, segments)}: it has {len(line)}",
        )
    return revision_page(app, req, codebase, line[len(line) - number], segments)


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
    app: StoreApp, req: Request, codebase: str, old: bytes, new: bytes
) -> Iterable[bytes]:
    """What ``new`` has that ``old`` lacks: its revisions (the left-hand
    line first) and the diff from ``old`` to ``new``."""
    repo = open_codebase(app, codebase)
    for revid in (old, new):
        if not history.has_revision(repo, revid):
            raise HTTPError(404, f"no such revision: {_revid_text(revid)}")
    tag = caching.etag(
        "compare", codebase, old, new, *_diff_settings(app), *scope(app, repo)
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
    base = _base(app, req)
    return _diff_page(
        app,
        req,
        repo,
        codebase,
        old,
        new,
        "compare.html",
        tag,
        title=f"{codebase}: compare",
        crumbs=[
            ("Home", _home(app, req)),
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
    app: StoreApp,
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
    (streamed, in a slot of ``app.stream_budget``), after the list of the
    files changed."""
    base = _base(app, req)
    old, new = old_revid, new_revid
    changes = _changes(repo, old, new)
    raw = urllib.parse.urlencode(
        {"old": old.decode("utf-8", "replace"), "new": new.decode("utf-8", "replace")}
    )
    slot = diff_slot(app)
    notes: list[str] = []
    chunks = _revision_diff(
        repo, old, new, app.diff_timeout, app.diff_limits, slot, notes
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


def diff_slot(app: StoreApp) -> diff.Slot:
    """A slot of ``app.stream_budget`` for a diff, or a ``503`` telling the
    client to retry after :data:`RETRY_AFTER` seconds."""
    try:
        return diff.Slot(app.stream_budget)
    except diff.Busy as e:
        raise HTTPError(
            503, f"{e}; retry later", [("Retry-After", str(RETRY_AFTER))]
        ) from None


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
