"""``StoreApp``: the store as a PEP 3333 WSGI application, and its routes.

:data:`ROUTES` is every URL of both faces: each route names its faces, its
method, its path regex, its endpoint (the metrics label) and its handler,
``handler(face, req, **groups)``: the :class:`~.face.Face`, never the
application.  ``HEAD`` takes the ``GET`` route and is
answered without a body (:func:`breezy_janitor_store.web.filters.head`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..policy.policies import (
    AnyCodebase,
    Campaigns,
    CodebasePolicy,
    Environ,
    PolicyUnavailable,
    Unauthorized,
    WritePolicy,
    allow_writes,
    read_only,
)
from ..policy.proxy import TrustedProxies
from ..smart import leases
from ..store import damage, isolation, patches
from ..store.budget import PROCESS_STREAM_BUDGET, StreamBudget
from ..store.context import current_request_id
from ..store.diff import DEFAULT_LIMITS as DEFAULT_DIFF_LIMITS
from ..store.diff import DEFAULT_TIMEOUT as DEFAULT_DIFF_TIMEOUT
from ..store.diff import DiffLimits
from ..store.storage import Storage
from . import api, browse, files, filters, metrics, smart
from .browser import annotate as browser_annotate
from .browser import archive as browser_archive
from .browser import blob as browser_blob
from .browser import children as browser_children
from .browser import compare as browser_compare
from .browser import feeds as browser_feeds
from .browser import filelog as browser_filelog
from .browser import revision as browser_revision
from .browser import tree as browser_tree
from .browser.errors import html_refusal
from .face import ADMIN, PUBLIC, PUBLIC_PREFIX, Face, SmartSettings
from .http import HTTPError, Request, Router

__all__ = ["ADMIN", "DEFAULT_CLIENT_MAX_SIZE", "PUBLIC", "ROUTES", "Route", "StoreApp"]

logger = logging.getLogger(__name__)

DEFAULT_CLIENT_MAX_SIZE = 1024**3
_SMART_PATH = r"/(?P<path>.+)/\.bzr/smart"
_BOTH = (ADMIN, PUBLIC)


class _OnFace:
    """A setting of :class:`StoreApp`, held by its face (``smart``: by the
    face's smart settings)."""

    def __init__(self, name: str, *, smart: bool = False) -> None:
        self.name = name
        self.smart = smart

    def __get__(self, app: StoreApp | None, owner: type) -> Any:
        if app is None:
            return self
        return getattr(app.face.smart if self.smart else app.face, self.name)

    def __set__(self, app: StoreApp, value: Any) -> None:
        if self.smart:
            app.face.smart = dataclasses.replace(app.face.smart, **{self.name: value})
        else:
            setattr(app.face, self.name, value)


class StoreApp:
    """The store's WSGI application, serving one face.

    :param directory: the storage directory.
    :param face: ``"admin"`` (trusted network; writes) or ``"public"``
        (branches under ``/bzr/``; read-only unless ``write_policy`` allows).
    :param campaigns: known campaign names; ``None`` or empty accepts any
        valid name.  Also accepts any container of names.
    :param codebase_policy: object with ``codebase_exists(name)``; default:
        every valid name (created on the first write).
    :param write_policy: ``callable(environ) -> bool``; default: the admin
        face writes, the public face does not.
    :param client_max_size: largest accepted request body, in bytes.
    :param storage: share a :class:`Storage` between faces (optional).
    :param public_url: root URL of the public face (``https://host/``), for
        links to its pages (revision-info, codebase lists on the admin face).
    :param diff_timeout: seconds a diff (API or revision page) may take.
    :param diff_limits: the largest file a diff compares and its largest
        output (see :class:`~breezy_janitor_store.store.diff.DiffLimits`); a diff
        also takes a reader's slot of ``stream_budget`` while it runs.
    :param break_locks_older_than: seconds; before a write, break the
        branch and repository locks it would wait for when older than
        this (see :mod:`breezy_janitor_store.store.locks`).  Default: never.
    :param lock_lease: seconds; a lock the store took for a client whose
        holder has not used it for this long is broken before a write that
        would wait for it (see :mod:`breezy_janitor_store.smart.leases`).  None
        or 0: never.
    :param stream_budget: how many heavy streams (``get_stream``,
        ``insert_stream`` and friends) run at once, and how long one waits
        for its turn before the 503; default: one budget for the whole
        process, of as many streams as CPUs (see :class:`StreamBudget`).
    :param sync: sync every write before the response acknowledging it
        (default: on, unless ``BZR_STORE_SYNC`` turns it off); only for the
        :class:`Storage` this creates (a given ``storage`` has its own).
    :param trusted_proxies: the reverse proxies whose ``X-Forwarded-For``,
        ``Forwarded``, ``X-Forwarded-Proto`` and ``X-Request-Id`` are
        believed (:class:`~breezy_janitor_store.policy.proxy.TrustedProxies` or its
        comma-separated spec); default: nobody's.

    Creating one drops, process-wide, the hooks of every plugin but the
    store's (:func:`breezy_janitor_store.store.isolation.drop_foreign_hooks`):
    what a writer puts in a branch never reaches another plugin's code.
    """

    def __init__(
        self,
        directory: str | None = None,
        *,
        face: str = ADMIN,
        campaigns: Iterable[str] | Campaigns | None = None,
        codebase_policy: CodebasePolicy | None = None,
        write_policy: WritePolicy | None = None,
        client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
        storage: Storage | None = None,
        public_url: str | None = None,
        diff_timeout: float = DEFAULT_DIFF_TIMEOUT,
        diff_limits: DiffLimits = DEFAULT_DIFF_LIMITS,
        break_locks_older_than: float | None = None,
        lock_lease: float | None = leases.DEFAULT_LEASE,
        stream_budget: StreamBudget | None = None,
        sync: bool | None = None,
        trusted_proxies: TrustedProxies | str | None = None,
    ) -> None:
        if face not in (ADMIN, PUBLIC):
            raise ValueError(f"face must be {ADMIN!r} or {PUBLIC!r}, not {face!r}")
        isolation.drop_foreign_hooks()
        # process-wide: freed repositories, serialised autopacks, the
        # provenance check of branch tips (see store.patches.install)
        patches.install()
        if storage is None:
            if directory is None:
                raise TypeError("StoreApp needs a storage directory")
            storage = Storage(directory, sync=sync)
        lock_lease = leases.parse_lease(lock_lease)
        if lock_lease is not None:
            leases.install_hooks()
        # names (or None) become a Campaigns; any other object is the policy
        if campaigns is None or isinstance(campaigns, Iterable):
            campaigns = Campaigns(campaigns)
        self.face = Face(
            face,
            storage=storage,
            campaigns=campaigns,
            codebase_policy=codebase_policy or AnyCodebase(),
            write_policy=write_policy
            or (allow_writes if face == ADMIN else read_only),
            public_url=public_url,
            diff_timeout=diff_timeout,
            diff_limits=diff_limits,
            smart=SmartSettings(
                client_max_size=client_max_size,
                break_locks_older_than=break_locks_older_than,
                lock_lease=lock_lease,
                stream_budget=stream_budget or PROCESS_STREAM_BUDGET,
            ),
        )
        self.router = Router(
            (r.method, r.pattern, r.endpoint, partial(r.handler, self.face))
            for r in ROUTES
            if face in r.faces
        )
        if not isinstance(trusted_proxies, TrustedProxies):
            trusted_proxies = TrustedProxies(trusted_proxies)
        self.trusted_proxies = trusted_proxies
        self._wsgi = filters.wrap(self._dispatch, face, trusted_proxies)

    # What the application was made with, as its face holds it (settable,
    # as before the face held it).
    storage = _OnFace("storage")
    campaigns = _OnFace("campaigns")
    codebase_policy = _OnFace("codebase_policy")
    write_policy = _OnFace("write_policy")
    public_url = _OnFace("public_url")
    diff_timeout = _OnFace("diff_timeout")
    diff_limits = _OnFace("diff_limits")
    revision_info_limit = _OnFace("revision_info_limit")
    stream_budget = _OnFace("stream_budget", smart=True)
    lock_lease = _OnFace("lock_lease", smart=True)
    break_locks_older_than = _OnFace("break_locks_older_than", smart=True)
    client_max_size = _OnFace("client_max_size", smart=True)

    def __call__(
        self, environ: Environ, start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        return self._wsgi(environ, start_response)

    def _dispatch(
        self, environ: Environ, start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        req = Request(environ, start_response)
        try:
            return self.router.dispatch(req)
        except HTTPError as e:
            status, reason, headers = e.status, e.reason, e.headers
            if status == 404 and self.face.outside_prefix(req.path):
                reason = self.face.prefix_hint(reason)
        except PolicyUnavailable as e:
            status, reason, headers = 503, f"temporarily unavailable: {e}", []
            if e.retry_after is not None:
                headers.append(("Retry-After", str(e.retry_after)))
        except Unauthorized as e:
            status, reason, headers = 401, str(e), self.face.challenge()
        except Exception as e:
            damaged = damage.damage_of(e)
            if damaged is not None:
                damage.report(_codebase_in(req.path, self.face.prefix), damaged)
                status, headers = 503, []
                reason = str(damage.DamagedRepository(damaged))
                return req.text(status, reason, _closing(req, headers))
            logger.exception(
                "error serving %s %s (request %s)",
                req.method,
                req.path,
                current_request_id(),
            )
            status, reason, headers = 500, "internal server error", []
        headers = _closing(req, headers)
        page = html_refusal(self.face, req, status, reason, headers)
        if page is not None:
            return page
        return req.text(status, reason, headers)

def _codebase_in(path: str, prefix: str) -> str:
    """The codebase a request path names (its first segment after the face's prefix)."""
    if prefix and path.startswith(prefix):
        path = path[len(prefix) :]
    return path.strip("/").split("/", 1)[0][:200]


def _closing(req: Request, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` of a refusal, closing the connection if the request had a
    body: it may be unread, and the server would take it for the next request."""
    has_body = req.environ.get("CONTENT_LENGTH") not in (None, "", "0") or (
        "HTTP_TRANSFER_ENCODING" in req.environ
    )
    if not has_body or any(k.lower() == "connection" for k, _ in headers):
        return headers
    return [*headers, ("Connection", "close")]


def health(face: Face, req: Request) -> Iterable[bytes]:
    """``ok`` while the process serves requests."""
    return api.ok(req)


@dataclass(frozen=True)
class Route:
    """One URL of the store: ``handler(face, req, **groups)`` for ``method``
    on a path matching ``pattern`` (whole), on the ``faces`` listed."""

    faces: tuple[str, ...]
    method: str
    pattern: str
    endpoint: str
    handler: Callable[..., Iterable[bytes]]


_CB = api.CODEBASE
_NAME = api.NAME
#: The code browser's views: ``/bzr/CODEBASE/+KIND`` then ``REST``.
BROWSER_VIEWS = (
    ("tree", r"(?:/(?P<path>.*))?", "tree", browser_tree.tree_view),
    ("file", r"/(?P<path>.+)", "file", browser_blob.file_view),
    ("raw", r"/(?P<path>.+)", "raw", browser_blob.raw_file),
    ("annotate", r"/(?P<path>.+)", "annotate", browser_annotate.annotate_view),
    ("log", r"/(?P<path>.+)", "file-log", browser_filelog.file_log),
    ("tarball", "", "tarball", browser_archive.tarball),
    ("compare", r"/(?P<spec>.+)", "compare", browser_compare.compare),
)

#: Every route of both faces, tried in order.
ROUTES: tuple[Route, ...] = (
    Route(_BOTH, "GET", "/health", "health", health),
    # admin face
    Route((ADMIN,), "POST", _SMART_PATH, "smart", smart.serve),
    Route((ADMIN,), "GET", "/", "list", api.list_codebases),
    Route((ADMIN,), "GET", "/repositories", "repositories", api.repositories),
    Route((ADMIN,), "GET", "/ready", "ready", api.ready),
    Route((ADMIN,), "GET", "/metrics", "metrics", metrics.handler),
    Route((ADMIN,), "GET", f"/{_CB}/diff", "diff", api.diff_view),
    Route((ADMIN,), "GET", f"/{_CB}/revision-info", "revision-info", api.revision_info),
    Route(
        (ADMIN,),
        "POST",
        rf"/{_CB}/remotes/(?P<remote>{_NAME})",
        "remote",
        api.set_remote,
    ),
    Route((ADMIN,), "GET", r"/(?P<codebase>[^/]+)/locks", "locks", api.list_locks),
    Route((ADMIN,), "POST", r"/(?P<codebase>[^/]+)/locks", "locks", api.break_lock),
    Route((ADMIN,), "GET", files.ADMIN_DIRECTORY_PATH, "directory", files.directory),
    Route((ADMIN,), "GET", files.CONTROL_PATH, "control-file", files.control_file),
    # public face
    Route((PUBLIC,), "POST", PUBLIC_PREFIX + _SMART_PATH, "smart", smart.serve),
    Route((PUBLIC,), "GET", "/", "home", browse.home_page),
    Route((PUBLIC,), "GET", PUBLIC_PREFIX + "/?", "list", api.list_codebases),
    Route((PUBLIC,), "GET", PUBLIC_PREFIX + "/repositories", "repositories", api.repositories),
    Route((PUBLIC,), "GET", "/ready", "ready", api.public_ready),
    Route((PUBLIC,), "GET", f"{PUBLIC_PREFIX}/{_CB}/diff", "diff", api.diff_view),
    Route(
        (PUBLIC,),
        "GET",
        f"{PUBLIC_PREFIX}/{_CB}/revision-info",
        "revision-info",
        api.revision_info,
    ),
    Route((PUBLIC,), "GET", f"{PUBLIC_PREFIX}/{_CB}/?", "browse-codebase", files.directory),
    Route(
        (PUBLIC,),
        "GET",
        rf"{PUBLIC_PREFIX}/{_CB}/(?P<campaign>{_NAME})(?:/(?P<role>{_NAME}))?/?",
        "browse-branch",
        files.directory,
    ),
    Route(
        (PUBLIC,),
        "GET",
        PUBLIC_PREFIX + files.CONTROL_PATH,
        "control-file",
        files.control_file,
    ),
    Route(
        (PUBLIC,),
        "GET",
        rf"{PUBLIC_PREFIX}/{_CB}/\+revision/(?P<revid>.+)",
        "browse-revision",
        api.revision_page,
    ),
    Route(
        (PUBLIC,),
        "GET",
        rf"{PUBLIC_PREFIX}/{_CB}/\+children/(?P<revid>.+)",
        "browse-children",
        browser_children.children_page,
    ),
    # the code browser (web/browser/)
    Route(
        (PUBLIC,),
        "GET",
        rf"{PUBLIC_PREFIX}/{_CB}/(?P<campaign>{_NAME})(?:/(?P<role>{_NAME}))?/\+atom",
        "browse-branch-atom",
        browser_feeds.branch_feed,
    ),
    Route(
        (PUBLIC,),
        "GET",
        rf"{PUBLIC_PREFIX}/{_CB}/(?P<campaign>{_NAME})(?:/(?P<role>{_NAME}))?/\+revno/(?P<revno>[0-9]{{1,9}})",
        "browse-revno",
        browser_revision.revno_page,
    ),
    Route(
        (PUBLIC,),
        "GET",
        rf"{PUBLIC_PREFIX}/\+atom/(?P<campaign>{_NAME})",
        "browse-campaign-atom",
        browser_feeds.campaign_feed,
    ),
    *(
        Route((PUBLIC,), "GET", rf"{PUBLIC_PREFIX}/{_CB}/\+{kind}{rest}", f"browse-{name}", view)
        for kind, rest, name, view in BROWSER_VIEWS
    ),
    # the public face's branch URLs without /bzr/ (after every other route)
    Route((PUBLIC,), "POST", _SMART_PATH, "smart-without-prefix", smart.missing_prefix),
)
