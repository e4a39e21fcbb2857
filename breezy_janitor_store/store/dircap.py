"""How many campaign and role directories a client may make.

``mkdir`` of a campaign or role directory needs no branch (breezy's
``ensure_base`` makes it before the branch), so without a cap a writer
could make any number of empty directories, which every page listing the
codebase then reads.  A new layout directory is refused
(``PermissionDenied``) when its parent already holds :data:`MAX_CAMPAIGNS`
campaign directories (a codebase) or :data:`MAX_ROLES` role directories (a
campaign); existing ones are never refused.  Two clients making the last
ones at once may each get one: the cap is exceeded by at most the number
of concurrent requests.
"""

from __future__ import annotations

from breezy.transport import NoSuchFile, Transport

from . import layout

__all__ = ["MAX_CAMPAIGNS", "MAX_ROLES", "layout_dir_refusal"]

#: Campaign directories one codebase holds at most.
MAX_CAMPAIGNS = 256
#: Role directories (other than the main branch) one campaign holds at most.
MAX_ROLES = 256


def layout_dir_refusal(root: Transport, disk: tuple[str, ...]) -> str | None:
    """Why making on-disk ``disk`` (relative to the codebase directory
    ``root``) and the layout directories above it breaks the cap, or None."""
    for depth in range(1, len(disk) + 1):
        here = disk[:depth]
        if not layout.is_layout_dir(here):
            return None
        if root.has("/".join(here)):
            continue
        try:
            names = root.list_dir("/".join(here[:-1]) or ".")
        except NoSuchFile:
            return None  # a new parent: nothing in it yet
        held = sum(1 for name in names if name != layout.CONTROL)
        if depth == 1 and held >= MAX_CAMPAIGNS:
            return f"a codebase holds at most {MAX_CAMPAIGNS} campaign directories"
        if depth == 2 and held >= MAX_ROLES:
            return f"a campaign holds at most {MAX_ROLES} role directories"
    return None
