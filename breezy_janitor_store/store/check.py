"""``brz janitor-store check``: is the store sound?

For each codebase, every problem found (it does not stop at the first):

* **layout**: a file or directory the layout has no place for (outside a
  control directory, or inside one where breezy keeps nothing, checked by
  :func:`layout.write_refusal`), and symbolic links anywhere;
* **references**: branch references, stacked or bound branches, and
  ``branch.conf`` options outside the allowed set (the content rules of
  :func:`branchconf.content_refusal`, as a push is held to);
* **repository**: ``pack-names`` unreadable, naming a pack whose pack file
  or index is missing or of another size than recorded; a pack whose
  records cannot be read (each pack's records are read in batches, so the
  memory used does not grow with the repository); breezy's own repository
  check (revisions, inventories, texts) for repositories of at most
  :data:`FULL_CHECK_LIMIT` bytes of packs (it holds every key in memory);
* **branches**: a branch that does not open through the jail, whose tip is
  missing from the repository, or whose revno disagrees with its history
  (breezy's branch check);
* **upload**: leftovers in ``upload`` (files no write group has touched for
  :data:`breezy_janitor_store.store.gc.UPLOAD_MIN_AGE`; younger ones may be a
  push in progress).

Everything is opened read-only through the codebase's jailed transport and
:mod:`breezy_janitor_store.store.branches` (never following a reference or a
stacked-on location), under the repository's read lock, so it runs safely
while the store serves.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from breezy import errors
from breezy.bzr.btree_index import BTreeGraphIndex
from breezy.transport import NoSuchFile, Transport

from . import branches, layout
from .branchconf import content_refusal
from .gc import UPLOAD_MIN_AGE
from .storage import Storage

__all__ = [
    "FULL_CHECK_LIMIT",
    "CodebaseReport",
    "Problem",
    "check_codebase",
    "check_store",
]

#: Largest repository (bytes of packs) given breezy's own repository check.
FULL_CHECK_LIMIT = 16 * 1024**2
#: Records read at once when reading a pack's records.
BATCH = 500
#: Index suffixes of a 2a pack, and the versioned files they index.
INDICES = {
    ".rix": "revisions",
    ".iix": "inventories",
    ".tix": "texts",
    ".six": "signatures",
    ".cix": "chk_bytes",
}
_ROOT_CONTROL = frozenset(
    {
        (),
        ("README",),
        ("branch-format",),
        ("branch-lock",),
        ("repository",),
        ("repository", "format"),
        ("repository", "shared-storage"),
        ("repository", "no-working-trees"),
    }
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (relative to the codebase), its kind, what."""

    where: str
    kind: str
    message: str


@dataclass
class CodebaseReport:
    codebase: str
    problems: list[Problem] = field(default_factory=list)
    branches: int = 0
    packs: int = 0

    def add(self, where: str, kind: str, message: str) -> None:
        self.problems.append(Problem(where or ".", kind, message))

    def lines(self) -> Iterator[str]:
        for p in self.problems:
            yield f"{self.codebase}: {p.where}: {p.kind}: {p.message}"

    def as_json(self) -> dict:
        return {
            "branches": self.branches,
            "packs": self.packs,
            "problems": [asdict(p) for p in self.problems],
        }


def check_store(
    storage: Storage, codebases: Iterable[str] | None = None
) -> list[CodebaseReport]:
    """Reports of ``codebases`` (default: every codebase on disk)."""
    names = storage.codebases() if codebases is None else list(codebases)
    reports = [check_codebase(storage, name) for name in names]
    if codebases is None:
        reports += _planted_links(storage.directory)
    return reports


def _planted_links(directory: str) -> list[CodebaseReport]:
    """A report for each symbolic link at the top of the storage directory
    (never served, listed nor followed)."""
    reports = []
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_symlink():
                report = CodebaseReport(entry.name)
                report.add(
                    ".", "symlink", "a symbolic link, not a codebase: not served"
                )
                reports.append(report)
    return reports


def check_codebase(storage: Storage, codebase: str) -> CodebaseReport:
    """Every problem found in ``codebase``."""
    report = CodebaseReport(codebase)
    root = storage.transport(codebase, writable=False, is_campaign=_any_name)
    locations = _check_layout(storage.path(codebase), report)
    try:
        repository = branches.open_repository(root)
    except (errors.BzrError, OSError) as e:
        report.add(".bzr/repository", "repository", f"does not open: {_plain(e)}")
        return report
    sizes = _check_pack_names(root, report)
    try:
        with repository.lock_read():
            if sizes is not None:
                _check_records(repository, root, sizes, report)
                total = sum(sum(files.values()) for files in sizes.values())
                if total <= FULL_CHECK_LIMIT:
                    _breezy_check(repository, report)
            for location in locations:
                _check_branch(root, repository, location, report)
    except (errors.BzrError, OSError) as e:
        report.add(".bzr/repository", "repository", f"unreadable: {_plain(e)}")
    _check_upload(storage.path(codebase), report)
    return report


def _any_name(name: str) -> bool:
    return True


def _plain(e: BaseException) -> str:
    return str(e).replace("\n", " ")[:300] or type(e).__name__


# -- layout --


def _check_layout(path: str, report: CodebaseReport) -> list[tuple[str, ...]]:
    """Report what the layout has no place for; the branch locations
    (campaign and role directories with a control directory)."""
    locations = []
    pending: list[tuple[str, ...]] = [()]
    while pending:
        disk = pending.pop()
        try:
            entries = list(os.scandir(os.path.join(path, *disk)))
        except OSError as e:
            report.add("/".join(disk), "layout", f"unreadable: {e.strerror}")
            continue
        for entry in entries:
            here = (*disk, entry.name)
            where = "/".join(here)
            if entry.is_symlink():
                report.add(where, "layout", "symbolic link")
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            reason = _layout_refusal(here, is_dir)
            if reason is not None:
                report.add(where, "layout", reason)
                continue
            if is_dir:
                pending.append(here)
                if entry.name == layout.CONTROL and len(here) in (2, 3):
                    locations.append(disk)
            elif layout.is_checked_file(here) and len(here) > 2:
                _check_content(os.path.join(path, *here), here, report)
    return sorted(locations)


def _layout_refusal(disk: tuple[str, ...], is_dir: bool) -> str | None:
    """Why ``disk`` (a directory when ``is_dir``) has no place, or None."""
    if disk[0] == layout.CONTROL:
        if (
            disk[1:] in _ROOT_CONTROL
            or disk[1:2] == ("branch-lock",)
            or layout.is_store_record(disk)
        ):
            return None
    elif len(disk) <= 2 and layout.CONTROL not in disk:
        if not is_dir:
            return "a file where the layout has campaign and role directories"
        if not layout.is_valid_name(disk[-1]):
            return "not a valid campaign or role name"
        if disk[-1] == layout.MAIN_ROLE and len(disk) == 2:
            return "role 'main' is the campaign branch itself"
        return None
    return layout.write_refusal(disk, _any_name, is_dir)


def _check_content(path: str, disk: tuple[str, ...], report: CodebaseReport) -> None:
    """A branch's format, location or configuration, held to the rules a
    push is held to (no references, stacking, other options)."""
    try:
        with open(path, "rb") as f:
            data = f.read(1024**2)
    except OSError as e:
        report.add("/".join(disk), "references", f"unreadable: {e.strerror}")
        return
    part = layout.control_path(disk)
    reason = content_refusal(part, data, disk[: disk.index(layout.CONTROL)])
    if reason is not None:
        report.add("/".join(disk), "references", reason)


# -- repository --


def _check_pack_names(root: Transport, report: CodebaseReport) -> dict | None:
    """The packs ``pack-names`` names, with their index sizes; reports
    missing files and sizes that differ.  None when unreadable."""
    repo = root.clone(".bzr/repository")
    where = ".bzr/repository/pack-names"
    try:
        index = BTreeGraphIndex(repo, "pack-names", repo.stat("pack-names").st_size)
        entries = [
            (key[0].decode("ascii"), value)
            for _, key, value in index.iter_all_entries()
        ]
    except (errors.BzrError, OSError, ValueError, UnicodeError) as e:
        report.add(where, "repository", f"unreadable: {_plain(e)}")
        return None
    sizes: dict[str, dict[str, int]] = {}
    for name, value in entries:
        try:
            recorded = [int(v) for v in value.split(b" ")]
        except ValueError:
            report.add(where, "repository", f"pack {name}: invalid index sizes")
            continue
        sizes[name] = {}
        try:
            pack_size = repo.stat(f"packs/{name}.pack").st_size
        except NoSuchFile:
            report.add(where, "repository", f"names pack {name}, which is missing")
            continue
        sizes[name][".pack"] = pack_size
        for suffix, size in zip(INDICES, recorded, strict=False):
            path = f"indices/{name}{suffix}"
            try:
                actual = repo.stat(path).st_size
            except NoSuchFile:
                report.add(
                    where,
                    "repository",
                    f"names pack {name}, whose {suffix} index is missing",
                )
                continue
            if actual != size:
                report.add(
                    ".bzr/repository/" + path,
                    "repository",
                    f"{actual} bytes, pack-names records {size}",
                )
            sizes[name][suffix] = size
    report.packs = len(sizes)
    return sizes


def _check_records(
    repository, root: Transport, sizes: dict, report: CodebaseReport
) -> None:
    """Read every record of every pack, ``BATCH`` keys at a time, through
    each pack's own indices (memory bounded by the batch, not the repository)."""
    indices = root.clone(".bzr/repository/indices")
    for name, files in sorted(sizes.items()):
        if ".pack" not in files:
            continue
        for suffix, attribute in INDICES.items():
            if suffix not in files:
                continue
            versioned = getattr(repository, attribute, None)
            if versioned is None:
                continue
            try:
                index = BTreeGraphIndex(indices, name + suffix, files[suffix])
                batch = []
                for entry in index.iter_all_entries():
                    batch.append(entry[1])
                    if len(batch) >= BATCH:
                        _read(versioned, batch)
                        batch = []
                _read(versioned, batch)
            except (
                errors.BzrError,
                OSError,
                ValueError,
                KeyError,
                AssertionError,
            ) as e:
                report.add(
                    f".bzr/repository/packs/{name}.pack",
                    "repository",
                    f"{attribute} records unreadable: {_plain(e)}",
                )


def _read(versioned, keys: list) -> None:
    if not keys:
        return
    for record in versioned.get_record_stream(keys, "unordered", True):
        if record.storage_kind == "absent":
            raise KeyError(f"record {record.key!r} absent")
        for _ in record.iter_bytes_as("chunked"):
            pass


def _breezy_check(repository, report: CodebaseReport) -> None:
    try:
        result = repository.check(None, check_repo=True)
    except (errors.BzrError, OSError, ValueError, KeyError, AssertionError) as e:
        report.add(
            ".bzr/repository", "repository", f"breezy's check failed: {_plain(e)}"
        )
        return
    for attribute, what in (
        ("inconsistent_parents", "revisions with inconsistent parents"),
        ("missing_inventory_sha_cnt", "revisions without an inventory sha1"),
        ("missing_revision_cnt", "missing revisions"),
    ):
        found = getattr(result, attribute, None)
        if found:
            count = found if isinstance(found, int) else len(found)
            report.add(
                ".bzr/repository", "repository", f"breezy's check: {count} {what}"
            )
    for item in getattr(result, "_report_items", ()):
        report.add(".bzr/repository", "repository", f"breezy's check: {item}")


# -- branches --


def _check_branch(
    root, repository, location: tuple[str, ...], report: CodebaseReport
) -> None:
    where = "/".join(location)
    try:
        branch = branches.open_branch(root, location, repository)
    except errors.NotBranchError:
        return  # a control directory without a branch (yet)
    except branches.RefusedBranch as e:
        report.add(where, "references", str(e))
        return
    except (errors.BzrError, OSError) as e:
        report.add(where, "branch", f"does not open: {_plain(e)}")
        return
    report.branches += 1
    try:
        with branch.lock_read():
            revno, tip = branch.last_revision_info()
            if tip == b"null:":
                return
            if not repository.has_revision(tip):
                report.add(
                    where,
                    "branch",
                    f"tip {tip.decode('utf-8', 'replace')} is missing from the repository",
                )
                return
            distances = repository.get_graph().find_lefthand_distances([tip])
            if distances.get(tip) != revno:
                report.add(
                    where,
                    "branch",
                    f"revno {revno} does not match its history ({distances.get(tip)})",
                )
            branch.tags.get_tag_dict()
    except (errors.BzrError, OSError, ValueError) as e:
        report.add(where, "branch", f"unreadable: {_plain(e)}")


def _check_upload(path: str, report: CodebaseReport) -> None:
    upload = os.path.join(path, layout.CONTROL, "repository", layout.UPLOAD)
    now = time.time()
    try:
        entries = list(os.scandir(upload))
    except OSError:
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= UPLOAD_MIN_AGE:
            report.add(
                f".bzr/repository/upload/{entry.name}",
                "upload",
                "left by a push that never finished ('janitor-store gc' removes it)",
            )
