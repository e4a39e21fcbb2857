"""Diffs on pages: run to their end (or their bounds) before the page.

:func:`page_diff` runs the diff from one revision to another in a slot of
the stream budget, within the face's diff limits and timeout, and keeps
its markup up to :data:`~breezy_janitor_store.web.browse.PAGE_DIFF_LIMIT`
bytes, with the lines each listed file gained and lost (or why they were
not counted: a binary file, one too large to compare, a diff cut short).
A page lists its changed files with those counts above the diff itself;
:class:`PageBody` runs the diff only once the body is iterated (nothing
runs for a ``HEAD``) and keeps a whole page in :data:`.caching.PAGES`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

from markupsafe import Markup

from ...store import diff
from ..browse import PAGE_DIFF_LIMIT
from ..http import Request
from . import caching, render

__all__ = ["FileLines", "PageBody", "PageDiff", "file_anchor", "page_diff"]

logger = logging.getLogger(__name__)

#: Why a file's lines were not counted.
BINARY = "binary file"
TOO_LARGE = "too large to compare"
TOO_LONG = "not counted: the diff is too long to show"
TIMED_OUT = "not counted: the diff was cut off by time"
FAILED = "not counted: the diff could not be produced"


@dataclass
class FileLines:
    """Lines a file gained and lost in a diff; both None when they were
    not counted (``why`` says why, when there is a reason to give)."""

    added: int | None = None
    removed: int | None = None
    why: str | None = None

    def as_json(self) -> dict[str, object]:
        return {"added": self.added, "removed": self.removed, "not_counted": self.why}


@dataclass
class PageDiff:
    """A diff as a page shows it: markup chunks (at most
    :data:`PAGE_DIFF_LIMIT` bytes), the listed files' counts, notes on how
    it ended, and whether it was cut short by time or a failure (a page
    showing it is not kept)."""

    chunks: list[Markup] = field(default_factory=list)
    files: dict[str, FileLines] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    transient: bool = False

    def lines(self, path: str) -> FileLines:
        return self.files.get(path) or FileLines()


def page_diff(
    repo,
    old: bytes,
    new: bytes,
    timeout: float,
    limits: diff.DiffLimits,
    slot: diff.Slot,
    listed: Collection[str],
) -> PageDiff:
    """The diff from ``old`` to ``new``, with the counts of the files in
    ``listed`` (the worker gives ``slot`` back when it ends)."""
    stream = diff.DiffStream(
        lambda out: diff.write_revision_diff(repo, old, new, out, None, limits),
        timeout,
        limits.output_bytes,
        slot,
    )
    collector = _Collector(set(listed))
    try:
        collector.feed(stream)
    except diff.DiffTimeout as e:
        collector.stop(f"The diff was cut off: {e}.", TIMED_OUT)
    except Exception:
        logger.exception("diff of %r..%r failed", old, new)
        collector.stop("The diff could not be produced.", FAILED)
    finally:
        stream.close()
    return collector.result


def file_anchor(path: str) -> str:
    """The id of a file's part of a diff on a page."""
    return "f-" + hashlib.sha1(path.encode("utf-8", "replace")).hexdigest()[:16]


#: A file's header in breezy's diff (``=== KIND file 'PATH'``, with the
#: properties that changed); ``=== target is '...'`` lines of a symlink's
#: part and ``=== diff truncated`` are not headers.
_HEADER = re.compile(
    r"=== (?:(?:added|removed|modified) [a-z-]+ '(?P<path>.*)'"
    r"|renamed [a-z-]+ '.*?' => '(?P<new>.*)')"
    r"(?: \(properties changed: [^()]*\))?\Z",
    re.DOTALL,
)


def _diff_file(line: bytes) -> str | None:
    """The path a diff's file header (``=== KIND file 'PATH'``) names (the
    new one of a rename); None if the line is not a file's header."""
    m = _HEADER.match(line.decode("utf-8", "replace"))
    if m is None:
        return None
    return m.group("path") if m.group("path") is not None else m.group("new")


class _Part:
    """One file's part of a diff: its counts so far."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.added = self.removed = 0
        self.text = False  # a unified diff was written for it
        self.in_hunk = False  # past its first ``@@`` line
        self.why: str | None = None

    def count(self, line: bytes) -> None:
        if line.startswith(b"@@"):
            self.in_hunk = True
        elif not self.in_hunk and line.startswith((b"+++", b"---")):
            self.text = True  # in a hunk, a line "-- x" removed, "++ x" added
        elif line.startswith(b"+"):
            self.added += 1
        elif line.startswith(b"-"):
            self.removed += 1
        elif line.startswith(b"Binary files "):
            self.why = BINARY
        elif line.startswith(b"File too large to diff:"):
            self.why = TOO_LARGE

    def html(self) -> str:
        return f'<span class="note">(+{self.added} \u2212{self.removed})</span>\n'

    def lines(self) -> FileLines:
        if self.why is not None or not self.text:
            return FileLines(why=self.why)
        return FileLines(self.added, self.removed)


class _Collector:
    """Turns a diff's bytes into escaped, classed lines (each file's header
    with its anchor, its part followed by its counts) until the markup
    reaches :data:`PAGE_DIFF_LIMIT`; counts the files in ``listed``."""

    def __init__(self, listed: set[str]) -> None:
        self.result = PageDiff()
        self.listed = listed
        self.size = 0
        self.part: _Part | None = None
        self.empty = True
        self.truncated = False  # the diff's own output limit was reached
        self.anchors: set[str] = set()  # each anchor once

    def feed(self, stream: Iterator[bytes]) -> None:
        pending = b""
        for chunk in stream:
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            out: list[str] = []
            for line in lines:
                if not self._line(line, out):
                    self._flush(out)
                    self.stop(
                        "The diff is too long to show here in full; "
                        "the rest is left out.",
                        TOO_LONG,
                    )
                    return
            self._flush(out)
        out = []
        if pending and not self._line(pending, out):
            self._flush(out)
            self.stop(
                "The diff is too long to show here in full; the rest is left out.",
                TOO_LONG,
            )
            return
        self._end_part(out)
        self._flush(out)
        if self.truncated:
            for path in self.listed:
                self.result.files.setdefault(path, FileLines(why=TOO_LONG))
        if self.empty:
            self.result.notes.append("No changes.")

    def _line(self, line: bytes, out: list[str]) -> bool:
        """Add the line's markup to ``out``; False when the page is full."""
        self.empty = False
        path = _diff_file(line) if line.startswith(b"=== ") else None
        if line.startswith(b"=== diff truncated"):
            if self.part is not None:
                self.part.why = TOO_LONG  # its part was cut
            self._end_part(out)
            html_line = _diff_line(line)
            self.truncated = True
        elif path is not None:
            self._end_part(out)
            self.part = _Part(path)
            anchor = f' id="{file_anchor(path)}"' if path not in self.anchors else ""
            self.anchors.add(path)
            html_line = (
                f'<span class="file"{anchor}>'
                f"{render.esc(line.decode('utf-8', 'replace'))}</span>\n"
            )
        else:
            if self.part is not None:
                self.part.count(line)
            html_line = _diff_line(line, self.part is not None and self.part.in_hunk)
        self.size += len(html_line)
        if self.size > PAGE_DIFF_LIMIT:
            return False
        out.append(html_line)
        return True

    def _end_part(self, out: list[str]) -> None:
        part = self.part
        if part is None:
            return
        self.part = None
        out.append(part.html())
        if part.path in self.listed:
            self.result.files.setdefault(part.path, part.lines())

    def _flush(self, out: list[str]) -> None:
        if out:
            self.result.chunks.append(render.markup("".join(out)))
            out.clear()

    def stop(self, note: str, why: str) -> None:
        """The diff ended early: ``note`` under it, and each listed file
        not counted in full says ``why``."""
        self.result.notes.append(note)
        self.result.transient = why in (TIMED_OUT, FAILED)
        if self.part is not None and self.part.path in self.listed:
            self.result.files[self.part.path] = FileLines(why=why)
        self.part = None
        for path in self.listed:
            self.result.files.setdefault(path, FileLines(why=why))


_DIFF_CLASSES = (
    (b"+++", "file"),
    (b"---", "file"),
    (b"===", "file"),
    (b"+", "add"),
    (b"-", "del"),
    (b"@@", "hunk"),
)


#: Classes of the lines of a file's hunks (no file headers there).
_HUNK_CLASSES = ((b"+", "add"), (b"-", "del"), (b"@@", "hunk"))


def _diff_line(line: bytes, in_hunk: bool = False) -> str:
    text = render.esc(line.decode("utf-8", "replace"))
    for prefix, cls in _HUNK_CLASSES if in_hunk else _DIFF_CLASSES:
        if line.startswith(prefix):
            return f'<span class="{cls}">{text}</span>\n'
    return text + "\n"


class PageBody:
    """A diff page's body: ``make()`` runs the diff and returns the page's
    chunks and whether the diff was cut short by time or a failure; it
    runs when the body is first iterated.  The slot goes back when the
    body is closed before the diff started (a ``HEAD``, a client gone
    early); a whole page whose diff was not cut short is kept in
    :data:`.caching.PAGES` (under the ETag of ``headers``)."""

    def __init__(
        self,
        make: Callable[[], tuple[Iterator[bytes], bool]],
        slot: diff.Slot,
        req: Request,
        headers: list[tuple[str, str]],
    ) -> None:
        self._make = make
        self._slot = slot
        self._req = req
        self._headers = headers
        self._body: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        body, transient = self._make()
        self._body = body
        kept: list[bytes] | None = None if transient else []
        size = 0
        for chunk in body:
            if kept is not None:
                kept.append(chunk)
                size += len(chunk)
                if size > caching.PAGES.max_page:
                    kept = None
            yield chunk
        if kept is not None:
            caching.PAGES.put(self._req, self._headers, b"".join(kept))

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._slot.release_unused()
