"""The store's policy for each smart verb: whether it writes, why it is
refused, its body limit, whether it is a heavy stream, its argument checks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from breezy.bzr.branch import BranchReferenceFormat
from breezy.bzr.bzrdir import BzrDirMetaFormat1
from breezy.bzr.smart import protocol, request
from breezy.bzr.smart.repository import (
    SmartServerRepositoryInsertStream,
    SmartServerRepositoryInsertStream_1_19,
    SmartServerRepositoryInsertStreamLocked,
)
from breezy.transport import Transport

from ..store import layout
from ..store.branchconf import FOLLOWED_OPTIONS, REFERENCE_REASON

__all__ = [
    "ARGUMENT_CHECKS",
    "CONTROL_DIR_FORMATS",
    "HEAVY_VERBS",
    "INSERT_STREAM_VERBS",
    "MAX_BACKLOG",
    "MAX_CHUNK",
    "READ_CATEGORY",
    "SMALL_BODY_LIMIT",
    "UNKNOWN_VERB",
    "UNSERVED_VERBS",
    "ArgumentCheck",
    "CheckedRequest",
    "VerbPolicy",
]

_V3 = protocol.ProtocolThreeDecoder


logger = logging.getLogger(__name__)


#: Bytes read from the request body at a time.
MAX_CHUNK = 64 * 1024
#: Request-body bytes a streamed insert may have queued and not yet consumed.
MAX_BACKLOG = 4 * 1024 * 1024
#: Largest request body of every verb but a writer's insert stream.
SMALL_BODY_LIMIT = 4 * 1024 * 1024


READ_CATEGORY = "read"


_BREAK_LOCK = (
    b"locks are broken through the store: GET/POST /CODEBASE/locks on the "
    b"admin face or 'brz janitor-store break-lock'"
)


_WHOLE = b"this verb would hold a whole repository in memory; use get_stream"


#: Verbs the store never runs: breaking a lock would ask the server's own
#: terminal for confirmation, and these two build their whole answer in
#: memory (no breezy client of this era sends them).
UNSERVED_VERBS = {
    b"Branch.break_lock": _BREAK_LOCK,
    b"Repository.break_lock": _BREAK_LOCK,
    b"Repository.tarball": _WHOLE,
    b"get_bundle": _WHOLE,
}


#: Verbs whose request body is a repository stream (the large body limit).
INSERT_STREAM_VERBS = {
    b"Repository.insert_stream": SmartServerRepositoryInsertStream,
    b"Repository.insert_stream_1.19": SmartServerRepositoryInsertStream_1_19,
    b"Repository.insert_stream_locked": SmartServerRepositoryInsertStreamLocked,
}


#: Verbs that stream a repository's contents one way or the other, or work
#: through all of it: they count against the :class:`StreamBudget`.
HEAVY_VERBS = frozenset(
    {
        *INSERT_STREAM_VERBS,
        b"Repository.get_stream",
        b"Repository.get_stream_1.19",
        b"Repository.get_stream_for_missing_keys",
        b"Repository.iter_files_bytes",
        b"Repository.iter_revisions",
        b"Repository.revision_archive",
        b"Repository.pack",
        b"Repository.reconcile",
        b"PackRepository.autopack",
        b"VersionedFileRepository.get_inventories",
        # whole answers built in memory, as large as the file or history
        b"Repository.annotate_file_revision",
        b"Repository.all_revision_ids",
        b"Repository.gather_stats",
        b"Repository.get_revision_graph",
    }
)


_NEW_REPOSITORY = (
    b"a branch must keep its revisions in the codebase's shared repository, "
    b"not in a repository of its own"
)


class CheckedRequest(Protocol):
    """What an argument check sees of a request (a ``StoreRequest``)."""

    verb: bytes

    @property
    def transport(self) -> Transport: ...

    def disk_path(self, client_path: bytes) -> tuple[str, ...]: ...


#: ``check(request, args)``: ``(path, reason)`` refusing the arguments, or None.
ArgumentCheck = Callable[[CheckedRequest, tuple], "tuple[bytes, bytes] | None"]


#: Network names of the control directories a client may create: breezy's
#: meta directory (what ``brz push`` asks for a branch in a shared
#: repository).  Not the colocated variant (``development-colo``: the smart
#: client cannot open colocated branches, and a location holds one branch)
#: nor the all-in-one formats of old (``Bazaar-NG branch, format 6``), which
#: keep a repository inside the branch.
CONTROL_DIR_FORMATS = frozenset({BzrDirMetaFormat1().network_name()})


_CONTROL_DIR_FORMAT = (
    b"a branch is made in breezy's meta directory format "
    b"(Bazaar-NG meta directory, format 1)"
)


def _no_new_repository(req: CheckedRequest, args: tuple) -> tuple[bytes, bytes] | None:
    """``BzrDirFormat.initialize_ex_1.16`` (arguments: format, path,
    use_existing_dir, create_prefix, force_new_repo, stacked_on, ...) may
    create only a meta directory, and may not ask for a repository of its
    own, nor for stacking."""
    if len(args) > 1 and args[0] not in CONTROL_DIR_FORMATS:
        return args[1], _CONTROL_DIR_FORMAT
    if len(args) > 4 and args[4] == b"True":
        return args[1], _NEW_REPOSITORY
    if len(args) > 5 and args[5]:
        return args[1], REFERENCE_REASON.encode()
    return None


def _no_followed_option(req: CheckedRequest, args: tuple) -> tuple[bytes, bytes] | None:
    """``Branch.set_config_option``/``_dict`` (arguments: path, branch and
    repository tokens, value, name, section) may not set a location that
    breezy would follow (``stacked_on_location``, ``bound_location``)."""
    if len(args) > 4 and args[4].decode("utf-8", "replace") in FOLLOWED_OPTIONS:
        return args[0], f"{args[4].decode()}: {REFERENCE_REASON}".encode()
    return None


_REFERENCE_FORMAT = BranchReferenceFormat().network_name()


def _no_reference(req: CheckedRequest, args: tuple) -> tuple[bytes, bytes] | None:
    """``BzrDir.create_branch`` (arguments: path, branch format) may not make
    a branch reference."""
    if len(args) > 1 and args[1] == _REFERENCE_FORMAT:
        return args[0], REFERENCE_REASON.encode()
    return None


def _vfs_write_allowed(req: CheckedRequest, args: tuple) -> tuple[bytes, bytes] | None:
    """A file-level write (``put``, ``mkdir``, ``rename``...; its first one
    or two arguments are paths) must be one :func:`layout.vfs_write_refusal`
    allows."""
    operation = req.verb.decode()
    count = 2 if req.verb in (b"rename", b"move") else 1
    for client_path in args[:count]:
        reason = layout.vfs_write_refusal(req.disk_path(client_path), operation)
        if reason is not None:
            return client_path, reason.encode()
    return None


#: Reasons to refuse a verb's arguments.
ARGUMENT_CHECKS: dict[bytes, ArgumentCheck] = {
    b"BzrDirFormat.initialize_ex_1.16": _no_new_repository,
    b"Branch.set_config_option": _no_followed_option,
    b"Branch.set_config_option_dict": _no_followed_option,
    b"BzrDir.create_branch": _no_reference,
    **{verb.encode(): _vfs_write_allowed for verb in layout.VFS_WRITES},
}


@dataclass(frozen=True)
class VerbPolicy:
    """What the store lets a smart verb do.

    :ivar category: breezy's class of the verb (``read``, ``idem``, ``semi``,
        ``semivfs``, ``stream``, ``mutate``); None for a verb not in the
        registry.
    :ivar refused: why the store never runs the verb, or None.
    :ivar large_body: the verb's body is a repository stream: a writer may
        send up to the store's ``client_max_size``; every other body is
        limited to :data:`SMALL_BODY_LIMIT`.
    :ivar heavy: the verb counts against the :class:`StreamBudget`.
    :ivar check: callable(request, args) giving ``(path, reason)`` to refuse
        these arguments, or None.
    """

    category: str | None
    refused: bytes | None = None
    large_body: bool = False
    heavy: bool = False
    check: ArgumentCheck | None = None

    @property
    def writes(self) -> bool:
        """Whether the verb may change anything (read-only faces refuse it)."""
        return self.category not in (READ_CATEGORY, None)

    def body_limit(self, writable: bool, client_max_size: int) -> int:
        """Largest request body accepted for the verb."""
        if self.large_body and writable:
            return client_max_size
        return min(SMALL_BODY_LIMIT, client_max_size)

    def refusal(
        self, req: CheckedRequest, args: tuple
    ) -> request.FailedSmartServerResponse | None:
        """The smart error answering ``args`` without running the verb, or None.

        On a read-only face every verb that may write is refused outright,
        whatever it would do to the disk.
        """
        if self.refused is not None:
            return request.FailedSmartServerResponse(
                (b"PermissionDenied", req.verb, self.refused)
            )
        if self.writes and req.transport.is_readonly():
            return request.FailedSmartServerResponse((b"ReadOnlyError",))
        reason = self.check(req, args) if self.check is not None else None
        if reason is not None:
            return request.FailedSmartServerResponse((b"PermissionDenied", *reason))
        return None


#: The policy of a verb the registry does not have (breezy answers it with
#: ``UnknownSmartMethod``).
UNKNOWN_VERB = VerbPolicy(None)
