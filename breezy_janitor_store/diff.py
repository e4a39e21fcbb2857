"""Unified diffs between two revisions, produced in-process and streamed.

breezy's diff writer runs in a worker thread and hands its output over in
chunks through a bounded queue, so a huge diff never sits in memory and the
first bytes reach the client while the rest is still being computed.  Every
diff has a deadline: when it passes (or the client goes away) the client
gets its answer at once, and the worker stops at its next check: each write
breezy makes, every file's header among them, so at the latest when the
file being compared is done.  The worker is never interrupted elsewhere, so
breezy's objects are never left half-changed.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from breezy import diff as _mod_diff
from breezy.repository import Repository

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_TIMEOUT",
    "DiffStream",
    "DiffTimeout",
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


_ids = itertools.count(1)


class DiffTimeout(TimeoutError):
    """The diff took longer than its time limit."""


class _Stopped(BaseException):
    """Raised by the worker's writes to end it (BaseException: breezy does
    not swallow it; its ``with`` blocks and ``finally`` clauses run)."""


class _Done:
    """End of the stream, with the worker's exception if it failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Writer:
    """The file breezy's diff writer writes to: chunks into a bounded queue."""

    def __init__(self, stream: DiffStream) -> None:
        self._stream = stream
        self._parts: list[bytes] = []
        self._size = 0
        self._sent = False

    def write(self, data: bytes) -> None:
        self._stream.check()
        if isinstance(data, str):
            data = data.encode("utf-8")
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
    """

    def __init__(self, produce: Callable[[BinaryIO], None], timeout: float) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
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
        self._thread.start()

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
        writer = _Writer(self)
        try:
            produce(writer)  # type: ignore[arg-type]
            writer.flush()
            self.put(_Done())
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            try:
                self.put(_Done(e))
            except _Stopped:
                pass

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
) -> None:
    """Write the unified diff from revision ``old`` to ``new`` to ``out``.

    The output is what ``brz diff -r revid:OLD..revid:NEW [PATH]`` prints.

    :raises breezy.errors.PathsNotVersionedError: ``path`` is in neither.
    """
    with repository.lock_read():
        old_tree = repository.revision_tree(old)
        new_tree = repository.revision_tree(new)
        _mod_diff.show_diff_trees(
            old_tree,
            new_tree,
            out,
            specific_files=[path] if path else None,
            old_label=OLD_LABEL,
            new_label=NEW_LABEL,
        )
