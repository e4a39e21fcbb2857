"""Unified diffs between two revisions, produced in-process and streamed.

breezy's diff writer runs in a worker thread and hands its output over in
chunks through a bounded queue, so a huge diff never sits in memory and the
first bytes reach the client while the rest is still being computed.

Every diff is bounded (:class:`DiffLimits`): a file larger than
:data:`DIFF_FILE_LIMIT` bytes or :data:`DIFF_LINE_LIMIT` lines, on either
side, is not compared (a line says so; its size is taken from the
inventory, so it is not read), and the output stops with a note after
:data:`DIFF_OUTPUT_LIMIT` bytes.  Each file's unified diff is written line
by line as it is generated, never gathered first.

Every diff has a deadline: when it passes (or the client goes away) the
client gets its answer at once, and the worker stops at its next check:
each line it writes.  Between two writes it only reads and matches one
file within the limits.  The worker is never interrupted elsewhere, so
breezy's objects are never left half-changed.  A diff may hold a
:class:`Slot` of a stream budget; the worker gives it back when it ends.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import patiencediff
from breezy import diff as _mod_diff
from breezy import errors, osutils, textfile
from breezy.repository import Repository
from breezy.transport import NoSuchFile

from .budget import ANNOTATE_LIMIT

if TYPE_CHECKING:
    from .budget import StreamBudget

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "DIFF_FILE_LIMIT",
    "DIFF_LINE_LIMIT",
    "DIFF_OUTPUT_LIMIT",
    "Busy",
    "DiffLimits",
    "DiffStream",
    "DiffTimeout",
    "Slot",
    "write_revision_diff",
]

logger = logging.getLogger(__name__)

#: Seconds a diff may take before it is cut off.
DEFAULT_TIMEOUT = 30.0
#: Bytes gathered before a chunk is handed to the client (after the first).
CHUNK_SIZE = 64 * 1024
#: Chunks buffered between the diff writer and a slow client.
QUEUE_DEPTH = 8
#: Seconds to wait for a stopped worker to finish (it may be comparing a
#: large file; it ends by itself at its next check).
_JOIN_GRACE = 2.0
#: Labels of the old and new trees, as ``brz diff`` writes them.
OLD_LABEL = "old/"
NEW_LABEL = "new/"
#: Largest file (bytes, either side) compared: the same bound as an
#: annotation's.  Comparing holds both sides' lines and the matcher's tables.
DIFF_FILE_LIMIT = ANNOTATE_LIMIT
#: Most lines of a file (either side) compared: each line costs a Python
#: object (about 40 bytes) and the matcher's entries besides its bytes.
DIFF_LINE_LIMIT = 250_000
#: Bytes of diff output after which the rest is left out, with a note.
DIFF_OUTPUT_LIMIT = 32 * 1024 * 1024


@dataclass(frozen=True)
class DiffLimits:
    """Bounds of one diff: see :data:`DIFF_FILE_LIMIT`,
    :data:`DIFF_LINE_LIMIT` and :data:`DIFF_OUTPUT_LIMIT`."""

    file_bytes: int = DIFF_FILE_LIMIT
    file_lines: int = DIFF_LINE_LIMIT
    output_bytes: int = DIFF_OUTPUT_LIMIT


DEFAULT_LIMITS = DiffLimits()


_ids = itertools.count(1)


class DiffTimeout(TimeoutError):
    """The diff took longer than its time limit."""


class Busy(Exception):
    """No slot of the stream budget came free in time."""


class _Stopped(BaseException):
    """Raised by the worker's writes to end it (BaseException: breezy does
    not swallow it; its ``with`` blocks and ``finally`` clauses run)."""


class _Truncated(BaseException):
    """Raised by a write that would take the output past its limit."""


class Slot:
    """A reader's place in a :class:`~breezy_janitor_store.smart.exchange.StreamBudget`,
    given back once: by the diff worker holding it when it ends, or by
    :meth:`release` if no worker ever took it.

    :raises Busy: no slot came free within the budget's wait.
    """

    def __init__(self, budget: StreamBudget) -> None:
        if not budget.acquire(writer=False):
            raise Busy(f"the server is busy with {budget.slots} streams")
        self._budget = budget
        self._lock = threading.Lock()
        self._held = True
        self.taken = False

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._budget.release(writer=False)

    def release_unused(self) -> None:
        """Give the slot back unless a worker took it (it does, at its end)."""
        if not self.taken:
            self.release()


class _Done:
    """End of the stream, with the worker's exception if it failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Writer:
    """The file breezy's diff writer writes to: chunks into a bounded queue,
    up to ``limit`` bytes in all."""

    def __init__(self, stream: DiffStream, limit: int) -> None:
        self._stream = stream
        self._parts: list[bytes] = []
        self._size = 0
        self._sent = False
        self._limit = limit
        self._total = 0

    def write(self, data: bytes) -> None:
        self._stream.check()
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._total += len(data)
        if self._total > self._limit:
            raise _Truncated()
        self._parts.append(data)
        self._size += len(data)
        # The first bytes go out at once (time to first byte), then in chunks.
        if self._size >= CHUNK_SIZE or not self._sent:
            self.flush()

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._parts:
            chunk = b"".join(self._parts)
            self._parts, self._size, self._sent = [], 0, True
            self._stream.put(chunk)


class DiffStream:
    """Run ``produce(file)`` in a worker thread; iterate what it writes.

    Call :meth:`first` before starting the response (it raises
    :class:`DiffTimeout` or the worker's exception while the caller can
    still choose the status), then iterate it and :meth:`close` it (a WSGI
    server does both when it is returned as the response body).

    :param limit: bytes of output; past them a note ends the stream.
    :param slot: given back when the worker ends.
    """

    def __init__(
        self,
        produce: Callable[[BinaryIO], None],
        timeout: float,
        limit: int = DIFF_OUTPUT_LIMIT,
        slot: Slot | None = None,
    ) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.limit = limit
        self._slot = slot
        if slot is not None:
            slot.taken = True
        self._queue: queue.Queue = queue.Queue(QUEUE_DEPTH)
        self._stop = threading.Event()
        self._finished = False
        self._head: bytes | None = None
        self._thread = threading.Thread(
            target=self._work,
            args=(produce,),
            name=f"store-diff-{next(_ids)}",
            daemon=True,
        )
        try:
            self._thread.start()
        except BaseException:  # no thread (e.g. out of threads): no worker
            if slot is not None:
                slot.release()
            raise

    # -- worker side --

    def check(self) -> None:
        """Stop the worker if the stream was closed or the deadline passed."""
        if self._stop.is_set() or time.monotonic() > self.deadline:
            raise _Stopped()

    def put(self, item: object) -> None:
        while True:
            self.check()
            try:
                self._queue.put(item, timeout=0.25)
                return
            except queue.Full:
                continue

    def _work(self, produce: Callable[[BinaryIO], None]) -> None:
        writer = _Writer(self, self.limit)
        try:
            try:
                produce(writer)  # type: ignore[arg-type]
            except _Truncated:
                writer.flush()
                self.put(
                    b"=== diff truncated: it is longer than %d bytes; "
                    b"the rest is left out\n" % self.limit
                )
            writer.flush()
            self.put(_Done())
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            try:
                self.put(_Done(e))
            except _Stopped:
                pass
        finally:
            if self._slot is not None:
                self._slot.release()

    # -- reader side --

    def _get(self) -> object:
        remaining = self.deadline - time.monotonic()
        try:
            return self._queue.get(timeout=max(remaining, 0))
        except queue.Empty:
            self.close()
            raise DiffTimeout(
                f"diff took longer than {self.timeout:g} seconds"
            ) from None

    def _take(self) -> bytes | None:
        item = self._get()
        if isinstance(item, _Done):
            self.close()
            if item.error is not None:
                raise item.error
            return None
        return item  # type: ignore[return-value]

    def first(self) -> bytes:
        """Wait for the first chunk (``b""`` for an empty diff) and return it.

        Iterating the stream afterwards yields it again, then the rest.
        """
        if self._head is None:
            chunk = self._take()
            self._head = b"" if chunk is None else chunk
        return self._head

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self._head:
                yield self._head
            while not self._finished:
                chunk = self._take()
                if chunk is None:
                    return
                yield chunk
        finally:
            self.close()

    @property
    def running(self) -> bool:
        """Whether the worker thread still runs."""
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop the worker; wait a little for it to end."""
        if self._finished:
            return
        self._finished = True
        self._stop.set()
        _drain(self._queue)  # unblock a worker waiting to put
        thread = self._thread
        thread.join(_JOIN_GRACE)
        if thread.is_alive():
            logger.info(
                "diff worker %s is still comparing a file; it stops after it",
                thread.name,
            )


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def write_revision_diff(
    repository: Repository,
    old: bytes,
    new: bytes,
    out: BinaryIO,
    path: str | None = None,
    limits: DiffLimits = DEFAULT_LIMITS,
) -> None:
    """Write the unified diff from revision ``old`` to ``new`` to ``out``.

    The output is what ``brz diff -r revid:OLD..revid:NEW [PATH]`` prints,
    but for files over ``limits`` (a line saying so instead of their diff)
    and dates that cannot be shown (``(unreadable date)``).

    :raises breezy.errors.PathsNotVersionedError: ``path`` is in neither.
    """
    with repository.lock_read(), contextlib.ExitStack() as stack:
        old_tree = repository.revision_tree(old)
        new_tree = repository.revision_tree(new)
        stack.enter_context(old_tree.lock_read())
        stack.enter_context(new_tree.lock_read())
        text = _BoundedDiffText(old_tree, new_tree, out, limits)
        # what show_diff_trees builds, with the bounded text differ
        differ = _mod_diff.DiffTree(old_tree, new_tree, out, "utf8", text)
        differ.show_diff([path] if path else None)


class _TooLarge(Exception):
    def __init__(self, what: str) -> None:
        self.what = what


#: The date in a file's header when it cannot be formatted (not the epoch:
#: GNU patch reads that as a file that does not exist).
UNREADABLE_DATE = "(unreadable date)"


def _header_date(tree, path: str) -> str:
    """The date in the file's header line, as breezy writes it; never raises
    for a revision's odd timestamp."""
    try:
        mtime = tree.get_file_mtime(path)
    except errors.FileTimestampUnavailable:
        mtime = 0
    except Exception:  # an unreadable revision text
        logger.debug("no date for %s", path, exc_info=True)
        return UNREADABLE_DATE
    try:
        # breezy's format_patch_date, without its warning for times before
        # 1970 (a warning per distinct value: a log any writer can fill)
        return osutils.format_date(mtime, offset=0, date_fmt="%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError, TypeError):
        return UNREADABLE_DATE


class _BoundedDiffText(_mod_diff.DiffText):
    """breezy's text differ within :class:`DiffLimits`: files over them are
    named, not compared, and each diff is written line by line."""

    def __init__(self, old_tree, new_tree, to_file, limits: DiffLimits) -> None:
        super().__init__(
            old_tree, new_tree, to_file, "utf8", OLD_LABEL, NEW_LABEL, unified_diff
        )
        self.limits = limits

    def diff(self, old_path, new_path, old_kind, new_kind):
        """breezy's ``DiffText.diff``, with :func:`_header_date`."""
        if "file" not in (old_kind, new_kind):
            return self.CANNOT_DIFF
        dates = []
        for tree, path, kind in (
            (self.old_tree, old_path, old_kind),
            (self.new_tree, new_path, new_kind),
        ):
            if kind == "file":
                dates.append(_header_date(tree, path))
            elif kind is None:
                dates.append(self.EPOCH_DATE)
            else:
                return self.CANNOT_DIFF
        from_label = f"{self.old_label}{old_path or new_path}\t{dates[0]}"
        to_label = f"{self.new_label}{new_path or old_path}\t{dates[1]}"
        return self.diff_text(old_path, new_path, from_label, to_label)

    def diff_text(self, from_path, to_path, from_label, to_label):
        try:
            old_lines = self._lines(self.old_tree, from_path)
            new_lines = self._lines(self.new_tree, to_path)
        except _TooLarge as e:
            self._note("File too large to diff:", from_path, to_path, f": {e.what}")
            return self.CHANGED
        try:
            self.text_differ(
                from_label,
                old_lines,
                to_label,
                new_lines,
                self.to_file,
                path_encoding=self.path_encoding,
                context_lines=self.context_lines,
            )
        except errors.BinaryFile:
            self._note("Binary files", from_path, to_path, " differ")
        return self.CHANGED

    def _note(self, before: str, from_path, to_path, after: str) -> None:
        """``BEFORE old/PATH and new/PATH AFTER``, as breezy's binary note."""
        text = (
            f"{before} {self.old_label}{from_path or to_path} and "
            f"{self.new_label}{to_path or from_path}{after}\n"
        )
        self.to_file.write(text.encode(self.path_encoding, "replace"))

    def _lines(self, tree, path: str | None) -> list[bytes]:
        """The file's lines; :class:`_TooLarge` past the limits (by the
        inventory's size, without reading it, and by what is read)."""
        if path is None:
            return []
        limit = self.limits.file_bytes
        size = tree.get_file_size(path)
        if size is not None and size > limit:
            raise _TooLarge(f"{size} bytes, more than {limit}")
        chunks, read = [], 0
        try:
            for _, content in tree.iter_files_bytes([(path, None)]):
                for chunk in content:
                    read += len(chunk)
                    if read > limit:  # the inventory understated it
                        raise _TooLarge(f"more than {limit} bytes")
                    chunks.append(chunk)
        except NoSuchFile:
            return []
        text = b"".join(chunks)
        del chunks
        count = text.count(b"\n")
        if count > self.limits.file_lines:
            raise _TooLarge(f"{count} lines, more than {self.limits.file_lines}")
        return osutils.split_lines(text)


def unified_diff(
    old_label: str,
    oldlines: list[bytes],
    new_label: str,
    newlines: list[bytes],
    to_file: BinaryIO,
    path_encoding: str = "utf8",
    context_lines: int = _mod_diff.DEFAULT_CONTEXT_AMOUNT,
) -> None:
    """breezy's ``internal_diff``, byte for byte, writing each line as it is
    generated instead of gathering the whole diff first."""
    textfile.check_text_lines(oldlines)
    textfile.check_text_lines(newlines)
    lines = _mod_diff.unified_diff_bytes(
        oldlines,
        newlines,
        fromfile=old_label.encode(path_encoding, "replace"),
        tofile=new_label.encode(path_encoding, "replace"),
        n=context_lines,
        sequencematcher=patiencediff.PatienceSequenceMatcher,
    )
    wrote = False
    for i, line in enumerate(lines):
        if i == 2:  # the first hunk: /dev/null is "0,0" for patch
            if not oldlines:
                line = line.replace(b"-1,0", b"-0,0")
            elif not newlines:
                line = line.replace(b"+1,0", b"+0,0")
        to_file.write(line)
        if not line.endswith(b"\n"):
            to_file.write(b"\n\\ No newline at end of file\n")
        wrote = True
    if wrote:
        to_file.write(b"\n")
