"""The storage directory: codebase repositories and their transports."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict

import breezy.bzr  # noqa: F401 - registers the formats, 2a among them
from breezy import controldir, errors, urlutils
from breezy.transport import Transport, get_transport_from_url

from . import durable
from .layout import CONTROL, is_valid_name
from .transport import StoreTransport

__all__ = ["REPOSITORY_FORMAT", "Storage"]

#: Format of the shared repository created for each codebase.
REPOSITORY_FORMAT = "2a"
_CONTROL_SUFFIX = os.sep + CONTROL
#: Jailed codebase roots kept for reuse (see :meth:`Storage.transport`).
ROOT_CACHE_SIZE = 1024


class Storage:
    """The storage directory ``DIR`` holding one shared repository per codebase.

    Creating one changes nothing in the process: the patches the store
    needs are installed by its entry points (``StoreApp``, the commands),
    see :func:`breezy_janitor_store.store.patches.install`.

    :param sync: sync every write before it is acknowledged (see
        :mod:`breezy_janitor_store.store.durable`); default: on unless the
        environment variable ``BZR_STORE_SYNC`` turns it off.  Only
        throw-away stores (tests, benchmarks) turn it off.
    """

    def __init__(self, directory: str, *, sync: bool | None = None) -> None:
        self.sync = durable.sync_from_environment() if sync is None else sync
        self.directory = os.path.abspath(directory)
        self._prefix = os.path.join(self.directory, "")  # with its separator
        self._lock = threading.Lock()
        self._roots: OrderedDict[tuple, tuple[tuple, StoreTransport]] = OrderedDict()
        self._roots_lock = threading.Lock()

    def path(self, codebase: str) -> str:
        # (concatenated, not os.path.join: called several times a request,
        # and codebase names have no separator)
        return self._prefix + codebase

    def has_repository(self, codebase: str) -> bool:
        """Whether ``codebase`` has its shared repository on disk (never
        through a symbolic link planted as the codebase directory)."""
        path = self._prefix + codebase
        return os.path.isdir(path + _CONTROL_SUFFIX) and not os.path.islink(path)

    def codebases(self) -> list[str]:
        """Names of the codebases on disk, sorted."""
        try:
            entries = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(n for n in entries if is_valid_name(n) and self.has_repository(n))

    def _codebase_transport(self, codebase: str) -> Transport:
        """Disk transport at the codebase directory.

        Not kept: names come from requests, anonymous ones included; the
        jails of codebases on disk are kept, bounded, by :meth:`transport`.
        """
        return get_transport_from_url(
            urlutils.local_path_to_url(self.path(codebase)) + "/"
        )

    def transport(
        self, codebase: str, *, writable: bool, is_campaign
    ) -> StoreTransport:
        """The jailed virtual root of ``codebase`` for one request.

        Jails are shared between requests: one is reused while the codebase
        directory is the same one on disk (one ``lstat``), so a directory
        replaced, moved or turned into a symlink gets a new jail.  Each call
        returns a view of its own (see :meth:`StoreTransport.for_request`).
        """
        key = (codebase, writable, is_campaign)
        try:
            hash(key)
            st = os.lstat(self.path(codebase))
            identity = (st.st_dev, st.st_ino, st.st_mode)
        except (OSError, TypeError):  # no directory yet; unhashable policy
            identity = None
        if identity is not None:
            with self._roots_lock:
                cached = self._roots.get(key)
                if cached is not None and cached[0] == identity:
                    self._roots.move_to_end(key)
                    return cached[1].for_request()
        root = StoreTransport.for_codebase(
            self._codebase_transport(codebase),
            codebase,
            writable=writable,
            is_campaign=is_campaign,
            sync=self.sync,
        )
        if identity is not None:
            with self._roots_lock:
                self._roots[key] = (identity, root)
                if len(self._roots) > ROOT_CACHE_SIZE:
                    self._roots.popitem(last=False)
        return root.for_request()

    def ensure_repository(self, codebase: str) -> bool:
        """Create the codebase's shared repository unless it exists.

        The repository is built in a scratch directory, synced, and renamed
        into place (the storage directory synced after), so concurrent
        requests (or processes) never see half of one, nor does the store
        after a crash.  Returns whether this call created it.
        """
        if self.has_repository(codebase):
            return False
        with self._lock:
            if self.has_repository(codebase):
                return False
            scratch = tempfile.mkdtemp(prefix=".new-", dir=self.directory)
            try:
                _create_shared_repository(scratch)
                if self.sync:
                    durable.sync_tree(scratch)
                try:
                    os.rename(scratch, self.path(codebase))
                except OSError:
                    if self.has_repository(codebase):
                        return False  # another process won the race
                    if os.path.islink(self.path(codebase)):
                        raise errors.PermissionDenied(
                            codebase, "not a directory of the store"
                        ) from None
                    # A non-empty directory without a repository: adopt it.
                    _create_shared_repository(self.path(codebase))
                    if self.sync:
                        durable.sync_tree(self.path(codebase))
                if self.sync:
                    durable.sync_directory(self.directory)
                return True
            finally:
                shutil.rmtree(scratch, ignore_errors=True)


def _create_shared_repository(path: str) -> None:
    fmt = controldir.format_registry.make_controldir(REPOSITORY_FORMAT)
    t = get_transport_from_url(urlutils.local_path_to_url(path))
    bzrdir = fmt.initialize_on_transport(t)
    repo = bzrdir.create_repository(shared=True)
    repo.set_make_working_trees(False)


def layout_names(transport: Transport, relpath: str) -> list[str]:
    """Sorted valid layout names in directory ``relpath`` of ``transport``;
    none when it cannot be listed."""
    try:
        entries = transport.list_dir(relpath)
    except (errors.PathError, errors.TransportError):
        return []
    return sorted(n for n in entries if is_valid_name(n))
