"""The store's transport: the one enforcement point for disk access.

Every smart request reaches the disk through a :class:`StoreTransport`.  It is
rooted at one codebase directory and presents it as a *virtual* tree:

* it is a jail: ``..`` stops at the codebase root and absolute paths start
  there, so nothing outside the codebase can be named;
* it maps the role ``main`` onto the campaign directory (see
  :func:`breezy_janitor_store.store.layout.to_disk`);
* on a read-only face every write raises breezy's ``readonly transport``
  error, and lock records (which name their holder) are absent; on a writable face each write is checked against the layout rules
  and refused with ``PermissionDenied`` naming the reason;
* every file a writer changes is synced, and every directory that receives
  a name (see :mod:`breezy_janitor_store.store.durable`): at once, or, for a
  smart request, once before its response (:meth:`StoreTransport.defer_syncs`);
* its URLs (``janitor-store:///CODEBASE/...``) and the paths in the errors it
  raises are virtual, so no server filesystem path ever reaches a client.

breezy private names used (check them on a breezy upgrade): ``Transport``'s
``_raw_base``, ``_segment_parameters``, ``_get_url_prefix``, ``_readv``,
``_can_roundtrip_unix_modebits`` and ``_redirected_to``.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import io
import os
import secrets
import stat
from collections.abc import Callable
from typing import Self

from breezy import errors, urlutils
from breezy.transport import FileExists, NoSuchFile, Transport

from . import branchconf, dircap, durable, holders, layout, paths

__all__ = ["READONLY_MESSAGE", "StoreTransport"]

#: Disk errors a client is told about plainly (as ``PermissionDenied``).
DISK_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}
)
#: breezy's smart server turns exactly this message into ``ReadOnlyError``.
READONLY_MESSAGE = "readonly transport"
URL_SCHEME = "janitor-store:"


#: ``rule(disk, is_campaign, layout_dir_op)``: why a write is refused, or None.
WriteRule = Callable[[tuple[str, ...], Callable[[str], bool], bool], "str | None"]


class _Jail:
    """State shared by a StoreTransport and all its clones."""

    __slots__ = (
        "codebase",
        "disk_root",
        "is_campaign",
        "real_root",
        "root",
        "rooted",
        "sync",
        "url",
        "writable",
        "write_refusal",
    )

    def __init__(
        self,
        root: Transport,
        codebase: str,
        writable: bool,
        is_campaign: Callable[[str], bool],
        write_refusal: WriteRule = layout.write_refusal,
        sync: bool = True,
    ) -> None:
        self.root = root
        self.sync = sync
        self.write_refusal = write_refusal
        self.codebase = codebase
        self.writable = writable
        self.is_campaign = is_campaign
        self.disk_root = urlutils.local_path_from_url(root.base).rstrip("/")
        # Where the codebase really is: the storage directory's real path
        # and the codebase's own name (a codebase that is a symlink is out).
        parent, name = os.path.split(self.disk_root)
        self.real_root = os.path.join(os.path.realpath(parent), name)
        self.rooted = not os.path.islink(self.real_root)
        self.url = f"{URL_SCHEME}///{urlutils.escape(codebase)}/"

    def scrub(self, text: object) -> str:
        """``text`` with the codebase's disk location replaced by its name."""
        text = str(text or "")
        for where in (self.root.base.rstrip("/"), self.disk_root):
            text = text.replace(where, "/" + self.codebase)
        return text


class StoreTransport(Transport):
    """A jailed, layout-enforcing view of one codebase directory.

    A :class:`~breezy.transport.Transport` of its own (as breezy's
    ``PathFilteringTransport`` is), holding the disk transport rather than
    decorating it: every primitive is implemented here, and the methods
    listed in :data:`INHERITED` are breezy's, built on those primitives (or
    refusing), so no call reaches the disk unchecked.
    """

    #: Public ``Transport`` methods used as breezy implements them: composed
    #: of the primitives below, or refusing (local paths, symlinks).
    INHERITED = frozenset(
        ["copy", "copy_to", "copy_tree", "copy_tree_to_transport", "create_prefix", "disconnect", "ensure_base", "get_bytes", "get_segment_parameters", "has_any", "local_abspath", "put_bytes_non_atomic", "put_file_non_atomic", "readlink", "readv", "relpath", "set_segment_parameter"]
    )

    def __init__(
        self,
        jail: _Jail,
        segments: tuple[str, ...] = (),
        verified: set[str] | None = None,
        syncs: durable.PendingSyncs | None = None,
    ) -> None:
        # What Transport.__init__ does, without its URL parsing (which costs
        # more than the rest of a request's path handling): a virtual URL has
        # no segment parameters, its names being escaped (no commas).
        self.base = self._raw_base = jail.url + paths.directory_url(segments)
        self._segment_parameters: dict[str, str] = {}
        self._jail = jail
        self._segments = segments
        self._verified = verified
        self._syncs = durable.PendingSyncs(jail.sync) if syncs is None else syncs

    @classmethod
    def for_codebase(
        cls,
        codebase_transport: Transport,
        codebase: str,
        *,
        writable: bool,
        is_campaign: Callable[[str], bool],
        write_refusal: WriteRule = layout.write_refusal,
        sync: bool = True,
    ) -> StoreTransport:
        """The virtual root of ``codebase``, stored at ``codebase_transport``.

        :param write_refusal: the layout's rule for writes (see
            :func:`layout.write_refusal`); breezy's transport conformance
            tests give one allowing any file inside a branch's ``.bzr``.
        :param sync: sync what is written (False: throw-away stores).
        """
        return cls(
            _Jail(
                codebase_transport, codebase, writable, is_campaign, write_refusal, sync
            )
        )

    def for_request(self) -> StoreTransport:
        """This transport for one request: it and its clones remember the
        disk paths found not to be symbolic links while the request lasts,
        and share the directory syncs owed (see :meth:`defer_syncs`)."""
        return StoreTransport(self._jail, self._segments, set())

    def defer_syncs(self) -> None:
        """From now on, this transport and its clones leave the directories
        that received names to be synced by :meth:`flush_syncs` (file
        contents are still synced as they are written)."""
        self._syncs.deferred = True

    def flush_syncs(self) -> None:
        """Sync the directories owed: before acknowledging a request."""
        self._sync(self._segments, self._syncs.flush)

    @classmethod
    def _get_url_prefix(cls) -> str:
        return URL_SCHEME

    # -- path translation: the only place client paths become disk paths --

    def _resolve(self, relpath: str) -> tuple[str, ...]:
        """Virtual segments of ``relpath`` (URL-escaped) below the jail root."""
        return paths.resolve(self._segments, relpath)

    def _read_path(self, relpath: str) -> tuple[tuple[str, ...], str]:
        segments = self._resolve(relpath)
        disk = layout.to_disk(segments)
        if not self._jail.writable and holders.is_lock_record(disk):
            # it names the holder (worker, address): absent to readers
            raise NoSuchFile(self._display(segments))
        if layout.is_store_record(disk):  # the store's own: absent to all
            raise NoSuchFile(self._display(segments))
        self._confine(segments, disk)
        return segments, paths.join(disk)

    def _confine(self, segments: tuple[str, ...], disk: tuple[str, ...]) -> None:
        """Refuse a path that symlinks (planted on disk) lead out of the codebase.

        Cheap when there are none: one ``lstat`` per existing component, once
        per request (a request's transports share the components found real;
        checking again would not close the race of a symlink planted between
        the check and the use any better).
        """
        root = path = self._jail.real_root
        verified = self._verified
        if verified and os.sep.join((root, *disk)) in verified:
            return  # every component was found real in this request
        if self._jail.rooted:
            for name in disk:
                path += os.sep + name
                if verified is not None and path in verified:
                    continue
                try:
                    if stat.S_ISLNK(os.lstat(path).st_mode):
                        break
                except OSError:
                    return  # nothing exists below a missing component
                if verified is not None:
                    verified.add(path)
            else:
                return
            real = os.path.realpath(os.path.join(root, *disk))
            if real.startswith(root + os.sep):
                return
        raise errors.PermissionDenied(
            self._display(segments), "symbolic links out of the codebase"
        )

    def _write_path(
        self, relpath: str, layout_dir_op: bool = False
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Check a write at ``relpath``; return its virtual and disk segments."""
        segments = self._resolve(relpath)
        if not self._jail.writable:
            raise errors.TransportNotPossible(READONLY_MESSAGE)
        disk = layout.to_disk(segments)
        reason = self._jail.write_refusal(disk, self._jail.is_campaign, layout_dir_op)
        if reason is not None:
            raise errors.PermissionDenied(self._display(segments), reason)
        self._confine(segments, disk)
        return segments, disk

    def _refuse(self, segments: tuple[str, ...], reason: str | None) -> None:
        if reason is not None:
            raise errors.PermissionDenied(self._display(segments), reason)

    def _exists(self, disk: tuple[str, ...]) -> bool:
        return os.path.lexists(os.path.join(self._jail.real_root, *disk))

    def _check_put(
        self, segments: tuple[str, ...], disk: tuple[str, ...], data: bytes | None
    ) -> None:
        """Refuse a whole-file write of ``data`` (None: a stream or an append).

        Format files are written once; a branch's location and configuration
        files only in place, and never naming a location breezy would follow;
        existing pack data only with the same content.
        """
        if layout.is_checked_file(disk):
            if data is None:
                self._refuse(segments, layout.CHECKED_REASON)
            if layout.is_format_file(disk) and self._exists(disk):
                self._refuse(segments, layout.FORMAT_REASON)
            self._refuse(
                segments,
                branchconf.content_refusal(
                    layout.control_path(disk), data, disk[: disk.index(layout.CONTROL)]
                ),
            )
        elif data is not None and layout.is_pack_data(disk) and self._exists(disk):
            with open(os.path.join(self._jail.real_root, *disk), "rb") as f:
                if f.read(len(data) + 1) != data:
                    self._refuse(segments, layout.PACK_REASON)

    def _display(self, segments: tuple[str, ...]) -> str:
        return "/" + self._jail.codebase + paths.display(segments)

    def _call(self, method: str, segments: tuple[str, ...], disk: str, *args, **kwargs):
        """Call ``method`` of the disk transport; its errors name virtual paths only."""
        try:
            return getattr(self._jail.root, method)(disk, *args, **kwargs)
        except errors.PathError as e:
            e.path = self._display(segments)
            e.extra = self._jail.scrub(e.extra)
            raise
        except (errors.TransportError, OSError) as e:
            if getattr(e, "errno", None) in DISK_ERRNOS:  # full, read-only...
                raise errors.PermissionDenied(
                    self._display(segments), e.strerror
                ) from None
            raise errors.TransportError(self._jail.scrub(e)) from None

    # -- durability --

    def _sync(self, segments: tuple[str, ...], sync: Callable[[], None]) -> None:
        """Run ``sync``; a failure is a disk error naming virtual paths only."""
        try:
            sync()
        except OSError as e:
            if e.errno in DISK_ERRNOS:
                raise errors.PermissionDenied(
                    self._display(segments), e.strerror
                ) from None
            raise errors.TransportError(self._jail.scrub(e)) from None

    def _wrote(
        self, segments: tuple[str, ...], disk: tuple[str, ...], content: bool = True
    ) -> None:
        """``disk`` was written (its content, when ``content``) or received
        its name: sync it and owe its directory a sync.

        Lock records are never synced (a crash ends every holder; what
        breezy relies on while they live is what the page cache shows),
        nor the names in ``upload`` (moved out before they are used) and
        ``obsolete_packs`` (garbage).
        """
        if layout.is_lock_entry(disk):
            return
        path = os.path.join(self._jail.real_root, *disk)
        if content:
            self._sync(segments, lambda: self._syncs.file(path))
        if disk[:-1] not in layout.UNNAMED_DIRS:
            self._sync(
                segments, lambda: self._syncs.directory(os.path.dirname(path))
            )

    def _barrier(self, segments: tuple[str, ...], disk: tuple[str, ...]) -> None:
        """Before a write that must follow what is owed (``pack-names``
        naming new packs; pack data leaving its place once ``pack-names``
        no longer names it), sync what is owed."""
        if disk == layout.PACK_NAMES or layout.is_pack_data(disk):
            self._sync(segments, self._syncs.flush)

    # -- Transport API --

    def clone(self, offset: str | None = None) -> StoreTransport:
        if offset is None:
            return StoreTransport(
                self._jail, self._segments, self._verified, self._syncs
            )
        return StoreTransport(
            self._jail, self._resolve(offset), self._verified, self._syncs
        )

    def abspath(self, relpath: str) -> str:
        segments = self._resolve(relpath)
        return self._jail.url + (paths.join(segments) if segments else "")

    def external_url(self) -> str:
        # Usable in this process only; it also stops breezy's foreign-format
        # probers (git, ...) from probing the store's tree.
        raise errors.InProcessTransport(self)

    def is_readonly(self) -> bool:
        return not self._jail.writable

    def get_smart_client(self):
        raise errors.NoSmartMedium(self)

    def get_smart_medium(self):
        raise errors.NoSmartMedium(self)

    def _redirected_to(self, source, target):
        return None

    def listable(self) -> bool:
        return True

    def recommended_page_size(self) -> int:
        return self._jail.root.recommended_page_size()

    def _can_roundtrip_unix_modebits(self) -> bool:
        return self._jail.root._can_roundtrip_unix_modebits()

    # reads
    def get(self, relpath):
        return self._call("get", *self._read_path(relpath))

    def has(self, relpath):
        try:
            path = self._read_path(relpath)
        except NoSuchFile:
            return False
        return self._call("has", *path)

    def stat(self, relpath):
        segments, disk = self._read_path(relpath)
        try:
            return self._call("stat", segments, disk)
        except NoSuchFile:
            if self._implicit_dir(segments):
                return self._call("stat", (), ".")  # a directory like its codebase's
            raise

    def list_dir(self, relpath):
        segments, disk = self._read_path(relpath)
        try:
            names = self._call("list_dir", segments, disk)
            if disk == (layout.CONTROL,):
                names = [n for n in names if n != layout.STORE_DIRECTORY]
            return names
        except NoSuchFile:
            if self._implicit_dir(segments):
                return []
            raise

    def _implicit_dir(self, segments: tuple[str, ...]) -> bool:
        """Whether a missing path is a layout directory this face may create.

        Where writes are allowed, ``stat`` and ``list_dir`` see campaign and
        role directories as existing, empty directories until something is
        written in them (the worker's ``initialize_on_transport`` stats its
        directory first).  ``has`` does not, so format probers never mistake
        a missing branch for anything.
        """
        disk = layout.to_disk(segments)
        return (
            self._jail.writable
            and layout.is_layout_dir(disk)
            and self._jail.write_refusal(disk, self._jail.is_campaign, True) is None
        )

    def _readv(self, relpath, offsets):
        return self._call("_readv", *self._read_path(relpath), offsets)

    def lock_read(self, relpath):
        return self._call("lock_read", *self._read_path(relpath))

    def iter_files_recursive(self):
        """Escaped paths of the files below this directory (symlinks are
        not followed: they are refused, as in every read)."""
        pending = [""]
        while pending:
            directory = pending.pop()
            for name in self.list_dir(directory or "."):
                path = directory + name
                try:
                    mode = self.stat(path).st_mode
                except NoSuchFile:  # gone meanwhile, or a hidden lock record
                    continue
                if stat.S_ISDIR(mode):
                    pending.append(path + "/")
                else:
                    yield path

    # writes
    def put_file(self, relpath, f, mode=None):
        segments, disk = self._write_path(relpath)
        if layout.is_checked_file(disk) or layout.is_pack_data(disk):
            data = f.read(branchconf.MAX_CHECKED_SIZE + 1)
            if len(data) > branchconf.MAX_CHECKED_SIZE:
                self._refuse(segments, "file too large for its place")
            self._check_put(segments, disk, data)
            f = io.BytesIO(data)
        elif holders.is_pending_record(disk):  # written by breezy's LockDir
            f = io.BytesIO(holders.stamp(f.read()))
        self._barrier(segments, disk)
        result = self._call("put_file", segments, paths.join(disk), f, mode)
        self._wrote(segments, disk)
        return result

    def put_bytes(self, relpath, raw_bytes, mode=None):
        segments, disk = self._write_path(relpath)
        self._check_put(segments, disk, raw_bytes)
        if holders.is_pending_record(disk):
            raw_bytes = holders.stamp(raw_bytes)
        self._barrier(segments, disk)
        result = self._call("put_bytes", segments, paths.join(disk), raw_bytes, mode)
        self._wrote(segments, disk)
        return result

    def append_file(self, relpath, f, mode=None):
        segments, disk = self._write_path(relpath)
        self._check_append(segments, disk)
        result = self._call("append_file", segments, paths.join(disk), f, mode=mode)
        self._wrote(segments, disk)
        return result

    def append_bytes(self, relpath, data, mode=None):
        segments, disk = self._write_path(relpath)
        self._check_append(segments, disk)
        result = self._call("append_bytes", segments, paths.join(disk), data, mode=mode)
        self._wrote(segments, disk)
        return result

    def _check_append(self, segments, disk) -> None:
        self._check_put(segments, disk, None)
        if layout.is_pack_data(disk):
            self._refuse(segments, layout.PACK_REASON)

    def open_write_stream(self, relpath, mode=None):
        segments, disk = self._write_path(relpath)
        self._check_put(segments, disk, None)
        if layout.is_pack_data(disk) and self._exists(disk):
            # Two writers of the same pack write the same (content-named)
            # index: the second is written aside and must match.
            return _SameContentStream(self, segments, disk, mode)
        stream = self._call("open_write_stream", segments, paths.join(disk), mode=mode)
        if layout.is_lock_entry(disk):
            return stream
        return _SyncedStream(self, segments, disk, stream)

    def delete(self, relpath):
        segments, disk = self._write_path(relpath)
        self._refuse(segments, layout.removal_refusal(disk))
        self._barrier(segments, disk)
        return self._call("delete", segments, paths.join(disk))

    def delete_tree(self, relpath):
        segments, disk = self._write_path(relpath)
        self._refuse(segments, layout.tree_removal_refusal(disk))
        return self._call("delete_tree", segments, paths.join(disk))

    def rmdir(self, relpath):
        segments, disk = self._write_path(relpath, layout_dir_op=True)
        return self._call("rmdir", segments, paths.join(disk))

    def lock_write(self, relpath):
        segments, disk = self._write_path(relpath)
        return self._call("lock_write", segments, paths.join(disk))

    def _move_paths(
        self, rel_from, rel_to
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        _, disk_from = self._write_path(rel_from)
        segments, disk_to = self._write_path(rel_to)
        self._refuse(segments, layout.move_refusal(disk_from, disk_to))
        if layout.is_pack_data(disk_to) and self._exists(disk_to):
            real = self._jail.real_root
            same = filecmp.cmp(
                os.path.join(real, *disk_from),
                os.path.join(real, *disk_to),
                shallow=False,
            )
            self._refuse(segments, None if same else layout.PACK_REASON)
        self._barrier(segments, disk_from)
        return segments, disk_from, disk_to

    def rename(self, rel_from, rel_to):
        segments, disk_from, disk_to = self._move_paths(rel_from, rel_to)
        result = self._call("rename", segments, paths.join(disk_from), paths.join(disk_to))
        self._wrote(segments, disk_to, content=layout.is_upload(disk_from))
        return result

    def move(self, rel_from, rel_to):
        # Transport.move would copy and delete: a new pack, moved from
        # upload/ to packs/ by every push, would be written twice.
        segments, disk_from, disk_to = self._move_paths(rel_from, rel_to)
        result = self._call("move", segments, paths.join(disk_from), paths.join(disk_to))
        self._wrote(segments, disk_to, content=layout.is_upload(disk_from))
        return result

    def mkdir(self, relpath, mode=None):
        if not self._resolve(relpath) and self._jail.writable:
            # The codebase directory exists: ``ensure_base`` there is a no-op.
            return None
        segments, disk_segments = self._write_path(relpath, layout_dir_op=True)
        disk = paths.join(disk_segments)
        refusal = dircap.layout_dir_refusal(self._jail.root, disk_segments)
        if refusal is not None:
            raise errors.PermissionDenied(self._display(segments), refusal)
        self._make_layout_parents(segments, disk_segments)
        try:
            result = self._call("mkdir", segments, disk, mode)
            self._wrote(segments, disk_segments, content=False)
            return result
        except FileExists:
            named = relpath.rstrip("/").rsplit("/", 1)[-1] not in ("", ".")
            if layout.is_layout_dir(disk_segments):
                # Campaign and role directories are implicit: making one that
                # exists succeeds when it is empty (say, left by a failed
                # push), or when asked as breezy makes sure a directory
                # exists (``mkdir('.')``, as before making a branch there).
                if not named or not self._jail.root.has(disk + "/" + layout.CONTROL):
                    return None
            elif named and layout.is_branch_lock(disk_segments):
                # Made once, with the branch: another client made the branch
                # since this one found it absent. Retried, it is an update.
                raise errors.LockContention(
                    self._display(segments), "another client is creating this branch"
                ) from None
            raise

    def _make_layout_parents(
        self, segments: tuple[str, ...], disk: tuple[str, ...]
    ) -> None:
        """Create the campaign and role directories ``disk`` lies in.

        Layout directories are implicit: creating a branch at
        ``CAMPAIGN/ROLE`` or ``CAMPAIGN/.bzr`` needs no ``--create-prefix``.
        """
        for depth in range(1, min(len(disk), 3)):
            if not layout.is_layout_dir(disk[:depth]):
                break
            try:
                self._jail.root.mkdir(paths.join(disk[:depth]))
            except FileExists:
                continue
            self._wrote(segments, disk[:depth], content=False)

    # Linking could point outside the jail: never.
    def symlink(self, source, link_name):
        raise errors.TransportNotPossible("links are not allowed in the store")

    def hardlink(self, source, link_name):
        raise errors.TransportNotPossible("links are not allowed in the store")


class _StreamWrapper:
    """A write stream over breezy's (``_stream``), whose ``close`` does more."""

    def write(self, data: bytes) -> None:
        self._stream.write(data)

    def fdatasync(self) -> None:
        self._stream.fdatasync()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> bool:
        self.close()
        return False


class _SyncedStream(_StreamWrapper):
    """A write stream whose file is synced when closed, and its name owed
    a directory sync (in ``upload``: when moved out)."""

    def __init__(self, transport: StoreTransport, segments, disk, stream) -> None:
        self._transport = transport
        self._segments = segments
        self._disk = disk
        self._stream = stream

    def close(self, want_fdatasync: bool = False) -> None:
        # The file is synced by its path, once whatever breezy asked; a new
        # pack in upload when it moves into place (an aborted one never).
        self._stream.close(want_fdatasync=False)
        if not layout.is_upload(self._disk):
            self._transport._wrote(self._segments, self._disk)


class _SameContentStream(_StreamWrapper):
    """A write stream onto existing pack data: written aside in ``upload``,
    then compared; the original stays, and different content is refused."""

    def __init__(self, transport: StoreTransport, segments, disk, mode) -> None:
        self._transport = transport
        self._segments = segments
        self._disk = disk
        self._aside = (
            layout.CONTROL,
            "repository",
            layout.UPLOAD,
            f".{disk[-1]}.{secrets.token_hex(8)}",
        )
        self._stream = transport._call(
            "open_write_stream", segments, paths.join(self._aside), mode=mode
        )

    def close(self, want_fdatasync: bool = False) -> None:
        self._stream.close(want_fdatasync=want_fdatasync)
        real = self._transport._jail.real_root
        aside = os.path.join(real, *self._aside)
        try:
            same = filecmp.cmp(aside, os.path.join(real, *self._disk), shallow=False)
        except OSError:
            same = False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(aside)
        if not same:
            raise errors.PermissionDenied(
                self._transport._display(self._segments), layout.PACK_REASON
            )
