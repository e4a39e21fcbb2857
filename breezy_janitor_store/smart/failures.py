"""Error shaping: what a client sees of a failure (a smart error, never a
Python message or a server path), and the failures logged."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from breezy import errors
from breezy.bzr.smart import protocol, request
from fastbencode import bencode

from ..store import damage
from ..store.context import current_request_id

__all__ = [
    "MALFORMED_ARGUMENTS",
    "OBJECT_REPR",
    "UNHANDLED_ERROR",
    "RequestFailed",
    "encodable",
    "is_breezy_error",
    "log_failure",
    "logged",
    "well_formed",
]

_V3 = protocol.ProtocolThreeDecoder


logger = logging.getLogger(__name__)


#: The smart error answering a failure that is not a breezy error (its
#: text, a Python message, is logged with the request id, never sent).
UNHANDLED_ERROR = (b"error", b"the server could not handle this request")


#: The smart error answering a request whose verb is not a byte string or
#: whose arguments are nested deeper than any verb's.
MALFORMED_ARGUMENTS = (
    b"error",
    (
        b"malformed request: a verb and arguments (byte strings, numbers, "
        b"or lists of them) expected"
    ),
)


_ARGUMENT_ATOMS = (bytes, int)


#: A Python object's default repr, as some breezy errors carry.
OBJECT_REPR = re.compile(rb"<[\w.]+ object at 0x[0-9a-f]+>")


def well_formed(args: object) -> bool:
    """Whether ``args`` is a request's structure: a tuple whose first item,
    the verb, is bytes, and whose arguments are byte strings or numbers,
    or flat lists of them (``Repository.get_rev_id_for_revno`` sends a
    pair).

    Looks one level into each argument only, without recursion: it runs
    before anything hashes, compares or formats the structure, whose depth
    the client chooses.
    """
    if not isinstance(args, tuple) or not args or not isinstance(args[0], bytes):
        return False
    for arg in args[1:]:
        if isinstance(arg, _ARGUMENT_ATOMS):
            continue
        if not isinstance(arg, (tuple, list)):
            return False
        if not all(isinstance(item, _ARGUMENT_ATOMS) for item in arg):
            return False
    return True


def is_breezy_error(e: BaseException) -> bool:
    """Whether ``e`` is a breezy error the client may see as it is."""
    return isinstance(e, errors.BzrError) and not e.internal_error


def encodable(response: request.SmartServerResponse) -> request.SmartServerResponse:
    """An error response whose arguments can be encoded.

    breezy answers a stale lock token with ``TokenMismatch`` and the current
    token, None when the lock is no longer held: unencodable, it would cut
    the response short after its first bytes.
    """
    # (the responder encodes str arguments as UTF-8 itself)
    args = tuple(a.encode("utf-8") if isinstance(a, str) else a for a in response.args)
    if args[:1] == (b"PermissionDenied",) and args[2:3] and args[2].startswith(b": "):
        # breezy's PathError keeps its reason as ": reason" and the client
        # adds ": " again: send the reason alone
        args = (*args[:2], args[2][2:], *args[3:])
        response = request.FailedSmartServerResponse(args, response.body)
    try:
        bencode(args)
        return response
    except (TypeError, ValueError):
        pass
    args = tuple(b"" if a is None else a for a in args)
    try:
        bencode(args)
    except (TypeError, ValueError):
        args = (b"error", b"the server could not encode its answer")
    return request.FailedSmartServerResponse(args, response.body)


def log_failure(verb: bytes | None, e: BaseException) -> None:
    logger.warning(
        "smart verb %s failed: %s: %s (request %s)",
        (verb or b"?").decode("ascii", "replace"),
        type(e).__name__,
        e,
        current_request_id(),
    )


class RequestFailed(errors.BzrError):
    """A failure that is not a breezy error, as a response stream ends with
    it (the original is logged)."""

    _fmt = "the server could not handle this request"


def logged(
    chunks: Iterator[bytes], verb: bytes | None, codebase: str = ""
) -> Iterator[bytes]:
    """A response body stream whose failure is logged (with the request id);
    one that is not a breezy error reaches the client as :class:`RequestFailed`,
    one showing a damaged repository as :class:`damage.DamagedRepository`."""
    try:
        yield from chunks
    except Exception as e:
        reason = damage.damage_of(e)
        if reason is not None:
            damage.report(codebase, reason)
            raise damage.DamagedRepository(reason) from None
        log_failure(verb, e)
        if is_breezy_error(e):
            raise
        raise RequestFailed() from None
