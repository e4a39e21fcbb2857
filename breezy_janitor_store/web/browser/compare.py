"""``GET /bzr/CODEBASE/+compare/OLD..NEW``: what NEW has that OLD lacks.

OLD and NEW are revision ids (percent encoded; ``null:`` for the empty
tree), split at the first ``..``.  The page lists NEW's revisions that OLD
lacks and shows the diff from OLD to NEW (see
:func:`breezy_janitor_store.web.browser.revision.compare_page`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..http import HTTPError, Request
from . import common, revision

if TYPE_CHECKING:
    from ..face import Face

__all__ = ["compare"]


def compare(face: Face, req: Request, codebase: str, spec: str) -> Iterable[bytes]:
    try:
        raw = spec.encode("latin-1")  # PEP 3333: PATH_INFO bytes as latin-1
    except UnicodeEncodeError:
        raw = spec.encode("utf-8")
    old, sep, new = raw.partition(b"..")
    if not sep or not old or not new:
        raise HTTPError(400, "compare OLD..NEW: two revision ids")
    if max(len(old), len(new)) > common.MAX_REVID:
        raise HTTPError(400, f"revision ids are at most {common.MAX_REVID} bytes")
    return revision.compare_page(face, req, codebase, old, new)
