"""``brz janitor-store backup``: a consistent copy of a live store.

A shared repository is a set of immutable, content-named packs (and their
indices) and ``pack-names``, the file naming the packs that make it up,
replaced whole by each push; a branch names a revision (its tip, tags) the
repository has.  Copying file by file while pushes go on could copy a
``pack-names`` naming packs the copy lacks, or a tip naming a revision it
lacks.  So each codebase is copied as of one moment:

1. its branches' files are read first (the tips of that moment);
2. then ``pack-names`` (one read of a file replaced whole), and every pack
   and index it names (from ``packs``/``indices``, or ``obsolete_packs``
   if an autopack retired them meanwhile; ``pack-names`` is read again if
   one is gone altogether): a repository only ever gains revisions, so it
   has every revision the branches read in step 1 name;
3. the copy's packs and indices are written before its ``pack-names``, and
   its branches after its repository; packs ``pack-names`` no longer names
   are removed from the copy after it.

Pack files and indices never change once written, so they are hard-linked
when the destination is on the same filesystem (else copied), and a file
already in the destination with the same name and size is kept: a second
backup copies only what changed.  Every file is written under a temporary
name and renamed into place, and synced, so an interrupted backup leaves a
consistent copy (the previous one, or a newer one).  Restoring is serving
the destination.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from breezy import errors
from breezy.bzr.btree_index import BTreeGraphIndex
from breezy.transport import get_transport_from_path

from . import durable, layout
from .check import INDICES
from .storage import Storage

__all__ = ["BackupError", "BackupReport", "backup_codebase", "backup_store"]

logger = logging.getLogger(__name__)

#: Times ``pack-names`` is read again when a pack it names disappears.
RETRIES = 20
_REPOSITORY = (layout.CONTROL, "repository")
_LOCK_DIRECTORIES = frozenset({"lock", "pack-lock", "branch-lock"})
#: Files of the repository's control directory copied as they are.
_REPOSITORY_FILES = (
    (layout.CONTROL, "README"),
    (layout.CONTROL, "branch-format"),
    (*_REPOSITORY, "format"),
    (*_REPOSITORY, "shared-storage"),
    (*_REPOSITORY, "no-working-trees"),
)
_REPOSITORY_DIRS = (
    (layout.CONTROL, "branch-lock"),
    (*_REPOSITORY, "lock"),
    (*_REPOSITORY, "packs"),
    (*_REPOSITORY, "indices"),
    (*_REPOSITORY, layout.UPLOAD),
    (*_REPOSITORY, layout.OBSOLETE_PACKS),
)


class BackupError(Exception):
    """The backup cannot be made (one line, for users)."""


@dataclass
class CodebaseBackup:
    codebase: str
    packs: int = 0
    linked: int = 0
    copied: int = 0
    kept: int = 0
    removed: int = 0
    branches: int = 0
    error: str | None = None


@dataclass
class BackupReport:
    codebases: list[CodebaseBackup] = field(default_factory=list)

    @property
    def failed(self) -> list[CodebaseBackup]:
        return [c for c in self.codebases if c.error is not None]

    def lines(self) -> Iterator[str]:
        for c in self.codebases:
            if c.error is not None:
                yield f"{c.codebase}: FAILED: {c.error}"
            else:
                yield (
                    f"{c.codebase}: {c.packs} packs, {c.branches} branches; "
                    f"{c.linked} files linked, {c.copied} copied, {c.kept} kept, "
                    f"{c.removed} removed"
                )


def backup_store(
    storage: Storage, dest: str, codebases: Iterable[str] | None = None
) -> BackupReport:
    """Back up ``codebases`` (default: every codebase) into ``dest``."""
    dest = os.path.abspath(dest)
    if os.path.commonpath([dest, storage.directory]) == storage.directory:
        raise BackupError("the destination must not be inside the storage directory")
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as e:
        raise BackupError(f"cannot create {dest}: {e.strerror}") from None
    report = BackupReport()
    for name in storage.codebases() if codebases is None else codebases:
        result = CodebaseBackup(name)
        try:
            backup_codebase(storage.path(name), os.path.join(dest, name), result)
        except (OSError, errors.BzrError, BackupError) as e:
            result.error = str(e)
            logger.error("backup of %s failed: %s", name, e)
        report.codebases.append(result)
    return report


def backup_codebase(source: str, dest: str, result: CodebaseBackup) -> None:
    """Copy the codebase at ``source`` into ``dest`` as of one moment."""
    copier = _Copier(source, dest, result)
    branch_files = _read_branches(source)  # the tips first
    for disk in _REPOSITORY_DIRS:
        copier.directory(disk)
    for disk in _REPOSITORY_FILES:
        copier.small_file(disk, _read(source, disk))
    names, pack_names = _copy_packs(copier)
    copier.small_file((*_REPOSITORY, "pack-names"), pack_names)
    copier.flush()
    # what the new pack-names no longer names
    for directory, suffixes in (("packs", (".pack",)), ("indices", tuple(INDICES))):
        for entry in _list(os.path.join(dest, *_REPOSITORY, directory)):
            stem, _, suffix = entry.rpartition(".")
            if stem not in names or "." + suffix not in suffixes:
                os.unlink(os.path.join(dest, *_REPOSITORY, directory, entry))
                result.removed += 1
    for location, files in branch_files.items():
        for disk, data in files:
            if data is None:
                copier.directory((*location, *disk))
            else:
                copier.small_file((*location, *disk), data)
    result.branches = len(branch_files)
    _remove_other_branches(dest, set(branch_files), result)
    copier.flush()


def _read(source: str, disk: tuple[str, ...]) -> bytes:
    fd = os.open(os.path.join(source, *disk), os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _list(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _read_branches(source: str) -> dict[tuple[str, ...], list]:
    """The files of each branch (campaign or role), read now: for each
    location, ``(path in the location, bytes or None for a directory)``.

    Lock directories are copied empty; a control directory without a
    branch format (being made) is left out."""
    found: dict[tuple[str, ...], list] = {}
    for campaign in _dirs(source, ()):
        for location in (
            (campaign,),
            *((campaign, r) for r in _dirs(source, (campaign,))),
        ):
            files = _control_files(source, location)
            if files is not None:
                found[location] = files
    return found


def _dirs(source: str, disk: tuple[str, ...]) -> list[str]:
    """Valid layout names of the directories in ``disk`` (no symlinks)."""
    names = []
    try:
        entries = list(os.scandir(os.path.join(source, *disk)))
    except OSError:
        return []
    for entry in entries:
        if layout.is_valid_name(entry.name) and entry.is_dir(follow_symlinks=False):
            names.append(entry.name)
    return sorted(names)


def _control_files(source: str, location: tuple[str, ...]) -> list | None:
    files: list = []
    pending = [(layout.CONTROL,)]
    while pending:
        disk = pending.pop()
        files.append((disk, None))
        try:
            entries = list(os.scandir(os.path.join(source, *location, *disk)))
        except OSError:
            return None
        for entry in entries:
            here = (*disk, entry.name)
            if entry.is_dir(follow_symlinks=False):
                if entry.name in _LOCK_DIRECTORIES:
                    files.append((here, None))  # held locks are not copied
                else:
                    pending.append(here)
            elif entry.is_file(follow_symlinks=False):
                try:
                    files.append((here, _read(source, (*location, *here))))
                except FileNotFoundError:
                    continue
    paths = {disk for disk, _ in files}
    if (layout.CONTROL, "branch", "format") not in paths:
        return None
    return sorted(files, key=lambda f: (f[1] is not None, f[0]))


def _copy_packs(copier: _Copier) -> tuple[set[str], bytes]:
    """Copy the packs and indices ``pack-names`` names; the names and the
    ``pack-names`` they were read from."""
    scratch = os.path.join(copier.dest, *_REPOSITORY, layout.UPLOAD)
    for _ in range(RETRIES):
        pack_names = _read(copier.source, (*_REPOSITORY, "pack-names"))
        names = _parse_pack_names(scratch, pack_names)
        try:
            for name in sorted(names):
                copier.pack_file("packs", name + ".pack")
                for suffix in INDICES:
                    copier.pack_file(
                        "indices", name + suffix, optional=suffix != ".rix"
                    )
        except _Gone:
            continue  # retired and removed meanwhile: read pack-names again
        copier.result.packs = len(names)
        return names, pack_names
    raise BackupError("pack-names kept naming packs that were gone; retry later")


def _parse_pack_names(scratch: str, data: bytes) -> set[str]:
    """The pack names in ``pack-names`` content ``data`` (parsed by breezy's
    index reader from a scratch file in directory ``scratch``)."""
    name = ".pack-names.backup-read"
    path = os.path.join(scratch, name)
    with open(path, "wb") as f:
        f.write(data)
    try:
        index = BTreeGraphIndex(get_transport_from_path(scratch), name, len(data))
        return {key[0].decode("ascii") for _, key, _ in index.iter_all_entries()}
    except (errors.BzrError, ValueError, UnicodeError) as e:
        raise BackupError(f"unreadable pack-names: {e}") from None
    finally:
        os.unlink(path)


class _Gone(Exception):
    """A file pack-names names is gone from every place it could be."""


class _Copier:
    """Writes into the destination codebase: immutable pack files linked
    or copied, small files atomically; everything synced by :meth:`flush`."""

    def __init__(self, source: str, dest: str, result: CodebaseBackup) -> None:
        self.source = source
        self.dest = dest
        self.result = result
        self._files: list[str] = []
        self._dirs: set[str] = set()
        os.makedirs(dest, exist_ok=True)

    def directory(self, disk: tuple[str, ...]) -> None:
        path = os.path.join(self.dest, *disk)
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            self._dirs.add(os.path.dirname(path))

    def _into_place(self, tmp: str, path: str) -> None:
        os.replace(tmp, path)
        self._files.append(path)
        self._dirs.add(os.path.dirname(path))

    def small_file(self, disk: tuple[str, ...], data: bytes) -> None:
        path = os.path.join(self.dest, *disk)
        with contextlib.suppress(OSError), open(path, "rb") as f:
            if f.read(len(data) + 1) == data:
                return
        self.directory(disk[:-1])
        tmp = path + ".backup-tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        self._into_place(tmp, path)

    def pack_file(self, directory: str, name: str, optional: bool = False) -> None:
        dest = os.path.join(self.dest, *_REPOSITORY, directory, name)
        for where in (directory, layout.OBSOLETE_PACKS):
            source = os.path.join(self.source, *_REPOSITORY, where, name)
            try:
                st = os.lstat(source)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                raise BackupError(f"{directory}/{name} is not a regular file")
            try:
                if os.lstat(dest).st_size == st.st_size:
                    self.result.kept += 1
                    return
            except FileNotFoundError:
                pass
            tmp = dest + ".backup-tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            try:
                os.link(source, tmp)
                self.result.linked += 1
            except FileNotFoundError:
                continue  # moved meanwhile: look again
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                try:
                    shutil.copyfile(source, tmp, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                self.result.copied += 1
            self._into_place(tmp, dest)
            return
        if not optional:
            raise _Gone(name)

    def flush(self) -> None:
        """Sync what was written, then the directories naming it (deepest first)."""
        for path in self._files:
            durable.sync_file(path)
        for path in sorted(self._dirs, key=lambda p: -p.count(os.sep)):
            durable.sync_directory(path)
        self._files.clear()
        self._dirs.clear()


def _remove_other_branches(dest: str, kept: set, result: CodebaseBackup) -> None:
    """Remove the branches of the copy the source no longer has."""
    for campaign in _dirs(dest, ()):
        for role in _dirs(dest, (campaign,)):
            if (campaign, role) not in kept:
                shutil.rmtree(os.path.join(dest, campaign, role))
                result.removed += 1
        if (campaign,) not in kept and os.path.isdir(
            os.path.join(dest, campaign, layout.CONTROL)
        ):
            shutil.rmtree(os.path.join(dest, campaign, layout.CONTROL))
            result.removed += 1
        if not os.listdir(os.path.join(dest, campaign)):
            os.rmdir(os.path.join(dest, campaign))
