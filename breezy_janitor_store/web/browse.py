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

import base64
import datetime
import hashlib
import html
import logging
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from breezy import errors, osutils
from breezy.revision import NULL_REVISION, Revision

from ..store import diff, history, layout
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

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d1d1d;background:#fff;line-height:1.4}
header{background:#2b4a6f;color:#fff;padding:.6em 1em}
header a{color:#fff;text-decoration:none}
header nav span+span::before{content:" / ";opacity:.7}
main{padding:1em 1.5em;max-width:90em}
h1{font-size:1.5em;margin:.3em 0 .6em}
h2{font-size:1.2em;margin:1.2em 0 .4em}
table{border-collapse:collapse;margin:.4em 0}
th,td{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f5f8}
code,pre{font-family:ui-monospace,monospace;font-size:.92em}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap}
pre.diff{white-space:pre}
.cmd{background:#f6f8fa;padding:.15em .4em;user-select:all;word-break:break-all}
td time{white-space:nowrap}
td a code{word-break:break-all}
.add{background:#e6ffec}.del{background:#ffebe9}.hunk{color:#6639ba}.file{font-weight:bold}
.note{color:#7a4a00}
nav.pager a{margin-right:1em}
footer{color:#666;font-size:.85em;padding:1em 1.5em}
"""


_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode("utf-8")).digest())
#: Nothing but the pages' own inline stylesheet.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        f"style-src 'sha256-{_STYLE_HASH.decode('ascii')}'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
#: Response headers of every HTML page.
HTML_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
]


#: Characters shown as U+FFFD: controls (but tab, CR and LF) and lone
#: surrogates (bytes of a revision property that are not UTF-8).
_UNSHOWABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def esc(value: object) -> str:
    """``value`` as HTML text."""
    return html.escape(_UNSHOWABLE.sub("\ufffd", str(value)), quote=True)


def page(title: str, crumbs: list[tuple[str, str | None]], body: str) -> bytes:
    """A whole HTML document: the shared header, ``body`` and footer."""
    return (_page_head(title, crumbs) + body + _PAGE_FOOT).encode("utf-8")


def _page_head(title: str, crumbs: list[tuple[str, str | None]]) -> str:
    nav = "".join(
        f'<span><a href="{esc(href)}">{esc(text)}</a></span>'
        if href
        else f"<span>{esc(text)}</span>"
        for text, href in crumbs
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<header><nav>{nav}</nav></header>\n<main>\n"
    )


_PAGE_FOOT = (
    "</main>\n<footer>Bazaar branches of the Debian Janitor, served by "
    "breezy-janitor-store.</footer>\n</body>\n</html>\n"
)


def respond_html(req: Request, body: bytes) -> list[bytes]:
    req.respond(200, HTML_TYPE, [("Content-Length", str(len(body))), *HTML_HEADERS])
    return [body]


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


def home_page(face: Face, req: Request) -> list[bytes]:
    root = face.public_root(req)
    count = len(face.storage.codebases())
    body = (
        "<h1>Bazaar branches of the Debian Janitor</h1>\n"
        "<p>This store holds the Bazaar branches the Janitor builds: for each "
        "codebase a shared repository, and for each campaign its branch and "
        "the branches of its other roles.</p>\n"
        "<h2>Branching</h2>\n"
        '<p>Branch from it with <a href="https://www.breezy-vcs.org/">Breezy</a>:</p>\n'
        f'<pre class="cmd">brz branch {esc(root)}/bzr/CODEBASE/CAMPAIGN</pre>\n'
        f'<pre class="cmd">brz branch {esc(root)}/bzr/CODEBASE/CAMPAIGN/ROLE</pre>\n'
        f'<p>Browse the <a href="{esc(face.branches_base(req))}/">{count} '
        f"codebase{'s' if count != 1 else ''}</a>.</p>\n"
    )
    return respond_html(
        req, page("Debian Janitor: Bazaar branches", [("Home", None)], body)
    )


def codebase_list_page(face: Face, req: Request, names: list[str]) -> list[bytes]:
    base = face.branches_base(req)
    items = "".join(
        f'<li><a href="{esc(base)}/{esc(n)}/">{esc(n)}</a></li>\n' for n in names
    )
    body = (
        f"<h1>Codebases</h1>\n<p>{len(names)} codebase"
        f"{'s' if len(names) != 1 else ''}.</p>\n"
        + (f"<ul>\n{items}</ul>\n" if names else "")
    )
    crumbs = [("Home", face.home(req)), ("bzr", None)]
    return respond_html(req, page("Codebases", crumbs, body))


def open_codebase(face: Face, codebase: str, *, inaccessible: bool = False):
    """The repository of ``codebase``, or a 404.

    :param inaccessible: answer a codebase the policy lists (the janitor's
        database) but whose repository is missing with 503 ("temporarily
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
    root = face.branches_url(req)
    refs = history.branches(face.storage, codebase, face.campaigns)
    tips = []
    for ref in refs:
        if ref.branch is None:  # a branch reference or stacked: not followed
            tips.append((0, NULL_REVISION))
            continue
        with ref.branch.lock_read():
            tips.append(ref.branch.last_revision_info())
    revids = sorted({revid for _, revid in tips if revid != NULL_REVISION})
    with repo.lock_read():
        present = sorted(repo.has_revisions(revids))
    revisions = dict(zip(present, history.read_revisions(repo, present)))
    rows = []
    for ref, (revno, revid) in zip(refs, tips):
        href = base + _branch_path(codebase, ref.segments)
        url = f"{root}/{_location(codebase, ref.segments)}"
        rev = revisions.get(revid)
        if ref.refused is not None:
            tip = f'<td colspan="4">({esc(ref.refused)}: not followed)</td>'
        elif rev is None and revid in revisions:
            tip = (
                f"<td>{revno}</td><td>{_rev_link(base, codebase, revid)}</td>"
                f'<td colspan="2">{_unreadable()} revision</td>'
            )
        elif rev is None:
            tip = (
                '<td colspan="4">(no revisions)</td>'
                if revid == NULL_REVISION
                else (
                    f"<td>{revno}</td><td>{_rev_link(base, codebase, revid)}</td>"
                    '<td colspan="2">(revision not in the repository)</td>'
                )
            )
        else:
            tip = (
                f"<td>{revno}</td><td>{_rev_link(base, codebase, revid)}</td>"
                f"<td>{_date(rev)}</td><td>{_author(rev)}</td>"
            )
        summary = _summary(rev) if rev is not None else ""
        rows.append(
            f'<tr><td><a href="{esc(href)}">{esc("/".join(ref.segments))}</a></td>'
            f"<td>{esc(ref.role)}</td>{tip}<td>{summary}</td>"
            f'<td><code class="cmd">brz branch {esc(url)}</code></td></tr>\n'
        )
    if rows:
        body = (
            "<table>\n<thead><tr><th>Branch</th><th>Role</th><th>Revno</th>"
            "<th>Tip revision</th><th>Date</th><th>Author</th><th>Message</th>"
            "<th>Branch it</th></tr></thead>\n<tbody>\n"
            + "".join(rows)
            + "</tbody>\n</table>\n"
        )
    else:
        body = "<p>No branches yet.</p>\n"
    crumbs = [("Home", face.home(req)), ("bzr", base + "/"), (codebase, None)]
    return respond_html(
        req, page(f"{codebase}", crumbs, f"<h1>{esc(codebase)}</h1>\n" + body)
    )


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
    base = face.branches_base(req)
    with branch.lock_read():
        tip_revno, tip = branch.last_revision_info()
        tags = _tags(branch)
    line = history.mainline(repo, tip)
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
    rows = []
    for i, (revid, rev) in enumerate(history.iter_revisions(repo, shown)):
        cells = (
            f'<td colspan="3">{_unreadable()} revision</td>'
            if rev is None
            else f"<td>{_date(rev)}</td><td>{_author(rev)}</td><td>{_summary(rev)}</td>"
        )
        rows.append(
            f"<tr><td>{tip_revno - start - i}</td>{cells}"
            f"<td>{_rev_link(base, codebase, revid)}</td></tr>\n"
        )
    location = _location(codebase, segments)
    url = f"{face.branches_url(req)}/{location}"
    parts = [
        f"<h1>{esc(location)}</h1>\n",
        f'<p>Branch it: <code class="cmd">brz branch {esc(url)}</code></p>\n',
        (
            f"<h2>History</h2>\n<p>{tip_revno} revision"
            f"{'s' if tip_revno != 1 else ''} on the mainline.</p>\n"
        ),
    ]
    if ghost is not None:
        parts.append(
            f"<p>Revision {esc(_revid_text(ghost))} is not in the repository: "
            "the history stops there.</p>\n"
        )
    if rows:
        parts.append(
            "<table>\n<thead><tr><th>Revno</th><th>Date</th><th>Author</th>"
            "<th>Message</th><th>Revision id</th></tr></thead>\n<tbody>\n"
            + "".join(rows)
            + "</tbody>\n</table>\n"
        )
    pager = []
    if number > 1:
        pager.append(f'<a href="?page={number - 1}" rel="prev">Newer</a>')
    if start + PAGE_SIZE < len(line):
        pager.append(f'<a href="?page={number + 1}" rel="next">Older</a>')
    if pager:
        parts.append(f'<nav class="pager">{"".join(pager)}</nav>\n')
    parts.append("<h2>Tags</h2>\n")
    if tags is None:
        parts.append("<p>The tags of this branch cannot be read.</p>\n")
    elif tags:
        if len(tags) > MAX_TAGS:
            parts.append(
                f"<p>{len(tags)} tags; the first {MAX_TAGS} by name are shown.</p>\n"
            )
        parts.append(
            "<table>\n<thead><tr><th>Tag</th><th>Revision id</th></tr></thead>\n"
            "<tbody>\n"
            + "".join(
                f"<tr><td>{esc(name)}</td><td>{_rev_link(base, codebase, revid)}</td></tr>\n"
                for name, revid in tags[:MAX_TAGS]
            )
            + "</tbody>\n</table>\n"
        )
    else:
        parts.append("<p>No tags.</p>\n")
    crumbs = [
        ("Home", face.home(req)),
        ("bzr", base + "/"),
        (codebase, base + _branch_path(codebase, ())),
        *((s, None) for s in segments),
    ]
    return respond_html(req, page(location, crumbs, "".join(parts)))


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


def _page_number(req: Request) -> int:
    values = urllib.parse.parse_qs(req.environ.get("QUERY_STRING", "")).get("page")
    if not values:
        return 1
    try:
        number = int(values[-1])
    except ValueError:
        number = 0
    if number < 1:
        raise HTTPError(400, "page must be a positive number")
    return number


def revision_page(
    face: Face, req: Request, codebase: str, revid: bytes
) -> Iterable[bytes]:
    """The revision's message and metadata (each shown as unreadable when
    it cannot be read), and its diff against its left-hand parent (as the
    repository's graph has it) in a slot of ``face.stream_budget``."""
    repo = open_codebase(face, codebase)
    if revid == NULL_REVISION or not history.has_revision(repo, revid):
        raise HTTPError(404, f"no such revision: {_revid_text(revid)}")
    (rev,) = history.read_revisions(repo, [revid])
    parent_ids = history.parents(repo, revid)
    base = face.branches_base(req)
    parent = parent_ids[0] if parent_ids else NULL_REVISION
    meta = [("Revision id", f"<code>{esc(_revid_text(revid))}</code>")]
    if rev is None:
        meta.append(("Revision", f"{_unreadable()}: its text cannot be read"))
        title = summary = message = ""
    else:
        meta += [
            ("Committer", esc(rev.committer)),
            ("Author", _author(rev)),
            ("Date", _date(rev)),
        ]
        title = _UNSHOWABLE.sub("\ufffd", str(rev.get_summary()))
        summary = _summary(rev)
        message = esc(rev.message or "")
    meta.append(
        (
            "Parents",
            ", ".join(_rev_link(base, codebase, p) for p in parent_ids) or "none",
        )
    )
    bugs = _bugs(rev) if rev is not None else None
    if bugs:
        meta.append(("Bugs", bugs))
    crumbs = [
        ("Home", face.home(req)),
        ("bzr", base + "/"),
        (codebase, base + _branch_path(codebase, ())),
        ("revision", None),
    ]
    head = (
        _page_head(f"{codebase}: {title or 'revision'}", crumbs)
        + f"<h1>{summary or '(no message)'}</h1>\n"
        + f"<pre>{message}</pre>\n<table>\n"
        + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>\n" for k, v in meta)
        + "</table>\n<h2>Changes"
        + (" against the left-hand parent" if parent_ids else "")
        + "</h2>\n"
    )
    slot = diff_slot(face)
    req.respond(200, HTML_TYPE, HTML_HEADERS)
    return _RevisionBody(
        _revision_body(
            head, repo, parent, revid, face.diff_timeout, face.diff_limits, slot
        ),
        slot,
    )


def diff_slot(face: Face) -> diff.Slot:
    """A slot of ``face.stream_budget`` for a diff, or a ``503`` telling the
    client to retry after :data:`RETRY_AFTER` seconds."""
    try:
        return diff.Slot(face.stream_budget)
    except diff.Busy as e:
        raise HTTPError(
            503, f"{e}; retry later", [("Retry-After", str(RETRY_AFTER))]
        ) from None


class _RevisionBody:
    """A revision page's body: gives the diff's slot back when it is closed
    before the diff started (a ``HEAD``, a client gone early)."""

    def __init__(self, body: Iterator[bytes], slot: diff.Slot) -> None:
        self._body = body
        self._slot = slot

    def __iter__(self) -> Iterator[bytes]:
        return self._body

    def close(self) -> None:
        try:
            self._body.close()  # type: ignore[attr-defined]
        finally:
            self._slot.release_unused()


def _revision_body(
    head: str,
    repo,
    parent: bytes,
    revid: bytes,
    timeout: float,
    limits: diff.DiffLimits,
    slot: diff.Slot,
) -> Iterator[bytes]:
    yield head.encode("utf-8")
    yield b'<pre class="diff">'
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
    yield b"</pre>\n"
    if note:
        yield f'<p class="note">{esc(note)}</p>\n'.encode()
    yield _PAGE_FOOT.encode()


def _diff_html(stream: diff.DiffStream):
    """Yield the diff as escaped, classed lines; return a note if cut short."""
    pending = b""
    size = 0
    empty = True
    for chunk in stream:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        out = []
        for line in lines:
            empty = False
            html_line = _diff_line(line).encode("utf-8")
            size += len(html_line)
            if size > PAGE_DIFF_LIMIT:
                yield b"".join(out)
                return (
                    "The diff is too long to show here in full; the rest is left out."
                )
            out.append(html_line)
        yield b"".join(out)
    if pending:
        empty = False
        yield _diff_line(pending).encode("utf-8")
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
