"""Which directory is the store, and whether it holds only the store.

The storage directory is never implied: ``--directory`` (``-d``,
``--vcs-path``) or ``BZR_STORE_PATH`` names it, for ``serve``, the WSGI
entry and every action.  A directory holding anything but codebases (files,
or directories without a ``.bzr``) is refused unless
``--allow-other-content`` (``BZR_STORE_ALLOW_OTHER_CONTENT=1``) says it is
meant: pushing ``docs/lintian-fixes`` to a store serving a home directory
would otherwise put a repository beside ``docs/notes.txt``.
"""

from __future__ import annotations

import os

from ..store.layout import CONTROL, is_valid_name
from .config import ConfigError, env_default

__all__ = [
    "ALLOW_OTHER_ENV",
    "DIRECTORY_ENV",
    "branch_exists",
    "check_store_directory",
    "other_content",
    "storage_directory",
]

DIRECTORY_ENV = "BZR_STORE_PATH"
ALLOW_OTHER_ENV = "BZR_STORE_ALLOW_OTHER_CONTENT"
#: What a mounted file system brings along, not the operator's content.
_IGNORED = frozenset({"lost+found"})
#: Entries :func:`other_content` names at most.
_SHOWN = 5


def storage_directory(value: str | None) -> str:
    """The storage directory from an option's ``value`` or the environment.

    :raises ConfigError: neither names one, or it is not a directory.
    """
    directory = env_default(value, DIRECTORY_ENV)
    if directory is None:
        raise ConfigError(
            "no storage directory given: pass --directory DIR "
            f"(or set {DIRECTORY_ENV}); an empty directory becomes a new store"
        )
    if not os.path.isdir(directory):
        problem = (
            "is not a directory" if os.path.exists(directory) else "does not exist"
        )
        raise ConfigError(f"storage directory {directory} {problem}")
    return directory


def other_content(directory: str) -> list[str]:
    """Up to a few top-level entries of ``directory`` that are not the
    store's: files, and non-empty directories without a ``.bzr`` (hidden
    entries, such as the store's scratch directories, are not judged)."""
    found: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name in _IGNORED:
                continue
            if entry.is_dir(follow_symlinks=False) and is_valid_name(name):
                path = entry.path
                if os.path.isdir(os.path.join(path, CONTROL)) or not os.listdir(path):
                    continue
            found.append(name)
            if len(found) >= _SHOWN:
                break
    return sorted(found)


def check_store_directory(directory: str, allow_other: bool | None = None) -> None:
    """Refuse ``directory`` if it holds other content and that was not
    allowed (``allow_other``, else ``BZR_STORE_ALLOW_OTHER_CONTENT``).

    :raises ConfigError: naming a few of the entries and the way out.
    """
    if allow_other is None:
        allow_other = env_default(None, ALLOW_OTHER_ENV, False, _boolean)
    if allow_other:
        return
    others = other_content(directory)
    if others:
        shown = ", ".join(others) + (", ..." if len(others) >= _SHOWN else "")
        raise ConfigError(
            f"{directory} holds more than codebases ({shown}); each codebase "
            "is a directory with a .bzr.  Give an empty directory or a store, "
            f"or pass --allow-other-content ({ALLOW_OTHER_ENV}=1) to serve "
            "it anyway"
        )


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def branch_exists(directory: str, disk_segments: tuple[str, ...]) -> bool:
    """Whether a control directory is at ``disk_segments`` below ``directory``."""
    return os.path.isdir(os.path.join(directory, *disk_segments, CONTROL))
