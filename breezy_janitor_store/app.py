"""``StoreApp``: the store as a PEP 3333 WSGI application, and its routes.

:data:`ROUTES` is every URL of both faces: each route names its faces, its
method, its path regex, its endpoint (the metrics label) and its handler,
``handler(app, req, **groups)``.  ``HEAD`` takes the ``GET`` route and is
answered without a body (:func:`breezy_janitor_store.filters.head`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from breezy import errors

from . import (
    api,
    browse,
    damage,
    files,
    filters,
    holders,
    isolation,
    layout,
    leases,
    locks,
    metrics,
    provenance,
)
from .browser import annotate as browser_annotate
from .browser import archive as browser_archive
from .browser import blob as browser_blob
from .browser import compare as browser_compare
from .browser import feeds as browser_feeds
from .browser import filelog as browser_filelog
from .browser import tree as browser_tree
from .browser.errors import html_refusal
from .budget import PROCESS_STREAM_BUDGET, RateWatch, StreamBudget
from .context import current_request_id
from .diff import DEFAULT_LIMITS as DEFAULT_DIFF_LIMITS
from .diff import DEFAULT_TIMEOUT as DEFAULT_DIFF_TIMEOUT
from .diff import DiffLimits
from .http import HTTPError, Request, Router
from .metrics import SMART_VERB_KEY
from .policies import (
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
from .proxy import TrustedProxies
from .smart import (
    MAX_CHUNK,
    SMALL_BODY_LIMIT,
    RequestHead,
    SmartExchange,
    VerbPolicy,
)
from .storage import Storage

__all__ = ["ADMIN", "DEFAULT_CLIENT_MAX_SIZE", "PUBLIC", "ROUTES", "Route", "StoreApp"]

logger = logging.getLogger(__name__)

ADMIN = "admin"
PUBLIC = "public"
#: URL prefix of the public face's branches.
PUBLIC_PREFIX = "/bzr"
DEFAULT_CLIENT_MAX_SIZE = 1024**3
#: Seconds a client refused for want of a stream slot is told to wait.
RETRY_AFTER = 10
#: The answer to an incomplete smart request: breezy's
#: ``SmartWSGIApp`` (and the janitor's store) answer it so, a protocol-1
#: error whatever the protocol of the request.
INCOMPLETE_RESPONSE = b"error\x01incomplete request\n"
#: The stream budget's identity of the admin face's clients without a user.
_ADMIN_IDENTITY = ("admin",)
_SMART_PATH = r"/(?P<path>.+)/\.bzr/smart"
_BOTH = (ADMIN, PUBLIC)


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
        output (see :class:`~breezy_janitor_store.diff.DiffLimits`); a diff
        also takes a reader's slot of ``stream_budget`` while it runs.
    :param break_locks_older_than: seconds; before a write, break the
        branch and repository locks it would wait for when older than
        this (see :mod:`breezy_janitor_store.locks`).  Default: never.
    :param lock_lease: seconds; a lock the store took for a client whose
        holder has not used it for this long is broken before a write that
        would wait for it (see :mod:`breezy_janitor_store.leases`).  None
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
        believed (:class:`~breezy_janitor_store.proxy.TrustedProxies` or its
        comma-separated spec); default: nobody's.

    Creating one drops, process-wide, the hooks of every plugin but the
    store's (:func:`breezy_janitor_store.isolation.drop_foreign_hooks`):
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
        if storage is None:
            if directory is None:
                raise TypeError("StoreApp needs a storage directory")
            storage = Storage(directory, sync=sync)
        self.storage = storage
        self.face = face
        # names (or None) become a Campaigns; any other object is the policy
        self.campaigns = (
            Campaigns(campaigns)
            if campaigns is None or isinstance(campaigns, Iterable)
            else campaigns
        )
        self.codebase_policy = codebase_policy or AnyCodebase()
        self.write_policy = write_policy or (
            allow_writes if face == ADMIN else read_only
        )
        self.client_max_size = client_max_size
        self.public_url = public_url
        self.diff_timeout = diff_timeout
        self.diff_limits = diff_limits
        self.break_locks_older_than = break_locks_older_than
        self.lock_lease = leases.parse_lease(lock_lease)
        if self.lock_lease is not None:
            leases.install_hooks()
        self.stream_budget = stream_budget or PROCESS_STREAM_BUDGET
        self.prefix = PUBLIC_PREFIX if face == PUBLIC else ""
        self.router = Router(
            (r.method, r.pattern, r.endpoint, partial(r.handler, self))
            for r in ROUTES
            if face in r.faces
        )
        if not isinstance(trusted_proxies, TrustedProxies):
            trusted_proxies = TrustedProxies(trusted_proxies)
        self.trusted_proxies = trusted_proxies
        self._wsgi = filters.wrap(self._dispatch, face, trusted_proxies)

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
            if status == 404 and self.prefix and not _under(req.path, self.prefix):
                reason = _prefix_hint(reason)
        except PolicyUnavailable as e:
            status, reason, headers = 503, f"temporarily unavailable: {e}", []
            if e.retry_after is not None:
                headers.append(("Retry-After", str(e.retry_after)))
        except Unauthorized as e:
            status, reason, headers = 401, str(e), self._challenge()
        except Exception as e:
            damaged = damage.damage_of(e)
            if damaged is not None:
                damage.report(_codebase_in(req.path, self.prefix), damaged)
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
        page = html_refusal(self.face, self.prefix, req, status, reason, headers)
        if page is not None:
            return page
        return req.text(status, reason, headers)

    # -- handlers --

    def smart(self, req: Request, path: str) -> Iterable[bytes]:
        """A bzr smart-protocol request for a branch location."""
        try:
            location = self._location(path)
        except HTTPError as e:
            return self._smart_refusal(req, path, e)
        writable = bool(self.write_policy(req.environ))
        length = self._content_length(req)
        codebase = location.codebase
        challenge = getattr(self.write_policy, "realm", None)
        if (
            not writable
            and not self.storage.has_repository(codebase)
            and (challenge is None)
        ):
            # (With a challenge, a known codebase not yet on disk is served
            # read-only, empty, so a first push reaches a write verb and
            # gets the 401 that makes brz send its credentials.)
            return self._smart_refusal(
                req, path, HTTPError(404, f"no such codebase: {codebase}")
            )
        root = self.storage.transport(
            codebase, writable=writable, is_campaign=self.campaigns.__contains__
        )
        root.defer_syncs()  # flushed before the response acknowledges the writes

        turn = _Turn(self.stream_budget, self._identity(req.environ))
        used = (  # the locks the request uses, for their leases
            leases.RequestLeases(
                self.storage,
                location,
                self.lock_lease,
                req.environ.get("REMOTE_USER"),
                req.environ.get("REMOTE_ADDR"),
            )
            if writable and self.lock_lease is not None
            else None
        )

        def admit(verb: bytes | None, policy: VerbPolicy, refused: bool) -> None:
            """Stop a verb the request may not run: writes of an anonymous
            client get the 401 challenge (a read-only face without one
            refuses them in the smart protocol).  Every refusal comes before
            the stream budget: a heavy verb takes its slot only if it will
            run (``refused``: its policy answers these arguments itself)."""
            req.environ[SMART_VERB_KEY] = verb  # for the metrics
            if policy.writes and not writable and challenge is not None:
                raise HTTPError(
                    401,
                    "authentication required to write",
                    [*self._challenge(), ("Connection", "close")],
                )
            limit = policy.body_limit(writable, self.client_max_size)
            if length > limit:
                raise _too_large(length, limit, verb if policy.category else None)
            if refused:
                return
            if policy.heavy:
                self._take(turn, writer=policy.writes)
            if writable and verb is not None:
                if used is not None:  # the holder's own use renews its lease
                    used.admit(verb, exchange.args)
                locks.before_write(
                    self.storage,
                    location,
                    verb,
                    self.break_locks_older_than,
                    self.lock_lease,
                )

        def prepare_write() -> None:
            """A codebase the policy allows gets its shared repository when
            a writer's verb that writes is about to run (not a refused one),
            or opens the codebase root, so clients find it in place."""
            self.storage.ensure_repository(codebase)

        exchange = SmartExchange(
            root.clone(_relpath(location)),
            root,
            admit,
            prepare_write if writable else None,
        )
        streamed = False
        try:
            try:
                # locks the verbs take are recorded as the client's, and
                # the locks the request uses keep their leases while it runs
                with (
                    holders.acting_for(
                        req.environ.get("REMOTE_USER"), req.environ.get("REMOTE_ADDR")
                    ),
                    used if used is not None else contextlib.nullcontext(),
                    provenance.writing_as(self._writer(req, codebase, writable)),
                ):
                    if used is not None:  # its bytes arriving renew its locks
                        environ = req.environ
                        environ["wsgi.input"] = used.watch(
                            environ["wsgi.input"], length
                        )
                    unread = self._feed(req, exchange, length, writable, turn)
            except BaseException:
                exchange.abort()  # e.g. the client went away mid-body
                raise
            req.environ.setdefault(SMART_VERB_KEY, exchange.verb)
            if exchange.wants_more():
                exchange.abort()
                return _incomplete(req, unread)
            _flush_syncs(root)
            if exchange.streaming:
                if not turn.held:  # a file-level answer too large to buffer
                    self._take(turn, writer=False)
                req.respond(200, "application/octet-stream")
                streamed = True  # the turn ends with the response body
                budget = turn.budget
                body = exchange.stream(budget.min_rate, budget.stall_window, turn.cut)
                return _Releasing(body, turn.release)
            body = exchange.buffered()
        finally:
            if not streamed:
                turn.release()
        req.respond(
            200, "application/octet-stream", [("Content-Length", str(len(body)))]
        )
        return [body]

    # -- helpers --

    def _smart_refusal(
        self, req: Request, path: str, refusal: HTTPError
    ) -> Iterable[bytes]:
        """Answer a request for a location the store refuses (``refusal``).

        A smart request is answered with ``PermissionDenied`` carrying the
        reason, which ``brz`` shows (breezy's client translates it in every
        context; ``nobranch`` needs a control directory it does not have).
        Any other body gets ``refusal`` itself.  At most the start of the
        body is read (up to the verb).
        """
        length = self._content_length(req)
        stream = req.environ["wsgi.input"]
        head = RequestHead()
        read = 0
        while read < min(length, SMALL_BODY_LIMIT) and not head.done:
            chunk = stream.read(min(MAX_CHUNK, length - read))
            if not chunk:
                break
            read += len(chunk)
            head.feed(chunk)
        if head.verb is None:
            raise refusal
        req.environ[SMART_VERB_KEY] = head.verb  # for the metrics
        try:  # the location, if it is one, else nothing the client sent
            shown = "/" + str(layout.parse_location(path))
        except layout.InvalidName:
            shown = ""
        body = RequestHead.error_response(
            (
                b"PermissionDenied",
                shown.encode("utf-8"),
                refusal.reason.encode("utf-8"),
            )
        )
        headers = [("Content-Length", str(len(body)))]
        if read < length:  # the rest of the body is not read
            headers.append(("Connection", "close"))
        req.respond(200, "application/octet-stream", headers)
        return [body]

    def _location(self, path: str) -> layout.Location:
        try:
            location = layout.parse_location(path)
        except layout.InvalidName as e:
            raise HTTPError(400, str(e)) from None
        if self.face == ADMIN and location.codebase == PUBLIC_PREFIX[1:]:
            raise HTTPError(404, ADMIN_BZR_REASON)
        if location.campaign is not None and location.campaign not in self.campaigns:
            raise HTTPError(404, f"unknown campaign: {location.campaign}")
        if not self.codebase_policy.codebase_exists(location.codebase):
            raise HTTPError(404, f"no such codebase: {location.codebase}")
        return location

    def _writer(
        self, req: Request, codebase: str, writable: bool
    ) -> provenance.Writer | None:
        """Whom a smart request writes for (see :mod:`provenance`): the
        admin face is trusted; a public writer is its ``REMOTE_USER``."""
        if not writable:
            return None
        name = None if self.face == ADMIN else req.environ.get("REMOTE_USER") or "-"
        return provenance.Writer(name, self.storage.path(codebase))

    def _content_length(self, req: Request) -> int:
        # (a Transfer-Encoding body is not taken for the Content-Length some
        # servers make up for it)
        try:
            if "HTTP_TRANSFER_ENCODING" in req.environ:
                raise ValueError
            length = int(req.environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            raise HTTPError(411, "a smart request needs a Content-Length") from None
        if length < 0:
            raise HTTPError(400, "invalid Content-Length")
        if length > self.client_max_size:
            raise _too_large(length, self.client_max_size)
        return length

    def _identity(self, environ: Environ) -> tuple[str, ...]:
        """Whom a request counts for in the stream budget's fair shares: the
        authenticated worker (``REMOTE_USER``, set by the write policy), or
        one identity for all the face's other clients."""
        user = environ.get("REMOTE_USER")
        if user:
            return ("worker", user)
        return ("anonymous",) if self.face == PUBLIC else _ADMIN_IDENTITY

    def _take(self, turn: _Turn, writer: bool) -> None:
        """Take a slot of the stream budget for ``turn``, or refuse (503)."""
        if not turn.take(writer=writer):
            raise HTTPError(
                503,
                f"the server is busy with {turn.budget.slots} streams; retry later",
                [("Retry-After", str(RETRY_AFTER)), ("Connection", "close")],
            )

    def _feed(
        self,
        req: Request,
        exchange: SmartExchange,
        length: int,
        writable: bool,
        turn: _Turn,
    ) -> int:
        """Feed the request body to the protocol in bounded chunks; return
        how many of its ``length`` bytes were not read (the body ended early).

        Until the verb is read, no more than :data:`SMALL_BODY_LIMIT` is
        read.  A body of at most that size is then read whole before
        anything of it reaches the verb, so a heavy verb takes its slot
        (in ``admit``) only once its body has arrived; only a writer's
        insert stream holds its slot while its body arrives, and is cut
        (write group aborted, slot given back) when it sends slower than
        the budget's minimum rate (:class:`RateWatch`).  The verb's body
        limit is checked (by ``admit``) as soon as the verb is fed.
        """
        stream = req.environ["wsgi.input"]
        head = RequestHead()
        held: list[bytes] = []
        read = 0
        small = length <= SMALL_BODY_LIMIT
        while read < length and (small or not head.done):
            if not head.done and read >= SMALL_BODY_LIMIT:
                raise _too_large(length, SMALL_BODY_LIMIT)
            chunk = stream.read(min(MAX_CHUNK, length - read))
            if not chunk:
                break
            read += len(chunk)
            held.append(chunk)
            if not head.done:
                head.feed(chunk)
        for chunk in held:
            if not exchange.wants_more():
                return length - read
            exchange.feed(chunk)
        del held
        if read == length or not exchange.wants_more():
            return length - read
        watch = None
        if turn.held:  # a writer's insert stream
            budget = turn.budget

            def cut() -> None:
                logger.warning(
                    "smart verb %s: request body cut, slower than %d bytes/s "
                    "(request %s)",
                    (exchange.verb or b"?").decode("ascii", "replace"),
                    budget.min_rate,
                    current_request_id(),
                )
                exchange.abort()
                turn.cut()

            watch = RateWatch(budget.min_rate, budget.stall_window, cut)
        try:
            while read < length and exchange.wants_more():
                with watch.waiting() if watch else contextlib.nullcontext():
                    chunk = stream.read(min(MAX_CHUNK, length - read))
                if watch is not None and watch.is_cut:
                    raise HTTPError(
                        408,
                        "request body too slow: a stream must send at least "
                        f"{turn.budget.min_rate:.0f} bytes a second",
                        [("Connection", "close")],
                    )
                if not chunk:
                    break
                read += len(chunk)
                if watch is not None:
                    watch.moved(len(chunk))
                exchange.feed(chunk)
        finally:
            if watch is not None:
                watch.stop()
        return length - read

    def _challenge(self) -> list[tuple[str, str]]:
        realm = getattr(self.write_policy, "realm", None) or "breezy janitor store"
        return [("WWW-Authenticate", f'Basic realm="{realm}"')]


def _codebase_in(path: str, prefix: str) -> str:
    """The codebase a request path names (its first segment after the face's prefix)."""
    if prefix and path.startswith(prefix):
        path = path[len(prefix) :]
    return path.strip("/").split("/", 1)[0][:200]


def _flush_syncs(root) -> None:
    """Sync what the request wrote before its response acknowledges it; a
    failure is answered 503 (nothing is acknowledged) and logged."""
    try:
        root.flush_syncs()
    except (errors.BzrError, OSError) as e:
        logger.error(
            "could not sync the writes of request %s: %s", current_request_id(), e
        )
        raise HTTPError(
            503,
            "the store could not save the writes to disk; retry later",
            [("Connection", "close")],
        ) from None


def _closing(req: Request, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` of a refusal, closing the connection if the request had a
    body: it may be unread, and the server would take it for the next request."""
    has_body = req.environ.get("CONTENT_LENGTH") not in (None, "", "0") or (
        "HTTP_TRANSFER_ENCODING" in req.environ
    )
    if not has_body or any(k.lower() == "connection" for k, _ in headers):
        return headers
    return [*headers, ("Connection", "close")]


class _Turn:
    """A request's place in a :class:`StreamBudget`, for ``holder``, taken
    at most once and given back once."""

    def __init__(self, budget: StreamBudget, holder: tuple[str, ...]) -> None:
        self.budget = budget
        self.holder = holder
        self._held = False
        self._writer = False
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._held

    def take(self, writer: bool = False) -> bool:
        self._writer = writer
        # the admin face's clients without a user are trusted: no share
        capped = self.holder != _ADMIN_IDENTITY
        self._held = self.budget.acquire(writer, self.holder, capped)
        return self._held

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self.budget.release(self._writer, self.holder)

    def cut(self) -> None:
        """The stream was too slow: counted, and its slot given back."""
        if self._held:
            self.budget.cut(self._writer)
        self.release()


class _Releasing:
    """A response body calling ``release`` once it is done or closed (also
    when closed before its first chunk)."""

    def __init__(self, body: Iterator[bytes], release: Callable[[], None]) -> None:
        self._body = body
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        finally:
            self._release()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._release()


def _incomplete(req: Request, unread: int) -> list[bytes]:
    """The answer to a body the protocol decoder wants more of (empty, cut
    short, or no message it can finish): :data:`INCOMPLETE_RESPONSE`, as
    breezy's own smart server app answers it.  The connection closes when
    the client sent less than its ``Content-Length``."""
    headers = [("Content-Length", str(len(INCOMPLETE_RESPONSE)))]
    if unread:
        headers.append(("Connection", "close"))
    req.respond(200, "application/octet-stream", headers)
    return [INCOMPLETE_RESPONSE]


def _too_large(length: int, limit: int, verb: bytes | None = None) -> HTTPError:
    """The 413 refusing a body of ``length`` bytes (left unread) to ``verb``
    (one of breezy's: a client's own verb is not echoed)."""
    what = f" for {verb.decode('ascii', 'replace')}" if verb else ""
    return HTTPError(
        413,
        f"request body of {length} bytes exceeds the limit of {limit}{what}",
        [("Connection", "close")],
    )


def _relpath(location: layout.Location) -> str:
    return "/".join(location.segments) or "."


#: Refusal of codebase ``bzr`` on the admin face: the public URL's shape.
ADMIN_BZR_REASON = (
    "there is no codebase 'bzr' on the admin face: /bzr/ is the public "
    "face's prefix; drop /bzr/ from the URL (HOST:PORT/CODEBASE/CAMPAIGN)"
)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _prefix_hint(reason: str) -> str:
    """``reason`` of a 404 outside the public face's prefix, with where
    branches are."""
    return (
        f"{reason}: branches are under {PUBLIC_PREFIX}/ on this face, "
        f"as {PUBLIC_PREFIX}/CODEBASE/CAMPAIGN"
    )


def missing_prefix(app: StoreApp, req: Request, path: str) -> Iterable[bytes]:
    """A smart request on the public face without ``/bzr/``: refused, in the
    smart protocol, with where the branch is."""
    return app._smart_refusal(
        req, path, HTTPError(404, _prefix_hint(f"not found: /{path}"))
    )


def health(app: StoreApp, req: Request) -> Iterable[bytes]:
    """``ok`` while the process serves requests."""
    return api.ok(req)


@dataclass(frozen=True)
class Route:
    """One URL of the store: ``handler(app, req, **groups)`` for ``method``
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
    Route((ADMIN,), "POST", _SMART_PATH, "smart", StoreApp.smart),
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
    Route((PUBLIC,), "POST", PUBLIC_PREFIX + _SMART_PATH, "smart", StoreApp.smart),
    Route((PUBLIC,), "GET", "/", "home", browse.home_page),
    Route((PUBLIC,), "GET", "/bzr/?", "list", api.list_codebases),
    Route((PUBLIC,), "GET", "/bzr/repositories", "repositories", api.repositories),
    Route((PUBLIC,), "GET", "/ready", "ready", api.public_ready),
    Route((PUBLIC,), "GET", f"/bzr/{_CB}/diff", "diff", api.diff_view),
    Route(
        (PUBLIC,),
        "GET",
        f"/bzr/{_CB}/revision-info",
        "revision-info",
        api.revision_info,
    ),
    Route((PUBLIC,), "GET", f"/bzr/{_CB}/?", "browse-codebase", files.directory),
    Route(
        (PUBLIC,),
        "GET",
        rf"/bzr/{_CB}/(?P<campaign>{_NAME})(?:/(?P<role>{_NAME}))?/?",
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
        rf"/bzr/{_CB}/\+revision/(?P<revid>.+)",
        "browse-revision",
        api.revision_page,
    ),
    # the code browser (breezy_janitor_store/browser/)
    Route(
        (PUBLIC,),
        "GET",
        rf"/bzr/{_CB}/(?P<campaign>{_NAME})(?:/(?P<role>{_NAME}))?/\+atom",
        "browse-branch-atom",
        browser_feeds.branch_feed,
    ),
    Route(
        (PUBLIC,),
        "GET",
        rf"/bzr/{_CB}/(?P<campaign>{_NAME})(?:/(?P<role>{_NAME}))?/\+revno/(?P<revno>[0-9]{{1,9}})",
        "browse-revno",
        browse.revno_page,
    ),
    Route(
        (PUBLIC,),
        "GET",
        rf"/bzr/\+atom/(?P<campaign>{_NAME})",
        "browse-campaign-atom",
        browser_feeds.campaign_feed,
    ),
    *(
        Route((PUBLIC,), "GET", rf"/bzr/{_CB}/\+{kind}{rest}", f"browse-{name}", view)
        for kind, rest, name, view in BROWSER_VIEWS
    ),
    # the public face's branch URLs without /bzr/ (after every other route)
    Route((PUBLIC,), "POST", _SMART_PATH, "smart-without-prefix", missing_prefix),
)
