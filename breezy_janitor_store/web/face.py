"""The face a handler receives: what it may know of the store it serves.

In the spirit of dulwich's ``Backend``, a handler is
``handler(face, req, **groups)`` and never sees the WSGI application.
A :class:`Face` answers the web side's recurring questions, each under one
rule and in one place:

* which codebase or location a request names, and whether it exists here
  (:meth:`Face.location`, :meth:`Face.codebase`): a bad name is a ``400``
  (:meth:`Face.names`, the one place an ``InvalidName`` becomes one), an
  unknown campaign or codebase a ``404``, a listed codebase whose repository
  is missing a ``503`` where the janitor's API clients expect it;
* who may write, in which realm (:meth:`Face.may_write`,
  :meth:`Face.may_create`, :meth:`Face.challenge`);
* where its branches are (:attr:`Face.prefix`, said once here) and the
  public face's root URL (:meth:`Face.public_root`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from wsgiref.util import application_uri

from ..policy.policies import (
    Campaigns,
    CodebasePolicy,
    Environ,
    WritePolicy,
    is_listed,
)
from ..store import layout
from ..store.budget import StreamBudget
from ..store.diff import DiffLimits
from ..store.storage import Storage
from .http import HTTPError, Request

__all__ = ["ADMIN", "ADMIN_BZR_REASON", "PUBLIC", "PUBLIC_PREFIX", "Face"]

ADMIN = "admin"
PUBLIC = "public"
#: URL prefix of the public face's branches.
PUBLIC_PREFIX = "/bzr"
#: The realm of a write policy without one of its own.
DEFAULT_REALM = "breezy janitor store"
#: Refusal of codebase ``bzr`` on the admin face: the public URL's shape.
ADMIN_BZR_REASON = (
    "there is no codebase 'bzr' on the admin face: /bzr/ is the public "
    "face's prefix; drop /bzr/ from the URL (HOST:PORT/CODEBASE/CAMPAIGN)"
)

# A Host header worth echoing in links: a host name or address, optional port.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


@dataclass(frozen=True)
class SmartSettings:
    """What the smart endpoint of a face needs beyond the face."""

    client_max_size: int
    break_locks_older_than: float | None
    lock_lease: float | None
    stream_budget: StreamBudget


@dataclass
class Face:
    """One face of the store (``admin`` or ``public``), as handlers see it."""

    name: str
    storage: Storage
    campaigns: Campaigns
    codebase_policy: CodebasePolicy
    write_policy: WritePolicy
    public_url: str | None
    diff_timeout: float
    diff_limits: DiffLimits
    smart: SmartSettings
    prefix: str = field(init=False)
    #: Most entries of a revision-info answer (None: ``revinfo.MAX_ENTRIES``).
    revision_info_limit: int | None = None

    def __post_init__(self) -> None:
        if self.name not in (ADMIN, PUBLIC):
            raise ValueError(
                f"face must be {ADMIN!r} or {PUBLIC!r}, not {self.name!r}"
            )
        self.prefix = PUBLIC_PREFIX if self.is_public else ""

    @property
    def is_public(self) -> bool:
        return self.name == PUBLIC

    @property
    def stream_budget(self) -> StreamBudget:
        return self.smart.stream_budget

    @property
    def lock_lease(self) -> float | None:
        return self.smart.lock_lease

    # -- names and existence --

    @staticmethod
    def names(*names: str | None) -> layout.Location:
        """The location of codebase, campaign and role ``names`` (``None``s
        left out), or a ``400`` when one breaks the naming rule."""
        return Face.parse("/".join(n for n in names if n is not None))

    @staticmethod
    def parse(path: str) -> layout.Location:
        """The location ``path`` names, or a ``400`` (the one place a bad
        name becomes one)."""
        try:
            return layout.parse_location(path)
        except layout.InvalidName as e:
            raise HTTPError(400, str(e)) from None

    def admit_campaign(self, campaign: str | None) -> None:
        """``404`` unless ``campaign`` (if any) is one of this store's."""
        if campaign is not None and campaign not in self.campaigns:
            raise HTTPError(404, f"unknown campaign: {campaign}")

    def location(self, path: str) -> layout.Location:
        """The branch location of a smart request's ``path``: valid names,
        an admitted campaign, a codebase the policy admits (on disk or
        not: a writer creates it)."""
        location = self.parse(path)
        if not self.is_public and location.codebase == PUBLIC_PREFIX[1:]:
            raise HTTPError(404, ADMIN_BZR_REASON)
        self.admit_campaign(location.campaign)
        if not self.codebase_policy.codebase_exists(location.codebase):
            raise HTTPError(404, f"no such codebase: {location.codebase}")
        return location

    def codebase(self, name: str, *, inaccessible: bool = False) -> str:
        """``name``, a codebase this face serves: the policy admits it and
        its repository is on disk.

        :param inaccessible: answer a codebase the policy lists (the
            janitor's database) whose repository is missing with ``503``
            ("temporarily inaccessible", as the janitor's API clients
            expect) rather than ``404``.
        """
        if not layout.is_valid_name(name) or not self.codebase_policy.codebase_exists(
            name
        ):
            raise HTTPError(404, f"no such codebase: {name}")
        if not self.storage.has_repository(name):
            raise self.missing(name, inaccessible=inaccessible)
        return name

    def missing(self, name: str, *, inaccessible: bool = False) -> HTTPError:
        """The refusal of admitted codebase ``name`` without a repository."""
        if inaccessible and is_listed(self.codebase_policy, name):
            return HTTPError(503, f"the repository of {name} is temporarily inaccessible")
        return HTTPError(404, f"no such codebase: {name}")

    def is_campaign(self, name: str) -> bool:
        return name in self.campaigns

    # -- writes --

    @property
    def realm(self) -> str | None:
        """The realm a writer authenticates in, when this face's writers
        answer a challenge (the write policy's ``realm``)."""
        return getattr(self.write_policy, "realm", None)

    def may_write(self, environ: Environ) -> bool:
        """Whether this request writes (the write policy says so)."""
        return bool(self.write_policy(environ))

    def may_create(self, environ: Environ) -> bool:
        """Whether a smart request of this face could create a codebase: it
        writes, or a worker's credentials would let it (a 401 challenge)."""
        return self.realm is not None or self.may_write(environ)

    def challenge(self) -> list[tuple[str, str]]:
        """The ``401``'s ``WWW-Authenticate`` header."""
        return [("WWW-Authenticate", f'Basic realm="{self.realm or DEFAULT_REALM}"')]

    # -- URLs --

    def public_root(self, req: Request) -> str:
        """Absolute URL of the public face's root, without a trailing slash.

        ``public_url`` when set, else (on the public face) derived from the
        request: its ``Host`` when that is a host name or address with an
        optional port, else the server's own name and port (a client still
        chooses which valid host name links show: set ``public_url`` behind
        a cache).  On the admin face without ``public_url``, ``""`` (links
        are then root-relative: the public face is assumed to share the
        host).
        """
        if self.public_url:
            return self.public_url.rstrip("/")
        if self.is_public:
            environ = req.environ
            if not _HOST.fullmatch(environ.get("HTTP_HOST", "")):
                # not a host name or address: the address the server listens on
                environ = {k: v for k, v in environ.items() if k != "HTTP_HOST"}
            return application_uri(environ).rstrip("/")
        return ""

    def branches_url(self, req: Request) -> str:
        """Absolute URL of the public face's branches (``ROOT/bzr``)."""
        return self.public_root(req) + PUBLIC_PREFIX

    def home(self, req: Request) -> str | None:
        """Path of this face's home page; ``None`` on the admin face."""
        if self.is_public:
            return req.environ.get("SCRIPT_NAME", "") + "/"
        return None

    def prefix_hint(self, reason: str) -> str:
        """``reason`` of a ``404`` outside this face's prefix, with where
        branches are."""
        return (
            f"{reason}: branches are under {self.prefix}/ on this face, "
            f"as {self.prefix}/CODEBASE/CAMPAIGN"
        )

    def outside_prefix(self, path: str) -> bool:
        """Whether ``path`` is outside this face's prefix (never, without one)."""
        prefix = self.prefix
        return bool(prefix) and not (path == prefix or path.startswith(prefix + "/"))

    def branches_base(self, req: Request) -> str:
        """Path (or URL, on the admin face) of the public face's branches,
        for links in pages."""
        if self.is_public:
            return req.environ.get("SCRIPT_NAME", "").rstrip("/") + self.prefix
        return self.branches_url(req)
