"""Handlers of the janitor's HTTP API (routed by ``app.ROUTES``; each is ``handler(face, req, **groups)``).

Admin face: codebase lists, readiness, ``/CODEBASE/diff``,
``/CODEBASE/revision-info``, ``POST /CODEBASE/remotes/REMOTE`` and
``GET``/``POST /CODEBASE/locks`` (held locks, breaking one).  Public face:
readiness (terse), codebase lists, ``/bzr/CODEBASE/diff`` and
``/bzr/CODEBASE/revision-info`` and the revision page's path decoding; the HTML pages
themselves are in :mod:`breezy_janitor_store.web.browse`.  Each handler is
``handler(face, req, **groups)``.
"""

from __future__ import annotations

import email.parser
import email.policy
import errno
import json
import logging
import os
import posixpath
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import configobj
from breezy import errors

from ..policy.policies import PolicyUnavailable
from ..store import branches, diff, history, layout, locks
from ..store.context import current_request_id
from . import browse, revinfo, validators
from .browser import revision, twins
from .http import HTTPError, Request, negotiate

if TYPE_CHECKING:
    from .face import Face

__all__ = [
    "CODEBASE",
    "EAGER_REVISIONS",
    "LIST_TYPES",
    "NAME",
    "break_lock",
    "diff_view",
    "list_codebases",
    "list_locks",
    "negotiate",
    "ok",
    "public_ready",
    "ready",
    "repositories",
    "revision_info",
    "revision_page",
    "set_remote",
]

#: Regex of a codebase, campaign or role name, and of a codebase route group.
NAME = layout.NAME_RE.pattern.removesuffix(r"\Z")
CODEBASE = rf"(?P<codebase>{NAME})"
#: What a codebase list can be answered with, the preferred first on a tie:
#: JSON to ``Accept: */*`` or no ``Accept`` (the janitor's site parses it),
#: text or HTML (a browser) only when asked for.
LIST_TYPES = ("application/json", "text/plain", "text/html")
JSON_TYPE = "application/json"
DIFF_TYPE = "text/x-diff"
#: Revisions answered at once (with a Content-Length); longer lists stream.
EAGER_REVISIONS = 1000
#: The message revision-info gives a revision whose text cannot be read.
UNREADABLE_MESSAGE = "(unreadable revision)"
logger = logging.getLogger(__name__)

#: Largest accepted form body (``POST .../remotes/...``).
_MAX_FORM = 64 * 1024


# -- codebase lists --


def list_codebases(face: Face, req: Request) -> list[bytes]:
    """The codebases, as JSON, plain text or HTML (``Accept``)."""
    kind = negotiate(req.environ.get("HTTP_ACCEPT"), LIST_TYPES)
    if kind is None:
        raise HTTPError(406, f"can answer with {', '.join(LIST_TYPES)} only")
    names = face.storage.codebases()
    if kind == "text/html":
        return browse.codebase_list_page(face, req, names)
    vary = [("Vary", "Accept")]
    if kind == JSON_TYPE:
        return validators.buffered(req, JSON_TYPE, json.dumps(names).encode(), vary)
    body = "".join(n + "\n" for n in names).encode("utf-8")
    return validators.buffered(req, "text/plain; charset=utf-8", body, vary)


def repositories(face: Face, req: Request) -> list[bytes]:
    """The codebases as a JSON array."""
    return _json(req, face.storage.codebases())


def _json(req: Request, value: object, indent: int | None = None) -> list[bytes]:
    """``value`` as JSON; indented (and ending in a newline) for ``indent``."""
    body = json.dumps(value, indent=indent).encode("utf-8")
    if indent is not None:
        body += b"\n"
    return validators.buffered(req, JSON_TYPE, body)


# -- readiness --

#: The body of ``/health`` and ``/ready`` when all is well: exactly what the
#: janitor's own store sends (aiohttp's ``web.Response(text="ok")``).
OK_BODY = b"ok"


def ok(req: Request) -> list[bytes]:
    """``200`` with :data:`OK_BODY`, as ``text/plain; charset=utf-8`` (no
    newline: the janitor's tests compare the body exactly)."""
    req.respond(
        200, "text/plain; charset=utf-8", [("Content-Length", str(len(OK_BODY)))]
    )
    return [OK_BODY]


def ready(face: Face, req: Request) -> list[bytes]:
    """``ok`` when the storage directory and the policies' sources answer;
    else ``503`` naming the problems."""
    problems = _readiness_problems(face, probe=True)
    if problems:
        raise HTTPError(503, "not ready: " + "; ".join(problems))
    return ok(req)


def public_ready(face: Face, req: Request) -> list[bytes]:
    """The public face's readiness, for a load balancer's probe: ``ok``, or
    ``503 not ready`` with the problems logged, not shown (the face is on the
    internet).  An anonymous request writes nothing: whether the face may
    write is asked of ``access(2)``."""
    problems = _readiness_problems(face, probe=False)
    if problems:
        logger.warning("not ready: %s", "; ".join(problems))
        raise HTTPError(503, "not ready")
    return ok(req)


def _readiness_problems(face: Face, *, probe: bool) -> list[str]:
    """What keeps ``face`` from serving; ``probe``: create and remove a file
    to show the storage directory writable."""
    problems = []
    directory = face.storage.directory
    writes = probe or face.write_policy is not None
    try:
        os.listdir(directory)
        if probe:
            fd, scratch = tempfile.mkstemp(prefix=".ready-", dir=directory)
            os.close(fd)
            os.unlink(scratch)
        elif writes and not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as e:
        what = "readable and writable" if writes else "readable"
        problems.append(f"storage directory not {what}: {e.strerror}")
    seen: set[int] = set()
    for policy in (face.codebase_policy, face.write_policy):
        check = getattr(policy, "check_ready", None)
        if check is None or id(policy) in seen:
            continue
        seen.add(id(policy))
        try:
            check()
        except PolicyUnavailable as e:
            problems.append(str(e))
    return problems


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


def _revisions(face: Face, req: Request, codebase: str):
    """The repository and the ``old`` and ``new`` revisions, checked."""
    query = _query(req)
    old = _revision_arg(query, "old")
    new = _revision_arg(query, "new")
    repo = browse.open_codebase(face, codebase, inaccessible=True)
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


def diff_view(face: Face, req: Request, codebase: str) -> Iterable[bytes]:
    """The unified diff between two revisions, streamed, within
    ``face.diff_limits`` and a slot of ``face.stream_budget``."""
    repo, old, new, query = _revisions(face, req, codebase)
    path = _subpath(query)
    limits = face.diff_limits
    etag = validators.tag(
        "diff", codebase, old, new, path or "", repr(limits), *twins.scope(face, repo)
    )
    cached = validators.not_modified(req, etag)
    if cached is not None:
        return cached
    headers = [("ETag", etag), validators.IMMUTABLE]
    if old == new:
        req.respond(200, DIFF_TYPE, [("Content-Length", "0"), *headers])
        return []
    stream = diff.DiffStream(
        lambda out: diff.write_revision_diff(repo, old, new, out, path, limits),
        face.diff_timeout,
        limits.output_bytes,
        browse.diff_slot(face),
    )
    try:
        stream.first()
    except diff.DiffTimeout as e:
        raise HTTPError(504, str(e)) from None
    except errors.PathsNotVersionedError:
        raise HTTPError(404, f"no such path in either revision: {path}") from None
    req.respond(200, DIFF_TYPE, headers)
    return stream


def revision_info(face: Face, req: Request, codebase: str) -> Iterable[bytes]:
    """The revisions on ``new``'s left-hand line back to ``old``, newest first."""
    repo, old, new, _ = _revisions(face, req, codebase)
    # Revision pages are on the public face: absolute links, or none.
    root = face.public_root(req)
    base = face.branches_url(req) if root else None
    limit = revinfo.entry_limit(face)
    etag = validators.tag(
        "revision-info", codebase, old, new, limit, base or "", *twins.scope(face, repo)
    )
    cached = validators.not_modified(req, etag)
    if cached is not None:
        return cached

    def collect() -> tuple[list[dict], bool, bool]:
        revids = history.mainline(repo, new, old)
        items = list(_revision_items(repo, revids[:limit], codebase, base))
        ghost = bool(revids) and not history.has_revision(repo, revids[-1])
        return items, len(revids) > limit, ghost

    items, cut, ghost = revinfo.bounded(face, collect, "revision-info")
    headers = [("ETag", etag), validators.IMMUTABLE]
    if ghost:  # the line stops at a ghost: it grows once the ghost arrives
        headers = [("ETag", validators.tag(etag, "unsettled")), validators.REVALIDATE]
    if cut:
        headers.append((revinfo.TRUNCATED_HEADER, str(limit)))
    if len(items) <= EAGER_REVISIONS:
        body = json.dumps(items).encode("utf-8")
        req.respond(200, JSON_TYPE, [("Content-Length", str(len(body))), *headers])
        return [body]
    req.respond(200, JSON_TYPE, headers)
    return _json_array(iter(items))


def _revision_items(
    repo, revids: list[bytes], codebase: str, base: str | None
) -> Iterator[dict]:
    """Entries as the janitor's clients read them: its Python site reads
    ``revision-id``, its Rust client ``revision_id`` and ``commit_id``
    (a git commit; none for bzr), and ``link`` as an absolute URL or null.
    A revision whose text cannot be read has :data:`UNREADABLE_MESSAGE`."""
    for revid, rev in history.iter_revisions(repo, revids):
        text = revid.decode("utf-8", "replace")
        message = getattr(rev, "message", None)
        yield {
            "revision-id": text,
            "revision_id": text,
            "commit-id": None,
            "commit_id": None,
            "message": message if isinstance(message, str) else UNREADABLE_MESSAGE,
            "link": None
            if base is None
            else base + history.revision_path(codebase, revid),
        }


def _json_array(items: Iterator[dict]) -> Iterator[bytes]:
    sep = "["
    for item in items:
        yield (sep + json.dumps(item)).encode("utf-8")
        sep = ","
    yield b"[]" if sep == "[" else b"]"


# -- remotes --


def set_remote(face: Face, req: Request, codebase: str, remote: str) -> list[bytes]:
    """Record form field ``url`` as the parent of branch CODEBASE/REMOTE."""
    url = _form(req).get("url", "").strip()
    if not url:
        raise HTTPError(400, "missing form field: url")
    _check_url(url)
    if not (
        face.codebase_policy.codebase_exists(codebase)
        and face.is_campaign(remote)
        and face.storage.has_repository(codebase)
    ):
        raise HTTPError(404, f"no such branch: {codebase}/{remote}")
    root = face.storage.transport(codebase, writable=True, is_campaign=face.is_campaign)
    try:
        branch = branches.open_branch(root, (remote,))
    except (errors.NotBranchError, errors.NoRepositoryPresent):
        raise HTTPError(404, f"no such branch: {codebase}/{remote}") from None
    except branches.RefusedBranch as e:
        raise HTTPError(409, f"{codebase}/{e}") from None
    try:
        branch.set_parent(url)
    except configobj.ConfigObjError:  # e.g. both ''' and """: nothing written
        raise HTTPError(400, "invalid url: it cannot be stored") from None
    return req.text(200, f"parent of {codebase}/{remote} set to {url}")


def _check_url(url: str) -> None:
    reason = layout.url_refusal(url)
    if reason is not None:
        raise HTTPError(400, f"invalid url: {reason}")


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


def revision_page(
    face: Face, req: Request, codebase: str, revid: str
) -> Iterable[bytes]:
    """The revision page; ``revid`` as the server decoded it from the path."""
    try:
        raw = revid.encode("latin-1")  # PEP 3333: PATH_INFO bytes as latin-1
    except UnicodeEncodeError:
        raw = revid.encode("utf-8")  # servers that decode it as UTF-8
    return revision.revision_page(face, req, codebase, raw)


# -- held locks (admin face) --

#: Largest accepted body of a ``POST /CODEBASE/locks``.
MAX_BREAK_REQUEST = 4096


def _lock_codebase(face: Face, name: str) -> str:
    """``name``, a codebase on disk (whether a policy admits it or not: an
    operator breaks the locks of any codebase on disk)."""
    face.names(name)
    if not face.storage.has_repository(name):
        raise HTTPError(404, f"no such codebase: {name}")
    return name


def list_locks(face: Face, req: Request, codebase: str) -> list[bytes]:
    """``GET /CODEBASE/locks``: the locks held in the codebase."""
    held = locks.list_locks(face.storage, _lock_codebase(face, codebase), face.lock_lease)
    return _json(req, [h.to_json() for h in held], indent=1)


def break_lock(face: Face, req: Request, codebase: str) -> list[bytes]:
    """``POST /CODEBASE/locks``: break one lock,
    ``{"location": ..., "nonce": ..., "older_than": ...}``."""
    codebase = _lock_codebase(face, codebase)
    request = _read_json(req)
    location = request.get("location", codebase)
    nonce = request.get("nonce")
    older_than = request.get("older_than")
    if not isinstance(location, str) or (
        nonce is not None and not isinstance(nonce, str)
    ):
        raise HTTPError(400, "location and nonce must be strings")
    if older_than is not None and (
        isinstance(older_than, bool) or not isinstance(older_than, (int, float))
    ):
        raise HTTPError(400, "older_than must be a number of seconds")
    loc = face.parse(location)
    if loc.codebase != codebase:
        raise HTTPError(400, f"{location} is not in codebase {codebase}")
    try:
        held = locks.break_lock(face.storage, loc, nonce=nonce, older_than=older_than)
    except locks.LockChanged as e:
        raise HTTPError(409, str(e)) from None
    if held is None:
        raise HTTPError(404, f"no lock to break at {location}")
    logger.warning("broke %s (request %s)", held.describe(), current_request_id())
    return _json(req, {"broken": held.to_json()}, indent=1)


def _read_json(req: Request) -> dict:
    try:
        length = int(req.environ.get("CONTENT_LENGTH") or "0")
    except ValueError:
        raise HTTPError(400, "invalid Content-Length") from None
    if length > MAX_BREAK_REQUEST:
        raise HTTPError(413, f"request body over {MAX_BREAK_REQUEST} bytes")
    raw = req.environ["wsgi.input"].read(length) if length > 0 else b""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "the body must be a JSON object") from None
    if not isinstance(value, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return value
