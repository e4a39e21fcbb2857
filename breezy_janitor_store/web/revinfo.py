"""Bounds of ``revision-info``: it loads a left-hand history that may be
long, so it runs like a diff, under a reader slot of the stream budget
(``503`` with ``Retry-After`` when none comes free) and the diff timeout
(``504``; the work ends on its own and only then gives its slot back), and
answers at most :data:`MAX_ENTRIES` entries, the newest, marking a cut list
with the :data:`TRUNCATED_HEADER` header (the body stays the janitor's
plain JSON array).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from . import browse
from .http import HTTPError

if TYPE_CHECKING:
    from .face import Face

__all__ = ["MAX_ENTRIES", "TRUNCATED_HEADER", "bounded", "entry_limit"]

#: The most entries one ``revision-info`` answers (the newest ones).
MAX_ENTRIES = 10_000
#: Set, to the number of entries answered, when the list was cut.
TRUNCATED_HEADER = "Bzr-Store-Truncated"

T = TypeVar("T")


def entry_limit(face: Face) -> int:
    """The face's cap on entries (its ``revision_info_limit``, if set)."""
    limit = face.revision_info_limit
    return MAX_ENTRIES if limit is None else limit


def bounded(face: Face, work: Callable[[], T], what: str) -> T:
    """``work()``'s result, run under a reader slot of ``app``'s stream
    budget, if it came within ``face.diff_timeout`` seconds.

    :raises HTTPError: 503 when no slot comes free, 504 past the timeout.
    """
    slot = browse.diff_slot(face)
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as e:  # noqa: BLE001 - raised again in the request's thread
            box["error"] = e
        finally:
            slot.release()

    thread = threading.Thread(
        target=contextvars.copy_context().run,  # keeps the request id
        args=(run,),
        name=what,
        daemon=True,
    )
    start = time.monotonic()
    thread.start()
    thread.join(face.diff_timeout)
    # (a result that came after the deadline is late too)
    if thread.is_alive() or time.monotonic() - start > face.diff_timeout:
        raise HTTPError(504, f"{what} took longer than {face.diff_timeout:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
