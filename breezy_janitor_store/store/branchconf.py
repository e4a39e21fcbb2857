"""What a branch may hold in its ``.bzr``: formats and configuration.

The layout rules' other half (:mod:`.layout` names the places): checked by
the transport on every write of a branch's format, location or
configuration file, and by ``check`` on what is on disk.
"""

from __future__ import annotations

import io

from breezy import branch, config
from breezy.bzr import branch as bzr_branch

from . import layout

__all__ = [
    "FOLLOWED_OPTIONS",
    "MAX_CHECKED_SIZE",
    "OPTION_REASON",
    "REFERENCE_OPTION_REASON",
    "REFERENCE_REASON",
    "content_refusal",
]

#: Largest format, location or configuration file of a branch accepted.
MAX_CHECKED_SIZE = 64 * 1024
REFERENCE_REASON = (
    "branch references, stacked and bound branches are not allowed in the store "
    "(every branch keeps its revisions in its codebase's shared repository)"
)
OPTION_REASON = "not an option the store keeps for a branch"
#: breezy expands such references from the server's own configuration, and
#: expands them again within each other: a small file can name a huge value.
REFERENCE_OPTION_REASON = "references to other options ({name}) are not allowed"
#: branch.conf options naming a location breezy opens on its own.
FOLLOWED_OPTIONS = ("stacked_on_location", "bound_location")


def content_refusal(
    part: tuple[str, ...], data: bytes, where: tuple[str, ...] = ()
) -> str | None:
    """Why a branch (at on-disk ``where`` in its codebase) may not hold
    ``data`` at ``part`` (inside its ``.bzr``).

    The store never follows a location a branch names: a branch reference,
    a stacked-on branch and a bound master are refused when written.  Any
    other location it names (``parent_location``, ``push_location``,
    ``public_branch``...) must be one :func:`layout.location_refusal`
    allows: a URL of a remote scheme, or relative inside the codebase.  Its
    configuration holds no option but :data:`layout.BRANCH_OPTIONS`, and no
    value naming another option (``{name}``).
    """
    if part in (("branch", "location"), ("branch", "bound")):
        return REFERENCE_REASON
    if part == ("branch", "format"):
        first_line = data[: data.find(b"\n") + 1] or data
        try:
            fmt = branch.format_registry.get(first_line)
        except KeyError:
            return "not a known branch format"
        if isinstance(fmt, bzr_branch.BranchReferenceFormat):
            return REFERENCE_REASON
    if part == ("branch", "branch.conf"):
        try:
            conf = config.ConfigObj(io.BytesIO(data), encoding="utf-8")
        except (SyntaxError, UnicodeError):  # ConfigObjError is a SyntaxError
            return "not a valid branch configuration"
        for option in FOLLOWED_OPTIONS:
            if conf.get(option):
                return f"{option}: {REFERENCE_REASON}"
        if str(conf.get("bound", "")).strip().lower() in ("true", "yes", "on", "1"):
            return f"bound: {REFERENCE_REASON}"
        for name in conf:
            if name not in layout.BRANCH_OPTIONS:
                return f"{name}: {OPTION_REASON}"
            if _has_reference(conf[name]):
                return f"{name}: {REFERENCE_OPTION_REASON}"
        return _location_options_refusal(conf, where)
    return None


def _has_reference(value: object) -> bool:
    """Whether an option's value (or a section's) names another option:
    breezy expands ``{name}`` when it reads it."""
    if isinstance(value, dict):
        return any(_has_reference(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_reference(v) for v in value)
    return "{" in str(value)


def _location_options_refusal(section, where: tuple[str, ...]) -> str | None:
    """Why a location option of configuration ``section`` (or of any of its
    sections) is not allowed, or None."""
    for name, value in section.items():
        if not layout.is_location_option(name):
            if not isinstance(value, dict):
                continue
            reason = _location_options_refusal(value, where)
        elif not isinstance(value, str):
            reason = "not a single location"
        else:
            reason = layout.location_refusal(where, value)
        if reason is not None:
            return f"{name}: {reason}"
    return None
