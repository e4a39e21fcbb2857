"""Branch tips a push would make: a tip revision the repository has, and
the revision number that is its left-hand distance from ``null:``.

breezy's ``Branch.set_last_revision_info`` trusts the revision number the
client gives and never checks the tip is stored; a writer could leave a
branch no client can read (a ghost tip) or with any revno (``10**15``,
``-5``).  A ``pre_change_branch_tip`` hook refuses both before anything
changes (:class:`~breezy.errors.TipChangeRejected`).

The revno is checked with a walk of the new tip's left-hand line, one
parent lookup a step, down to the old tip (whose revno is known) or to
``null:``; after :data:`MAX_WALK` steps (a history longer than the janitor
keeps) only a lower bound is checked: the revno must be at least the
steps walked plus one.  A ghost on the line ends the check (the revno
cannot be known from what is stored).
"""

from __future__ import annotations

from breezy import errors
from breezy.branch import Branch
from breezy.revision import NULL_REVISION, is_null

from . import provenance

__all__ = ["MAX_WALK", "install", "tip_refusal"]

#: Left-hand steps walked to check a tip's revno at most.
MAX_WALK = 100_000


def tip_refusal(branch: Branch, params) -> str | None:
    """Why the change ``params`` (breezy's ``ChangeBranchTipParams``) of
    ``branch`` makes a tip a push never would, or None."""
    new, revno = params.new_revid, params.new_revno
    shown = new.decode("utf-8", "replace")
    if is_null(new):
        return None if revno == 0 else f"the revno of null: is 0, not {revno}"
    repository = branch.repository
    with repository.lock_read():
        if not repository.has_revision(new):
            return f"tip {shown} is not in the repository: push its revisions first"
        if revno < 1:
            return f"revno {revno} is not a revision number"
        stop, stop_revno = params.old_revid, params.old_revno
        key, steps = new, 0
        while steps < MAX_WALK:
            if key == stop and not is_null(stop):
                wanted = stop_revno + steps
                break
            parents = repository.get_parent_map([key]).get(key)
            if parents is None:  # a ghost: cannot be known
                return None
            steps += 1
            if not parents or parents[0] == NULL_REVISION:
                wanted = steps
                break
            key = parents[0]
        else:
            return (
                None
                if revno > steps
                else f"revno {revno} is less than the history of {shown}"
            )
    if revno != wanted:
        return f"revno {revno} is not the revno of {shown}: {wanted}"
    return None


def _pre_change_branch_tip(params) -> None:
    """breezy's ``pre_change_branch_tip`` hook: refuse an impossible tip
    asked by a store request (a client's own branch objects run the hook
    too, where nothing is written for a store request)."""
    if provenance.current() is None:
        return
    reason = tip_refusal(params.branch, params)
    if reason is not None:
        raise errors.TipChangeRejected(reason)


_installed = False


def install() -> None:
    """Install the tip check (once per process)."""
    global _installed
    if not _installed:
        Branch.hooks.install_named_hook(
            "pre_change_branch_tip", _pre_change_branch_tip, "janitor store tip check"
        )
        _installed = True
