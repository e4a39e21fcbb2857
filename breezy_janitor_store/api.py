"""The janitor's HTTP API and the browse pages (routes added to StoreApp).

Admin face: ``/`` and ``/repositories`` (codebase lists), ``/ready``,
``/metrics``, ``/CODEBASE/diff``, ``/CODEBASE/revision-info`` and
``POST /CODEBASE/remotes/REMOTE``.  Public face: ``/`` (home page),
``/bzr/`` and ``/bzr/repositories`` (codebase lists) and the HTML browse
pages below ``/bzr/`` (see :mod:`breezy_janitor_store.browse`).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import posixpath
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from breezy import errors, urlutils
from breezy.controldir import ControlDir

from . import browse, diff, history, layout, metrics
from .http import HTTPError, Request
from .policies import PolicyUnavailable

if TYPE_CHECKING:
    from .app import StoreApp

__all__ = ["EAGER_REVISIONS", "LIST_TYPES", "negotiate", "routes"]

_NAME = layout.NAME_RE.pattern.removesuffix(r"\Z")
_CODEBASE = rf"(?P<codebase>{_NAME})"
#: What a codebase list can be answered with, the preferred first on a tie
#: (so ``curl`` gets plain text and a browser HTML).
LIST_TYPES = ("text/plain", "application/json", "text/html")
JSON_TYPE = "application/json"
DIFF_TYPE = "text/x-diff"
#: Revisions answered at once (with a Content-Length); longer lists stream.
EAGER_REVISIONS = 1000
#: Largest accepted form body (``POST .../remotes/...``).
_MAX_FORM = 64 * 1024


def routes(app: StoreApp) -> dict:
    """Extra ``{(method, regex): handler}`` routes for ``app``'s face."""
    if app.face == "public":
        table = {
            ("GET", "/"): ("home", browse.home_page),
            ("GET", "/bzr/"): ("list", list_codebases),
            ("GET", "/bzr/repositories"): ("repositories", repositories),
            ("GET", f"/bzr/{_CODEBASE}/"): ("browse-codebase", browse.codebase_page),
            ("GET", rf"/bzr/{_CODEBASE}/(?P<campaign>{_NAME})/"): (
                "browse-branch",
                partial(browse.branch_page, role=None),
            ),
            ("GET", rf"/bzr/{_CODEBASE}/(?P<campaign>{_NAME})/(?P<role>{_NAME})/"): (
                "browse-branch",
                browse.branch_page,
            ),
            ("GET", rf"/bzr/{_CODEBASE}/\+revision/(?P<revid>.+)"): (
                "browse-revision",
                _revision_page,
            ),
        }
    else:
        table = {
            ("GET", "/"): ("list", list_codebases),
            ("GET", "/repositories"): ("repositories", repositories),
            ("GET", "/ready"): ("ready", ready),
            ("GET", "/metrics"): ("metrics", metrics.handler),
            ("GET", f"/{_CODEBASE}/diff"): ("diff", diff_view),
            ("GET", f"/{_CODEBASE}/revision-info"): ("revision-info", revision_info),
            ("POST", rf"/{_CODEBASE}/remotes/(?P<remote>{_NAME})"): (
                "remote",
                set_remote,
            ),
        }
    return {key: _endpoint(app, name, h) for key, (name, h) in table.items()}


def _endpoint(app: StoreApp, name: str, handler: Callable) -> Callable:
    """``handler(app, req, **groups)`` as a route: labelled for the metrics,
    and without a body for ``HEAD``."""

    def handle(req: Request, **groups: str) -> Iterable[bytes]:
        req.environ[metrics.ENDPOINT_KEY] = name
        body = handler(app, req, **groups)
        if req.method == "HEAD":
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return []
        return body

    return handle


# -- codebase lists --


def negotiate(accept: str | None, offers: tuple[str, ...]) -> str | None:
    """The offer ``accept`` prefers (RFC 9110 q-values), ``None`` if none.

    Each offer takes the quality of the most specific range matching it;
    ties go to the earlier offer.
    """
    ranges = []
    for item in (accept or "*/*").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if "/" not in media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), min(max(q, 0.0), 1.0)))
    best, best_q = None, 0.0
    for offer in offers:
        kind = offer.split("/")[0] + "/*"
        matches = [
            (specificity, q)
            for media, q in ranges
            for specificity, pattern in ((2, offer), (1, kind), (0, "*/*"))
            if media == pattern
        ]
        if not matches:
            continue
        q = max(matches)[1]
        if q > best_q:
            best, best_q = offer, q
    return best


def list_codebases(app: StoreApp, req: Request) -> list[bytes]:
    """The codebases, as JSON, plain text or HTML (``Accept``)."""
    kind = negotiate(req.environ.get("HTTP_ACCEPT"), LIST_TYPES)
    if kind is None:
        raise HTTPError(406, f"can answer with {', '.join(LIST_TYPES)} only")
    names = app.storage.codebases()
    if kind == "text/html":
        return browse.codebase_list_page(app, req, names)
    if kind == JSON_TYPE:
        return _json(req, names)
    body = "".join(n + "\n" for n in names).encode("utf-8")
    req.respond(200, "text/plain; charset=utf-8", [("Content-Length", str(len(body)))])
    return [body]


def repositories(app: StoreApp, req: Request) -> list[bytes]:
    """The codebases as a JSON array."""
    return _json(req, app.storage.codebases())


def _json(req: Request, value: object) -> list[bytes]:
    body = json.dumps(value).encode("utf-8")
    req.respond(200, JSON_TYPE, [("Content-Length", str(len(body)))])
    return [body]


# -- readiness --


def ready(app: StoreApp, req: Request) -> list[bytes]:
    """``ok`` when the storage directory and the policies' sources answer."""
    problems = []
    directory = app.storage.directory
    try:
        os.listdir(directory)
        fd, probe = tempfile.mkstemp(prefix=".ready-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        problems.append(f"storage directory not readable and writable: {e.strerror}")
    seen: set[int] = set()
    for policy in (app.codebase_policy, app.write_policy):
        check = getattr(policy, "check_ready", None)
        if check is None or id(policy) in seen:
            continue
        seen.add(id(policy))
        try:
            check()
        except PolicyUnavailable as e:
            problems.append(str(e))
    if problems:
        raise HTTPError(503, "not ready: " + "; ".join(problems))
    return req.text(200, "ok")


# -- revisions: diff and revision-info --


def _query(req: Request) -> dict[str, str]:
    """Query parameters (the first value of each; blank counts as absent)."""
    parsed = urllib.parse.parse_qs(req.environ.get("QUERY_STRING", ""))
    return {k: v[0] for k, v in parsed.items() if v and v[0]}


def _revision_arg(query: dict[str, str], name: str) -> bytes:
    value = query.get(name)
    if value is None:
        raise HTTPError(400, f"missing query parameter: {name}")
    # Revision ids never contain whitespace but may contain "+", which a
    # client that does not escape it (the janitor's) sends as a space.
    return value.replace(" ", "+").encode("utf-8")


def _revisions(app: StoreApp, req: Request, codebase: str):
    """The repository and the ``old`` and ``new`` revisions, checked."""
    query = _query(req)
    old = _revision_arg(query, "old")
    new = _revision_arg(query, "new")
    repo = browse.open_codebase(app, codebase, inaccessible=True)
    wanted = [r for r in (old, new) if r != history.NULL_REVISION]
    with repo.lock_read():
        present = repo.has_revisions(wanted)
    for revid in wanted:
        if revid not in present:
            raise HTTPError(
                404, f"no such revision: {revid.decode('utf-8', 'replace')}"
            )
    return repo, old, new, query


def _subpath(query: dict[str, str]) -> str | None:
    path = query.get("path")
    if path is None:
        return None
    path = posixpath.normpath("/" + path).lstrip("/")
    return path or None


def diff_view(app: StoreApp, req: Request, codebase: str) -> Iterable[bytes]:
    """The unified diff between two revisions, streamed."""
    repo, old, new, query = _revisions(app, req, codebase)
    path = _subpath(query)
    if old == new:
        req.respond(200, DIFF_TYPE, [("Content-Length", "0")])
        return []
    stream = diff.DiffStream(
        lambda out: diff.write_revision_diff(repo, old, new, out, path),
        app.diff_timeout,
    )
    try:
        stream.first()
    except diff.DiffTimeout as e:
        raise HTTPError(504, str(e)) from None
    except errors.PathsNotVersionedError:
        raise HTTPError(404, f"no such path in either revision: {path}") from None
    req.respond(200, DIFF_TYPE)
    return stream


def revision_info(app: StoreApp, req: Request, codebase: str) -> Iterable[bytes]:
    """The revisions on ``new``'s left-hand line back to ``old``, newest first."""
    repo, old, new, _ = _revisions(app, req, codebase)
    revids = history.mainline(repo, new, old)
    # Revision pages are on the public face: at public_url, or root-relative.
    base = (getattr(app, "public_url", None) or "").rstrip("/") + "/bzr"
    items = _revision_items(repo, revids, codebase, base)
    if len(revids) <= EAGER_REVISIONS:
        return _json(req, list(items))
    req.respond(200, JSON_TYPE)
    return _json_array(items)


def _revision_items(
    repo, revids: list[bytes], codebase: str, base: str
) -> Iterator[dict]:
    for revid, rev in history.iter_revisions(repo, revids):
        yield {
            "revision-id": revid.decode("utf-8", "replace"),
            "link": base + history.revision_path(codebase, revid),
            "message": rev.message,
        }


def _json_array(items: Iterator[dict]) -> Iterator[bytes]:
    sep = "["
    for item in items:
        yield (sep + json.dumps(item)).encode("utf-8")
        sep = ","
    yield b"[]" if sep == "[" else b"]"


# -- remotes --


def set_remote(app: StoreApp, req: Request, codebase: str, remote: str) -> list[bytes]:
    """Record form field ``url`` as the parent of branch CODEBASE/REMOTE."""
    url = _form(req).get("url", "").strip()
    if not url:
        raise HTTPError(400, "missing form field: url")
    _check_url(url)
    if not app.codebase_policy.codebase_exists(codebase) or remote not in app.campaigns:
        raise HTTPError(404, f"no such branch: {codebase}/{remote}")
    if not app.storage.has_repository(codebase):
        raise HTTPError(404, f"no such branch: {codebase}/{remote}")
    root = app.storage.transport(
        codebase, writable=True, is_campaign=app.campaigns.__contains__
    )
    try:
        branch = ControlDir.open_from_transport(root.clone(remote)).open_branch()
    except (errors.NotBranchError, errors.NoRepositoryPresent):
        raise HTTPError(404, f"no such branch: {codebase}/{remote}") from None
    branch.set_parent(url)
    return req.text(200, f"parent of {codebase}/{remote} set to {url}")


def _check_url(url: str) -> None:
    if not url.isascii() or any(c.isspace() or ord(c) < 32 for c in url):
        raise HTTPError(400, "invalid url: only printable ASCII without spaces")
    try:
        parsed = urlutils.URL.from_string(url)
    except (urlutils.InvalidURL, ValueError) as e:
        raise HTTPError(400, f"invalid url: {e}") from None
    if not parsed.scheme or not parsed.host:
        raise HTTPError(400, "invalid url: expected SCHEME://HOST/PATH")


def _form(req: Request) -> dict[str, str]:
    """Fields of a urlencoded or multipart form body."""
    try:
        length = int(req.environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HTTPError(400, "invalid Content-Length") from None
    if length > _MAX_FORM:
        raise HTTPError(413, f"form larger than {_MAX_FORM} bytes")
    body = req.environ["wsgi.input"].read(length) if length > 0 else b""
    content_type = req.environ.get("CONTENT_TYPE", "")
    if content_type.lower().startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        fields = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name and name not in fields:
                fields[name] = (
                    part.get_content() if part.get_content_maintype() == "text" else ""
                )
        return fields
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "form is not UTF-8") from None
    return {k: v[0] for k, v in urllib.parse.parse_qs(text).items()}


# -- browse pages --


def _revision_page(
    app: StoreApp, req: Request, codebase: str, revid: str
) -> Iterable[bytes]:
    try:
        raw = revid.encode("latin-1")  # PEP 3333: PATH_INFO bytes as latin-1
    except UnicodeEncodeError:
        raw = revid.encode("utf-8")  # servers that decode it as UTF-8
    return browse.revision_page(app, req, codebase, raw)
