"""The stream budget: how many heavy streams a process runs at once, shared
fairly between the identities asking.

Every heavy stream (``get_stream``, ``insert_stream`` and friends, and a
file-level answer too large to buffer) holds a *slot* of a
:class:`StreamBudget` while it runs.  Slots are of two kinds, ``writer``
(verbs that may write) and ``reader``; each request is made for an
*identity* (the authenticated worker, or one identity for all anonymous
clients of a face, see ``StoreApp``).  The rule, for each kind:

* at most ``slots`` writers hold a writer slot, and a reader takes a slot
  only while fewer than ``slots`` streams of either kind run (writers never
  wait behind readers);
* with more than one slot, no identity holds more than ``slots - 1`` slots
  of a kind (its *share*): one is always left to somebody else; requests
  made with ``capped=False`` (the trusted admin face's clients without a
  user) are exempt;
* every request joins its kind's queue; whenever a slot is free, it goes
  to the queued request, among those under their share, whose identity
  holds the fewest slots of that kind (first come, first served among
  equals);
* a request that waited :attr:`StreamBudget.wait` seconds without a slot is
  refused (the 503);
* while a request waits for a reader slot it could take, a reader that has
  held its slot longer than :attr:`StreamBudget.preempt_after` seconds must
  move :attr:`StreamBudget.preempt_rate` bytes a second (measured over a
  quarter window) or is cut and its slot goes to the waiter
  (:meth:`StreamBudget.pace`); nothing is cut this way while nobody waits,
  and writers are never.

:class:`RateWatch` cuts a slot's holder that moves its bytes slower than a
floor over a window (a writer's request body; response streams are paced by
the protocol's own sink).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Hashable
from typing import Protocol

__all__ = [
    "ANNOTATE_LIMIT",
    "PROCESS_STREAM_BUDGET",
    "READER",
    "STREAM_MIN_RATE",
    "STREAM_STALL_WINDOW",
    "VFS_READ_LIMIT",
    "WRITER",
    "BudgetObserver",
    "RateWatch",
    "StreamBudget",
]

#: Seconds over which a heavy stream's progress is measured.
STREAM_STALL_WINDOW = 30.0
#: Bytes per second a heavy stream must move (a client taking a response, a
#: writer sending its insert stream), over each :data:`STREAM_STALL_WINDOW`,
#: to keep its slot; a slower one is cut.
STREAM_MIN_RATE = 16 * 1024
#: Stall windows a reader holds its slot before others waiting may take it
#: from a reader slower than :data:`PREEMPT_RATE_FACTOR` times the floor.
PREEMPT_GRACE_WINDOWS = 4
#: How many times the floor a long-held reader slot must move while others wait.
PREEMPT_RATE_FACTOR = 16

WRITER = "writer"
READER = "reader"
_KINDS = (WRITER, READER)

#: Largest answer of a file-level read (``get``, ``readv``): breezy's own
#: client asks ``readv`` for at most this much at once (its
#: ``RemoteTransport._max_readv_bytes``) and ``get`` only for small control
#: files; repository data is read through the repository verbs.
VFS_READ_LIMIT = 5 * 1024 * 1024
#: Largest file ``Repository.annotate_file_revision`` annotates and a diff
#: compares: breezy builds the whole annotation in memory, several times
#: the file's size.
ANNOTATE_LIMIT = VFS_READ_LIMIT


class BudgetObserver(Protocol):
    """What a budget reports (the metrics); every method is called with the
    budget's lock held, and must not call back into the budget."""

    def taken(self, kind: str, new_holder: bool, waited: bool) -> None:
        """A slot of ``kind`` was taken; ``new_holder``: by an identity that
        held none; ``waited``: after queueing."""

    def released(self, kind: str, last_of_holder: bool) -> None:
        """A slot of ``kind`` was given back; ``last_of_holder``: its
        identity now holds none."""

    def waiting(self, kind: str, by: int) -> None:
        """The number of requests waiting for ``kind`` changed by ``by``."""

    def refused(self, kind: str) -> None:
        """A request of ``kind`` waited its time and was refused."""

    def cut(self, kind: str) -> None:
        """A holder of ``kind`` was cut for moving too slowly."""

    def most_held(self, kind: str, count: int) -> None:
        """The most slots of ``kind`` one identity holds is now ``count``."""


#: Observers of every budget (the metrics module adds its own).
OBSERVERS: list[BudgetObserver] = []


class _Waiter:
    __slots__ = ("capped", "first", "granted", "holder", "seq")

    def __init__(self, holder: Hashable, seq: int, capped: bool) -> None:
        self.holder = holder
        self.seq = seq
        self.capped = capped
        self.granted = False
        self.first = False  # its holder held no slot of the kind before


class StreamBudget:
    """How many heavy streams a process runs at once, and who gets the next.

    See the module's documentation for the rule.  A reader's response stream
    keeps its slot only while its client takes at least ``min_rate`` bytes a
    second over each ``stall_window`` seconds; a writer's insert stream only
    while its client sends that fast.

    :param slots: streams of each kind at once (default: the number of CPUs).
    :param wait: seconds a request waits for a slot before it is refused.
    :param stall_window: seconds over which a stream's progress is measured.
    :param min_rate: bytes a second a stream must move.
    """

    def __init__(
        self,
        slots: int | None = None,
        wait: float = 30.0,
        stall_window: float = STREAM_STALL_WINDOW,
        min_rate: float = STREAM_MIN_RATE,
        preempt_rate: float | None = None,
        preempt_after: float | None = None,
    ) -> None:
        self.slots = slots or os.cpu_count() or 1
        self._preempt_rate = preempt_rate
        self._preempt_after = preempt_after
        self.wait = wait
        self.stall_window = stall_window
        self.min_rate = min_rate
        self._lock = threading.Condition()
        self._seq = itertools.count()
        #: streams running (both kinds), and writers among them
        self.in_use = 0
        self.writers = 0
        self._held: dict[str, dict[Hashable, int]] = {k: {} for k in _KINDS}
        self._waiters: dict[str, list[_Waiter]] = {k: [] for k in _KINDS}

    @property
    def preempt_rate(self) -> float:
        """Bytes a second a long-held reader slot must move while others
        wait (default: :data:`PREEMPT_RATE_FACTOR` times the floor)."""
        if self._preempt_rate is not None:
            return self._preempt_rate
        return PREEMPT_RATE_FACTOR * self.min_rate

    @property
    def preempt_after(self) -> float:
        """Seconds a reader holds its slot before :attr:`preempt_rate`
        applies (default: :data:`PREEMPT_GRACE_WINDOWS` stall windows, at
        most half of :attr:`wait`, so a waiter is served before its 503)."""
        if self._preempt_after is not None:
            return self._preempt_after
        return min(PREEMPT_GRACE_WINDOWS * self.stall_window, self.wait / 2)

    def pace(
        self,
        writer: bool,
        holder: Hashable,
        since: float,
        now: float | None = None,
        capped: bool = True,
    ) -> tuple[float, float]:
        """The rate a stream of ``holder`` holding its slot since ``since``
        (``time.monotonic()``) must keep now, and the window it is measured
        over: the floor over a stall window, or, for a reader held past
        :attr:`preempt_after` while a request waits that could take its
        slot, :attr:`preempt_rate` over a quarter of one.  A request made
        with ``capped=False`` (a trusted client's) is never preempted."""
        floor = (self.min_rate, self.stall_window)
        now = time.monotonic() if now is None else now
        if writer or not capped or now - since < self.preempt_after:
            return floor
        with self._lock:
            held = self._held[READER]
            if not any(
                not w.capped
                or held.get(w.holder, 0) - (w.holder == holder) < self.share
                for w in self._waiters[READER]
            ):
                return floor
        return self.preempt_rate, self.stall_window / 4

    @property
    def share(self) -> int:
        """Most slots of a kind one identity may hold."""
        return max(1, self.slots - 1)

    def held(self, holder: Hashable, writer: bool = False) -> int:
        """Slots of a kind ``holder`` holds now."""
        with self._lock:
            return self._held[_kind(writer)].get(holder, 0)

    def waiting(self, writer: bool = False) -> int:
        """Requests waiting for a slot of a kind now."""
        with self._lock:
            return len(self._waiters[_kind(writer)])

    def holders(self, writer: bool = False) -> int:
        """Distinct identities holding a slot of a kind now."""
        with self._lock:
            return len(self._held[_kind(writer)])

    def acquire(
        self, writer: bool = False, holder: Hashable = None, capped: bool = True
    ) -> bool:
        """Take a slot for ``holder``, waiting up to :attr:`wait` seconds in
        the queue; whether one was taken.  ``capped=False`` exempts the
        request from the share (a trusted client's)."""
        kind = _kind(writer)
        with self._lock:
            waiter = _Waiter(holder, next(self._seq), capped)
            self._waiters[kind].append(waiter)
            self._grant()
            if waiter.granted:
                self._taken(kind, waiter, waited=False)
                return True
            _notify("waiting", kind, 1)
            try:
                self._lock.wait_for(lambda: waiter.granted, self.wait)
            finally:
                _notify("waiting", kind, -1)
                if not waiter.granted:
                    self._waiters[kind].remove(waiter)
            if not waiter.granted:
                _notify("refused", kind)
                return False
            self._taken(kind, waiter, waited=True)
            return True

    def release(self, writer: bool = False, holder: Hashable = None) -> None:
        """Give back a slot ``holder`` took."""
        kind = _kind(writer)
        with self._lock:
            self.in_use -= 1
            self.writers -= writer
            held = self._held[kind]
            held[holder] -= 1
            last = held[holder] == 0
            if last:
                del held[holder]
            _notify("released", kind, last)
            _notify("most_held", kind, max(held.values(), default=0))
            self._grant()

    def cut(self, writer: bool = False) -> None:
        """Count a holder cut for moving too slowly (its slot is released
        by whoever holds it)."""
        with self._lock:
            _notify("cut", _kind(writer))

    def _room(self, kind: str) -> bool:
        if kind == WRITER:
            return self.writers < self.slots
        return self.in_use < self.slots

    def _grant(self) -> None:
        """Give free slots to the waiters the rule picks (lock held)."""
        granted = False
        for kind in _KINDS:  # writers first
            waiters, held = self._waiters[kind], self._held[kind]
            while waiters and self._room(kind):
                eligible = [
                    w
                    for w in waiters
                    if not w.capped or held.get(w.holder, 0) < self.share
                ]
                if not eligible:
                    break
                chosen = min(eligible, key=lambda w: (held.get(w.holder, 0), w.seq))
                waiters.remove(chosen)
                chosen.granted = granted = True
                self.in_use += 1
                self.writers += kind == WRITER
                held[chosen.holder] = held.get(chosen.holder, 0) + 1
                chosen.first = held[chosen.holder] == 1
        if granted:
            self._lock.notify_all()

    def _taken(self, kind: str, waiter: _Waiter, waited: bool) -> None:
        _notify("taken", kind, waiter.first, waited)
        _notify("most_held", kind, max(self._held[kind].values(), default=0))


def _kind(writer: bool) -> str:
    return WRITER if writer else READER


def _notify(event: str, *args) -> None:
    for observer in OBSERVERS:
        getattr(observer, event)(*args)


#: The budget of heavy streams shared by every StoreApp of the process that
#: is not given one of its own.
PROCESS_STREAM_BUDGET = StreamBudget()


class RateWatch:
    """Calls ``on_cut`` once when a stream moves fewer than ``min_rate``
    bytes a second over a ``window`` of the time spent waiting for its
    client (time the server itself is busy does not count).

    The stream reports with :meth:`waiting` (around each wait for the
    client) and :meth:`moved`; a thread of the watch checks every quarter
    window, so a client sending nothing at all is cut too.
    """

    def __init__(
        self, min_rate: float, window: float, on_cut: Callable[[], None]
    ) -> None:
        self.min_rate = min_rate
        self.window = window
        self.is_cut = False
        self._on_cut = on_cut
        self._lock = threading.Lock()
        self._waited = 0.0  # seconds waited for the client since the mark
        self._since: float | None = None  # start of the current wait
        self._moved = 0  # bytes since the mark
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="rate-watch", daemon=True
        )
        self._thread.start()

    def waiting(self) -> _Waiting:
        """Context manager around one wait for the client."""
        return _Waiting(self)

    def moved(self, count: int) -> None:
        with self._lock:
            self._moved += count

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.window / 4):
            if self._check():
                self._on_cut()
                return

    def _check(self) -> bool:
        """Whether the stream is too slow (then it is cut); else a new
        window starts once one is over."""
        now = time.monotonic()
        with self._lock:
            waited = self._waited + (now - self._since if self._since else 0.0)
            if waited < self.window:
                return False
            if self._moved < self.min_rate * self.window:
                self.is_cut = True
                return True
            self._waited, self._moved = 0.0, 0
            if self._since is not None:
                self._since = now
            return False


class _Waiting:
    def __init__(self, watch: RateWatch) -> None:
        self._watch = watch

    def __enter__(self) -> None:
        with self._watch._lock:
            self._watch._since = time.monotonic()

    def __exit__(self, *exc) -> None:
        watch = self._watch
        with watch._lock:
            if watch._since is not None:
                watch._waited += time.monotonic() - watch._since
            watch._since = None
