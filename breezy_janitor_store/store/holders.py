"""Whom the store takes a lock for: lock records that name the worker.

breezy's ``LockDir`` writes a record (``held/info``, YAML) naming the user,
host and process that took the lock.  Locks the store takes while serving a
smart request are taken on a client's behalf, so while the request runs
(:func:`acting_for`), the record breezy writes through the store's
transport is stamped (:func:`stamp`) with:

* ``user``: the authenticated worker (``REMOTE_USER``), when there is one;
* :data:`CLIENT`: the client's address;
* :data:`REQUEST_ID`: the request's id (as in the access log).

``hostname`` and ``pid`` stay those of the store process holding the lock.
breezy shows ``user`` to a client that finds the lock held, and
:mod:`breezy_janitor_store.store.locks` lists it; :func:`holder_fields` gives the
fields as a dict for any other listing.  Read-only transports (anonymous
clients) never show a lock record (:func:`is_lock_record`): it is absent.
"""

from __future__ import annotations

import contextvars
import json
import re

from breezy.lockdir import LockHeldInfo

from .context import current_request_id
from .layout import CONTROL

__all__ = [
    "CLIENT",
    "REQUEST_ID",
    "acting_for",
    "holder_fields",
    "is_lock_record",
    "is_pending_record",
    "stamp",
]

#: Lock record fields the store adds.
CLIENT = "client"
REQUEST_ID = "request_id"
#: Largest lock record stamped (breezy's are a few hundred bytes).
MAX_RECORD = 64 * 1024

_holder: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "breezy_janitor_store_holder", default=None
)


def acting_for(worker: str | None, client: str | None) -> _ActingFor:
    """Locks taken in this context (and threads started with a copy of it)
    are recorded as taken for ``worker`` at ``client``."""
    holder = {REQUEST_ID: current_request_id()}
    if worker:
        holder["user"] = worker
    if client:
        holder[CLIENT] = client
    return _ActingFor(holder)


class _ActingFor:
    """The context of :func:`acting_for` (a class: it is entered on every
    smart request, and a generator-based context manager costs more)."""

    __slots__ = ("_holder", "_token")

    def __init__(self, holder: dict[str, str]) -> None:
        self._holder = holder

    def __enter__(self) -> None:
        self._token = _holder.set(self._holder)

    def __exit__(self, *exc_info: object) -> None:
        _holder.reset(self._token)


def is_pending_record(disk: tuple[str, ...]) -> bool:
    """Whether on-disk ``disk`` is the record of a lock being taken
    (``.../lock/NAME.tmp/info`` inside a control directory)."""
    return (
        len(disk) >= 3
        and disk[-1] == "info"
        and disk[-2].endswith(".tmp")
        and CONTROL in disk
    )


#: Lock directories of a control directory: breezy's ``LockDir``\ s and the
#: store's pack lock.
LOCK_DIRECTORIES = frozenset({"lock", "pack-lock"})


def is_lock_record(disk: tuple[str, ...]) -> bool:
    """Whether on-disk ``disk`` is a lock record, held or being taken or
    released (``.../lock/ANY/info`` inside a control directory): it names
    the holder, so a face that cannot write does not show it."""
    return (
        len(disk) >= 4
        and disk[-1] == "info"
        and disk[-3] in LOCK_DIRECTORIES
        and CONTROL in disk[:-3]
    )


def stamp(record: bytes) -> bytes:
    """``record`` (a LockDir record) naming the current request's holder;
    unchanged outside a request, or when it is not a record breezy wrote."""
    holder = _holder.get()
    if holder is None or len(record) > MAX_RECORD:
        return record
    if _PLAIN_RECORD.fullmatch(record) and all(
        _PLAIN_VALUE.fullmatch(v) for v in holder.values()
    ):
        # breezy's YAML as written, its fields replaced by lines appended
        kept = (
            line
            for line in _FIELD.findall(record)
            if line.split(b":", 1)[0].decode() not in holder
        )
        added = (f"{k}: {json.dumps(v)}\n".encode() for k, v in holder.items())
        return b"".join(sorted((*kept, *added)))
    try:
        info = LockHeldInfo.from_info_file_bytes(record)
    except Exception:  # noqa: BLE001 - not breezy's record: left as written
        return record
    if not isinstance(info.info_dict, dict) or not info.info_dict.get("nonce"):
        return record
    info.info_dict.update(holder)
    return info.to_bytes()


#: A record breezy's ``LockDir`` wrote for this process: one ``key: value``
#: line per field, values plain (no quoting, no continuation lines).
_PLAIN_RECORD = re.compile(
    rb"(?:[a-z_]+: [\w.@<> +-]*\n)*nonce: \w+\n(?:[a-z_]+: [\w.@<> +-]*\n)*"
)
_FIELD = re.compile(rb"[a-z_]+: [^\n]*\n")
#: A holder value written as a JSON (and so YAML) double-quoted string.
_PLAIN_VALUE = re.compile(r"[ -~]*")


def holder_fields(info: LockHeldInfo) -> dict[str, str | None]:
    """The holder of a lock record: ``user``, ``hostname``, ``pid`` and,
    for locks the store took for a client, :data:`CLIENT` and
    :data:`REQUEST_ID`."""
    fields = ("user", "hostname", "pid", CLIENT, REQUEST_ID)
    return {f: None if info.get(f) is None else str(info.get(f)) for f in fields}
