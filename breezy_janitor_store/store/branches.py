"""Opening a codebase's repository and branches on the server's own behalf.

The API, the browse pages, diff, revision-info, remotes and locks open
repositories and branches only through these functions.  Each opens through
the codebase's jailed :class:`~breezy_janitor_store.store.transport.StoreTransport`,
with breezy's bzr prober only (no foreign probers, no redirections), and with
no ordinary transport to fall back on:

* a branch reference is never followed: it is reported as
  :class:`BranchReference`;
* stacking is never followed (branches are opened with ``ignore_fallbacks``):
  a stacked branch is reported as :class:`StackedBranch`;
* a branch's repository is the codebase's shared repository, opened at the
  codebase root; nothing is looked up by walking the tree.

So nothing a client wrote makes the server open a location outside the
codebase, let alone connect out.
"""

from __future__ import annotations

from breezy import errors
from breezy.branch import Branch, UnstackableBranchFormat
from breezy.bzr import BzrProber
from breezy.bzr.branch import BranchReferenceFormat
from breezy.bzr.bzrdir import BzrDir, BzrDirMetaFormat1
from breezy.repository import Repository
from breezy.transport import Transport

__all__ = [
    "BranchReference",
    "RefusedBranch",
    "StackedBranch",
    "UnknownBranchFormat",
    "open_branch",
    "open_branch_in",
    "open_controldir",
    "open_repository",
]


class RefusedBranch(Exception):
    """A branch the store does not open: what it is, as a short phrase."""

    what = "refused branch"

    def __init__(self, location: str) -> None:
        super().__init__(f"{location} is a {self.what}; the store does not follow it")
        self.location = location


class BranchReference(RefusedBranch):
    what = "branch reference"


class StackedBranch(RefusedBranch):
    what = "stacked branch"


class UnknownBranchFormat(RefusedBranch):
    what = "branch of an unknown format"


def open_controldir(transport: Transport) -> BzrDir:
    """The bzr control directory at ``transport``.

    :raises errors.NotBranchError: there is none.
    """
    try:
        fmt = BzrProber.probe_transport(transport)
    except (errors.UnknownFormatError, errors.UnsupportedFormatError) as e:
        raise errors.NotBranchError(transport.base) from e
    if not isinstance(fmt, BzrDirMetaFormat1):
        raise errors.NotBranchError(transport.base)
    return fmt.open(transport, _found=True)


def open_repository(root: Transport) -> Repository:
    """The shared repository at ``root``, the codebase's jailed root.

    :raises errors.NotBranchError: no control directory there.
    :raises errors.NoRepositoryPresent: no repository in it.
    """
    try:
        return open_controldir(root).open_repository()
    except (errors.UnknownFormatError, errors.UnsupportedFormatError) as e:
        raise errors.NoRepositoryPresent(root.base) from e


def open_branch(
    root: Transport,
    segments: tuple[str, ...],
    repository: Repository | None = None,
) -> Branch:
    """The branch at virtual ``segments`` (campaign[, role]) of ``root``.

    :param repository: the codebase's shared repository, if already open.
    :raises errors.NotBranchError: no branch there.
    :raises errors.NoRepositoryPresent: the codebase has no repository.
    :raises RefusedBranch: a branch reference, stacked, or of unknown format.
    """
    location = "/".join(segments)
    controldir = open_controldir(root.clone(location))
    if repository is None:
        repository = open_repository(root)
    return open_branch_in(controldir, location, repository)


def open_branch_in(
    controldir: BzrDir, location: str, repository: Repository | None = None
) -> Branch:
    """The branch of ``controldir`` (named ``location`` in errors).

    :param repository: its repository; found by breezy when None.
    :raises errors.NotBranchError: no branch there.
    :raises RefusedBranch: a branch reference, stacked, or of unknown format.
    """
    try:
        fmt = controldir.find_branch_format()
    except (errors.UnknownFormatError, errors.UnsupportedFormatError):
        raise UnknownBranchFormat(location) from None
    if isinstance(fmt, BranchReferenceFormat):
        raise BranchReference(location)
    # The format found is opened as it is: a reference planted since is not
    # read; fallbacks (stacking) are never opened.
    branch = fmt.open(
        controldir, _found=True, ignore_fallbacks=True, found_repository=repository
    )
    try:
        stacked_on = branch.get_stacked_on_url()
    except (errors.NotStacked, UnstackableBranchFormat):
        stacked_on = None
    except errors.BzrError:  # an unreadable branch.conf
        raise UnknownBranchFormat(location) from None
    if stacked_on:
        raise StackedBranch(location)
    return branch
