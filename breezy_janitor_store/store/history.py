"""Reading a codebase's repository and branches for the API and browse pages.

Everything is opened by :mod:`breezy_janitor_store.store.branches` through the
codebase's read-only :class:`~breezy_janitor_store.store.transport.StoreTransport`,
the one enforcement point for disk access: branch references and stacking
are never followed.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass

from breezy import errors
from breezy.branch import Branch
from breezy.repository import Repository
from breezy.revision import NULL_REVISION, Revision

from . import branches as _branches
from . import layout
from .branches import RefusedBranch
from .storage import Storage, layout_names

__all__ = [
    "NULL_REVISION",
    "BranchRef",
    "NoRepository",
    "RefusedBranch",
    "branches",
    "has_revision",
    "iter_revisions",
    "lefthand_prefix",
    "mainline",
    "open_branch",
    "open_repository",
    "parents",
    "read_revisions",
    "revision_path",
]

logger = logging.getLogger(__name__)


class NoRepository(Exception):
    """The codebase has no (readable) shared repository."""


def _root(storage: Storage, codebase: str, campaigns):
    return storage.transport(
        codebase, writable=False, is_campaign=campaigns.__contains__
    )


def open_repository(storage: Storage, codebase: str, campaigns) -> Repository:
    """The codebase's shared repository, read-only.

    :raises NoRepository: there is none (yet), or it cannot be opened.
    """
    if not storage.has_repository(codebase):
        raise NoRepository(codebase)
    try:
        return _branches.open_repository(_root(storage, codebase, campaigns))
    except (errors.NotBranchError, errors.NoRepositoryPresent) as e:
        raise NoRepository(codebase) from e


def open_branch(
    storage: Storage,
    codebase: str,
    segments: tuple[str, ...],
    campaigns,
    repository: Repository | None = None,
) -> Branch | None:
    """The branch at virtual ``segments`` (campaign[, role]), or None.

    :raises RefusedBranch: a branch reference or a stacked branch.
    """
    try:
        return _branches.open_branch(
            _root(storage, codebase, campaigns), segments, repository
        )
    except (errors.NotBranchError, errors.NoRepositoryPresent):
        return None


@dataclass(frozen=True)
class BranchRef:
    """A branch of a codebase: its campaign and role (``main`` for the
    campaign branch itself); ``branch`` is None for a refused branch, and
    ``refused`` says what it is (``branch reference``...)."""

    campaign: str
    role: str
    branch: Branch | None
    refused: str | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        return layout.branch_segments(self.campaign, self.role)


def branches(
    storage: Storage, codebase: str, campaigns, limit: int | None = None
) -> list[BranchRef]:
    """The codebase's campaign and role branches, sorted by campaign, role
    (only the first ``limit``, when given: no more are opened)."""
    root = _root(storage, codebase, campaigns)
    try:
        repository = _branches.open_repository(root)
    except (errors.NotBranchError, errors.NoRepositoryPresent):
        return []
    found = []

    def add(campaign: str, role: str, segments: tuple[str, ...]) -> None:
        try:
            b = _branches.open_branch(root, segments, repository)
        except (errors.NotBranchError, errors.NoRepositoryPresent):
            return
        except RefusedBranch as e:
            found.append(BranchRef(campaign, role, None, e.what))
            return
        found.append(BranchRef(campaign, role, b))

    for campaign in layout_names(root, "."):
        if campaign not in campaigns:
            continue
        add(campaign, layout.MAIN_ROLE, layout.branch_segments(campaign))
        for role in layout_names(root, campaign):
            if limit is not None and len(found) >= limit:
                return found
            if layout.is_role_name(role):
                add(campaign, role, layout.branch_segments(campaign, role))
        if limit is not None and len(found) >= limit:
            return found
    return found


def mainline(
    repository: Repository, new: bytes, old: bytes = NULL_REVISION
) -> list[bytes]:
    """Revisions on ``new``'s left-hand ancestry, newest first, that ``old``
    does not have.

    When ``old`` is on that line this is the line back to (not including)
    ``old``; otherwise it stops at the first revision ``old`` also has, not
    at the start of history.  Ghosts end the line.
    """
    if new == NULL_REVISION or new == old:
        return []
    with repository.lock_read():
        line = _lefthand(repository, new, old)
        if line and old != NULL_REVISION and line[-1] != old:
            unique = repository.get_graph().find_unique_ancestors(new, [old])
            cut = next((i for i, r in enumerate(line) if r not in unique), len(line))
            return line[:cut]
        return line[:-1] if line and line[-1] == old else line


def _lefthand(repository: Repository, new: bytes, stop: bytes) -> list[bytes]:
    """``new`` and its left-hand ancestors, down to ``stop`` if reached."""
    known = getattr(repository.revisions, "get_known_graph_ancestry", None)
    if known is None:  # not a versioned-file repository: the generic walk
        return list(
            repository.get_graph().iter_lefthand_ancestry(new, [stop, NULL_REVISION])
        )
    # The whole ancestry in a few index reads, then a walk in memory.
    graph = known([(new,)])
    line = []
    key: tuple[bytes, ...] | None = (new,)
    while key is not None:
        line.append(key[0])
        if key[0] == stop:
            break
        try:
            parents = graph.get_parent_keys(key)
        except KeyError:
            parents = None
        key = parents[0] if parents else None
        if key is not None and key[0] == NULL_REVISION:
            key = None
    return line


def lefthand_prefix(repository: Repository, tip: bytes, count: int) -> list[bytes]:
    """The first ``count`` revisions of ``tip``'s left-hand ancestry, newest
    first: :func:`mainline`'s start, read one revision at a time (a page of
    a long history without reading all of it).  A revision not in the
    repository is the last one."""
    line: list[bytes] = []
    key: bytes | None = tip
    with repository.lock_read():
        while key is not None and key != NULL_REVISION and len(line) < count:
            line.append(key)
            parents = repository.get_parent_map([key]).get(key)
            key = parents[0] if parents else None
    return line


def has_revision(repository: Repository, revid: bytes) -> bool:
    if revid == NULL_REVISION:
        return True
    with repository.lock_read():
        return repository.has_revision(revid)


def revision_path(codebase: str, revid: bytes) -> str:
    """Path of a revision's page below the public face's ``/bzr``."""
    quoted = urllib.parse.quote(revid, safe="@:+/")
    return f"/{codebase}/+revision/{quoted}"


def read_revisions(
    repository: Repository, revids: list[bytes]
) -> list[Revision | None]:
    """The revisions of ``revids`` (present ones), in order; None for each
    whose text cannot be read (a writer may store any bytes as one)."""
    with repository.lock_read():
        try:
            return list(repository.get_revisions(revids))
        except Exception:  # one of them is unreadable: read them one by one
            logger.debug("unreadable revisions among %d", len(revids), exc_info=True)
        found: list[Revision | None] = []
        for revid in revids:
            try:
                found.append(repository.get_revision(revid))
            except Exception:  # whatever breezy's parser makes of the bytes
                logger.debug("unreadable revision %r", revid, exc_info=True)
                found.append(None)
        return found


def iter_revisions(repository: Repository, revids: list[bytes], batch: int = 500):
    """``(revid, Revision or None)`` for ``revids`` in order, fetched in
    batches; None for a revision that cannot be read."""
    for i in range(0, len(revids), batch):
        part = revids[i : i + batch]
        yield from zip(part, read_revisions(repository, part))


def parents(repository: Repository, revid: bytes) -> list[bytes]:
    """``revid``'s parents as the repository's graph has them (never from
    the revision's text, which may be unreadable)."""
    with repository.lock_read():
        found = repository.get_parent_map([revid]).get(revid) or ()
    return [p for p in found if isinstance(p, bytes) and p != NULL_REVISION]
