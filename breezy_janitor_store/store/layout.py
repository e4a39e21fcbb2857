"""Naming and layout rules of the store: the one place that knows them.

Storage directory ``DIR``::

    DIR/<codebase>/                    shared bzr repository (2a, no trees)
    DIR/<codebase>/<campaign>/         the campaign's main branch (role "main")
    DIR/<codebase>/<campaign>/<role>/  the branch of any other role

Paths inside a codebase are handled as *virtual* segment tuples, exactly as a
client names them; :func:`to_disk` maps them onto the directory tree (the
role ``main`` is the campaign directory itself) and :func:`write_refusal`
says whether the layout allows writing there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from breezy import urlutils

__all__ = [
    "BRANCH_OPTIONS",
    "MAIN_ROLE",
    "REMOTE_SCHEMES",
    "InvalidName",
    "Location",
    "branch_segments",
    "is_format_file",
    "is_location_option",
    "is_pack_data",
    "is_role_name",
    "is_store_record",
    "is_valid_name",
    "location_refusal",
    "move_refusal",
    "parse_location",
    "removal_refusal",
    "request_path_refusal",
    "to_disk",
    "tree_removal_refusal",
    "url_refusal",
    "vfs_write_refusal",
    "write_refusal",
]

#: The janitor's ``codebase_name`` rule, also used for campaigns and roles.
NAME_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+\Z")
#: Longest name accepted (a single path component on every filesystem).
MAX_NAME_LENGTH = 200
#: The role that names the campaign branch itself.
MAIN_ROLE = "main"
#: Control directory of a bzr directory.
CONTROL = ".bzr"
#: The store's own records inside a codebase's control directory (see
#: :mod:`breezy_janitor_store.store.provenance`): no client reads or writes them.
STORE_DIRECTORY = "janitor-store"
#: Parts of a bzr control directory that branches in the store must not have.
_FORBIDDEN_IN_BRANCH = {
    "repository": "a branch must keep its revisions in the codebase's shared "
    "repository, not in a repository of its own",
    "checkout": "working trees are not allowed in the store",
}


_NOT_A_FILE = "files outside .bzr are not allowed (campaigns and roles are directories)"


#: What breezy writes inside a (2a, pack) repository's control directory,
#: and the store's pack lock (see :mod:`breezy_janitor_store.store.patches.packing`);
#: the rest (format, shared-storage, no-working-trees) and the directory
#: itself are set up by the store and never change.
_REPOSITORY_FILE_DIRS = frozenset({"packs", "indices", "upload", "obsolete_packs"})
#: Files breezy keeps in a branch's control directory (paths inside ``.bzr``;
#: its locks, ``branch-lock`` and ``branch/lock``, are checked apart), and in its ``branch`` directory
#: (format 5 to 8, and a reference's ``location``, whose content the
#: transport refuses).  Nothing else, so no control directory, and no
#: ``branch.conf``, can be nested in one.
_BRANCH_CONTROL_FILES = frozenset({("README",), ("branch-format",)})
_BRANCH_FILES = frozenset(
    {
        (),
        ("format",),
        ("last-revision",),
        ("revision-history",),
        ("tags",),
        ("branch.conf",),
        ("references",),
        ("location",),
        ("bound",),
    }
)
#: Names ``LockDir`` gives a lock's pending, releasing and broken records.
_LOCK_ENTRY_RE = re.compile(r"(?:releasing\.|broken\.)?[a-z0-9]+\.tmp\Z")
NESTED_REASON = (
    "only the files breezy keeps in a branch's control directory may be "
    "written there (no nested control directories)"
)


#: Files saying what a control directory holds (paths inside ``.bzr``): written
#: once, when the directory is made, then never replaced, renamed or removed.
FORMAT_FILES = frozenset(
    {
        ("branch-format",),
        ("branch", "format"),
        ("checkout", "format"),
        ("repository", "format"),
        ("repository", "shared-storage"),
        ("repository", "no-working-trees"),
    }
)
#: Files of a branch that name other locations or formats (paths inside
#: ``.bzr``): written in place only (``put``), never appended to, streamed or
#: renamed onto, so the transport sees their whole content.
CHECKED_FILES = FORMAT_FILES | {
    ("branch", "branch.conf"),
    ("branch", "location"),
    ("branch", "bound"),
}
#: Directories of the shared repository holding content-addressed pack data.
PACK_DATA_DIRS = frozenset({"packs", "indices"})
#: Parts of a control directory holding format files.
_CONTROL_PARTS = frozenset({"branch", "checkout", "repository"})
#: Where the packer retires pack data, and where new pack data is written.
OBSOLETE_PACKS = "obsolete_packs"
UPLOAD = "upload"
FORMAT_REASON = "format files are written once and never change"
PACK_REASON = "pack data is only retired to obsolete_packs by the packer"
CHECKED_REASON = "a branch's format, location and configuration files are written whole"


class InvalidName(ValueError):
    """A path component that is not a valid codebase, campaign or role name."""


def is_valid_name(name: str) -> bool:
    """Whether ``name`` follows ``[a-z0-9][a-z0-9+.-]+``."""
    return len(name) <= MAX_NAME_LENGTH and NAME_RE.match(name) is not None


@dataclass(frozen=True)
class Location:
    """A branch location named by a URL: codebase, campaign and role."""

    codebase: str
    campaign: str | None = None
    role: str | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        """Virtual path of the location inside its codebase."""
        return tuple(s for s in (self.campaign, self.role) if s is not None)

    def __str__(self) -> str:
        return "/".join((self.codebase,) + self.segments)


def parse_location(path: str) -> Location:
    """Parse ``codebase[/campaign[/role]]`` (no leading or trailing slash).

    :raises InvalidName: naming the first component that breaks the rules.
    """
    parts = path.split("/")
    if not 1 <= len(parts) <= 3:
        raise InvalidName("expected CODEBASE[/CAMPAIGN[/ROLE]]")
    for part in parts:
        if not is_valid_name(part):
            raise InvalidName(f"invalid name: {_printable(part)}")
    return Location(*parts)


def _printable(name: str) -> str:
    """A name safe to echo back in a plain-text reason."""
    shown = name[:40].encode("ascii", "backslashreplace").decode("ascii")
    return repr(shown + ("..." if len(name) > 40 else ""))


def branch_segments(campaign: str, role: str | None = None) -> tuple[str, ...]:
    """The virtual path of ``campaign``'s ``role`` branch: the main role's
    is the campaign's own (``c/main`` is ``c``)."""
    return (campaign,) if role in (None, MAIN_ROLE) else (campaign, role)


def is_role_name(name: str) -> bool:
    """Whether directory ``name`` under a campaign's is a role's branch: the
    main role is the campaign directory itself."""
    return name != MAIN_ROLE


def to_disk(segments: tuple[str, ...]) -> tuple[str, ...]:
    """Map a virtual path to the on-disk path: ``c/main/x`` is ``c/x``."""
    if len(segments) >= 2 and segments[1] == MAIN_ROLE and segments[0] != CONTROL:
        return segments[:1] + segments[2:]
    return segments


def write_refusal(
    segments: tuple[str, ...], is_campaign, layout_dir_op: bool = False
) -> str | None:
    """Why the layout forbids writing at disk path ``segments``, or None.

    :param segments: on-disk path relative to the codebase directory.
    :param is_campaign: callable telling whether a name is a known campaign.
    :param layout_dir_op: the write creates or removes a directory (mkdir,
        rmdir); only these may touch the campaign and role directories.
    """
    if not segments:
        return "the codebase directory itself cannot be changed"
    head, rest = segments[0], segments[1:]
    if head == CONTROL:
        if rest[:1] == ("repository",):
            if _is_repository_data(rest[1:]):
                return None
            return (
                "the shared repository itself is managed by the store; "
                "only its data (packs, indices, locks) may change"
            )
        if rest[:1] == ("checkout",):
            return "working trees are not allowed in the store"
        if rest[:1] == ("branch",):
            return "a branch at the codebase root is not allowed; push to CODEBASE/CAMPAIGN"
        return (
            "the codebase's control directory is managed by the store; "
            "branches are at CODEBASE/CAMPAIGN: add /CAMPAIGN to the URL"
        )
    if not is_valid_name(head):
        return f"{_printable(head)} is not a valid campaign name"
    if not is_campaign(head):
        return f"unknown campaign: {head}"
    if not rest:
        return None if layout_dir_op else _NOT_A_FILE
    if rest[0] == CONTROL:
        return _branch_control_refusal(rest[1:], layout_dir_op)
    role, rest = rest[0], rest[1:]
    if role == MAIN_ROLE:
        return "role 'main' is the campaign branch itself"
    if not is_valid_name(role):
        return f"{_printable(role)} is not a valid role name (files outside .bzr are not allowed)"
    if not rest:
        return None if layout_dir_op else _NOT_A_FILE
    if rest[0] == CONTROL:
        return _branch_control_refusal(rest[1:], layout_dir_op)
    return "paths below a role must be inside its .bzr directory"


def _branch_control_refusal(rest: tuple[str, ...], layout_dir_op: bool) -> str | None:
    """Refusal for a write inside a campaign or role branch's ``.bzr``:
    only the files breezy keeps in a branch's control directory."""
    if not rest and not layout_dir_op:
        return "a branch's control directory is a directory"
    if rest and rest[0] in _FORBIDDEN_IN_BRANCH:
        return _FORBIDDEN_IN_BRANCH[rest[0]]
    if not rest or rest in _BRANCH_CONTROL_FILES or _is_lock_path(rest, "branch-lock"):
        return None
    if rest[0] == "branch" and (
        rest[1:] in _BRANCH_FILES or _is_lock_path(rest[1:], "lock")
    ):
        return None
    return NESTED_REASON


def _is_lock_path(rest: tuple[str, ...], name: str) -> bool:
    """Whether ``rest`` is lock directory ``name`` or what breezy's
    ``LockDir`` keeps in it: ``held``, ``NAME.tmp`` (being taken),
    ``releasing.NAME.tmp``, ``broken.NAME.tmp``, each with its ``info``."""
    if rest[:1] != (name,):
        return False
    entry = rest[1:]
    if not entry:
        return True
    if len(entry) > 2 or (len(entry) == 2 and entry[1] != "info"):
        return False
    return entry[0] == "held" or _LOCK_ENTRY_RE.match(entry[0]) is not None


def _is_repository_data(rest: tuple[str, ...]) -> bool:
    """Whether ``rest`` (inside the shared repository's directory) is data
    a push or the packer changes: ``pack-names``, one file in ``packs``,
    ``indices``, ``upload`` or ``obsolete_packs``, or a lock."""
    if rest == ("pack-names",):
        return True
    if rest[:1] and rest[0] in _REPOSITORY_FILE_DIRS:
        return len(rest) == 1 or (len(rest) == 2 and rest[1] != CONTROL)
    return _is_lock_path(rest, "lock") or _is_lock_path(rest, "pack-lock")


def request_path_refusal(disk: tuple[str, ...], file_level: bool) -> str | None:
    """Why a smart verb may not name on-disk ``disk`` (relative to the
    codebase directory) as its path argument, or None.

    A control directory is only where the layout puts one: at the codebase
    root (the shared repository) and at campaign and role directories.  A
    verb on a control directory, branch or repository (``BzrDir.*``,
    ``Branch.*``, ``Repository.*``...) names exactly such a location; a
    file-level (VFS) verb names a location or a path inside its ``.bzr``,
    never one that holds a second ``.bzr``.  (What may be written there,
    :func:`write_refusal` judges.)
    """
    try:
        at = disk.index(CONTROL)
    except ValueError:
        at = len(disk)
    where, inside = disk[:at], disk[at + 1 :]
    if len(where) > 2 or not all(map(is_valid_name, where)):
        return "not a codebase, campaign or role location"
    if at == len(disk):
        return None
    if not file_level:
        return "smart verbs act on codebase, campaign and role locations only"
    if CONTROL in inside:
        return NESTED_REASON
    return None


def is_layout_dir(segments: tuple[str, ...]) -> bool:
    """Whether on-disk ``segments`` name a campaign or role directory."""
    return 1 <= len(segments) <= 2 and CONTROL not in segments


def control_path(disk: tuple[str, ...]) -> tuple[str, ...] | None:
    """Path of on-disk ``disk`` inside its control directory, or None."""
    try:
        return disk[disk.index(CONTROL) + 1 :]
    except ValueError:
        return None


def is_format_file(disk: tuple[str, ...]) -> bool:
    return control_path(disk) in FORMAT_FILES


def is_checked_file(disk: tuple[str, ...]) -> bool:
    """Whether a write of ``disk`` must be a whole ``put`` (see CHECKED_FILES)."""
    return control_path(disk) in CHECKED_FILES


def _repository_part(disk: tuple[str, ...]) -> tuple[str, ...] | None:
    if disk[:2] == (CONTROL, "repository"):
        return disk[2:]
    return None


def is_store_record(disk: tuple[str, ...]) -> bool:
    """Whether on-disk ``disk`` is in the store's own records of a codebase
    (``.bzr/janitor-store``): hidden from every client."""
    return disk[:2] == (CONTROL, STORE_DIRECTORY)


def is_pack_data(disk: tuple[str, ...]) -> bool:
    """Whether ``disk`` is a pack or index file of the shared repository."""
    part = _repository_part(disk)
    return part is not None and len(part) == 2 and part[0] in PACK_DATA_DIRS


def removal_refusal(disk: tuple[str, ...]) -> str | None:
    """Why the file at ``disk`` may not be deleted (or renamed away), or None."""
    if is_format_file(disk):
        return FORMAT_REASON
    if is_pack_data(disk):
        return PACK_REASON
    return None


def move_refusal(source: tuple[str, ...], target: tuple[str, ...]) -> str | None:
    """Why ``source`` may not be renamed to ``target`` (on-disk paths), or None.

    Pack data leaves ``packs``/``indices`` only for ``obsolete_packs`` under
    its own name, and enters them only from ``upload``; format and location
    files are never renamed, nor renamed onto.
    """
    if is_checked_file(source) or is_checked_file(target):
        if is_format_file(source) or is_format_file(target):
            return FORMAT_REASON
        return CHECKED_REASON
    if is_pack_data(source):
        retired = (CONTROL, "repository", OBSOLETE_PACKS, source[-1])
        return None if target == retired else PACK_REASON
    if is_pack_data(target):
        part = _repository_part(source)
        if part is None or part[:1] != (UPLOAD,):
            return "pack data is only moved into place from upload"
    return None


def tree_removal_refusal(disk: tuple[str, ...]) -> str | None:
    """Why the directory tree at ``disk`` may not be deleted whole, or None:
    codebase, campaign, role and control directories, and the repository's
    pack data, hold what must not disappear with it."""
    part = control_path(disk)
    if part is None or not part or (len(part) == 1 and part[0] in _CONTROL_PARTS):
        return "control directories are never deleted whole"
    if _repository_part(disk) is not None and part[1:] and part[1] in PACK_DATA_DIRS:
        return PACK_REASON
    return None


#: The smart protocol's file-level (VFS) writes, by verb.
VFS_WRITES = frozenset(
    {"put", "put_non_atomic", "append", "delete", "rename", "move", "mkdir", "rmdir"}
)
_VFS_REPOSITORY_REASON = (
    "the shared repository changes only through repository verbs "
    "(insert_stream, pack), never through file writes"
)
_VFS_BRANCH_REASON = (
    "a branch's control files change only through branch and control "
    "directory verbs (initialize, create_branch, lock_write, "
    "set_last_revision_info, set_tags_bytes, put_config_file)"
)


def vfs_write_refusal(disk: tuple[str, ...], operation: str) -> str | None:
    """Why a client's VFS write ``operation`` (``put``, ``mkdir``...) at
    on-disk ``disk`` (relative to the codebase directory) is refused, or None.

    Stock clients (``brz push``, ``push --overwrite``, ``branch``, ``tag``,
    ``uncommit``, commits in a checkout, ``config``, the janitor worker)
    change branches and the shared repository through branch, control
    directory and repository verbs only; their one file-level write is
    ``mkdir`` of the codebase, campaign or role directory (``ensure_base``
    before a branch is made there, ``ControlDir.create`` of the codebase).
    What this allows, :func:`write_refusal` still judges.
    """
    if operation == "mkdir" and (not disk or is_layout_dir(disk)):
        return None
    if _repository_part(disk) is not None:
        return _VFS_REPOSITORY_REASON
    if control_path(disk) is not None:
        return _VFS_BRANCH_REASON
    return (
        f"{operation} is not allowed here: clients create codebase, campaign and role "
        "directories and change nothing else through file writes"
    )


def is_branch_lock(disk: tuple[str, ...]) -> bool:
    """Whether on-disk ``disk`` is a branch's lock directory (made once,
    when the branch is made)."""
    return disk[:1] != (CONTROL,) and control_path(disk) == ("branch", "lock")


#: URL schemes a branch's remote or other location may have (the janitor's
#: upstream and VCS locations); never ``file:``.
REMOTE_SCHEMES = frozenset(
    {
        "http",
        "https",
        "git",
        "ssh",
        "git+ssh",
        "bzr",
        "bzr+ssh",
        "bzr+http",
        "bzr+https",
        "svn",
        "svn+ssh",
        "svn+http",
        "svn+https",
    }
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_ESCAPED_SEPARATOR = re.compile(r"%(?:2e|2f|5c|00)", re.IGNORECASE)


def url_refusal(url: str) -> str | None:
    """Why ``url`` may not be a branch's remote, or None: it must be
    printable ASCII, ``SCHEME://HOST/...`` with a scheme of
    :data:`REMOTE_SCHEMES`."""
    if not url.isascii() or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in url):
        return "only printable ASCII without spaces"
    try:
        parsed = urlutils.URL.from_string(url)
    except (urlutils.InvalidURL, ValueError) as e:
        return str(e)
    if not parsed.scheme or not parsed.host:
        return "expected SCHEME://HOST/PATH"
    if parsed.scheme.lower() not in REMOTE_SCHEMES:
        return (
            f"scheme {parsed.scheme} not allowed "
            f"(allowed: {', '.join(sorted(REMOTE_SCHEMES))})"
        )
    return None


#: The options a branch's configuration (``branch.conf``) may hold: those
#: breezy itself keeps for a branch.  Any other would be read by whatever
#: runs in the server process when a branch changes: breezy's ``upload``
#: plugin copies the tree to ``upload_location``, its ``email`` plugin
#: mails through ``smtp_server``.
BRANCH_OPTIONS = frozenset(
    {
        "parent_location",
        "push_location",
        "public_branch",
        "submit_branch",
        "stacked_on_location",
        "bound_location",
        "bound",
        "append_revisions_only",
        "child_submit_format",
        "child_submit_to",
        "branch.fetch_tags",
        "nickname",
    }
)


def is_location_option(name: str) -> bool:
    """Whether branch option ``name`` names a location (``parent_location``,
    ``push_location``, ``public_branch``, ``submit_branch``...)."""
    return name.endswith(("_location", "_branch"))


def location_refusal(branch: tuple[str, ...], value: str) -> str | None:
    """Why a branch at on-disk ``branch`` (relative to its codebase) may not
    name location ``value`` in its configuration, or None.

    Empty (unset), a URL :func:`url_refusal` allows, or a relative path
    that stays inside the codebase (breezy stores a location on the same
    server relative to the branch).
    """
    if not value:
        return None
    if _SCHEME.match(value):
        return url_refusal(value)
    if (
        value.startswith("/")
        or "\\" in value
        or _ESCAPED_SEPARATOR.search(value)
        or any(ord(c) < 32 or c == "\x7f" for c in value)
    ):
        return "only a URL or a path relative to the branch, inside its codebase"
    depth = len(branch)
    for part in value.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return "a relative location must stay inside the codebase"
        elif part not in ("", "."):
            depth += 1
    return None


#: The file naming a repository's packs.
PACK_NAMES = (CONTROL, "repository", "pack-names")
#: Repository directories whose names are never synced (the transport's
#: ``_wrote``).
UNNAMED_DIRS = frozenset(
    (CONTROL, "repository", name)
    for name in (UPLOAD, OBSOLETE_PACKS)
)
LOCK_DIRECTORIES = frozenset({"lock", "pack-lock", "branch-lock"})


def is_upload(disk: tuple[str, ...]) -> bool:
    """Whether on-disk ``disk`` is a file in the repository's ``upload``."""
    return disk[:-1] == (CONTROL, "repository", UPLOAD)


def is_lock_entry(disk: tuple[str, ...]) -> bool:
    """Whether on-disk ``disk`` is inside a lock directory of a control
    directory (a record, held or being taken or released; not the lock
    directory itself, made once with its branch or repository)."""
    try:
        at = disk.index(CONTROL)
    except ValueError:
        return False
    return any(name in LOCK_DIRECTORIES for name in disk[at + 1 : -1])
