"""``StoreRequest``: the base of the store's request classes, refused by
their :class:`~.verbs.VerbPolicy` or run with their errors made plain.

breezy private names used (check them on a breezy upgrade):
``SmartServerRequest._backing_transport`` and ``._jail_root``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator

from breezy import errors, trace, urlutils
from breezy.bzr.smart import protocol, request, vfs
from breezy.transport import Transport

from ..store import damage, layout
from ..store.transport import DISK_ERRNOS
from .failures import UNHANDLED_ERROR, log_failure
from .verbs import UNKNOWN_VERB, VerbPolicy

__all__ = [
    "StoreRequest",
    "codebase_of",
    "first_chunk_damage",
]

_V3 = protocol.ProtocolThreeDecoder


logger = logging.getLogger(__name__)


class StoreRequest(request.SmartServerRequest):
    """Base of the store's request classes: a breezy request class, refused
    by its :class:`VerbPolicy` or run with its errors made plain.

    The store's registry holds, for each of breezy's verbs, a subclass of
    this and of breezy's class (see :func:`_store_class`).
    """

    verb: bytes = b""
    policy: VerbPolicy = UNKNOWN_VERB
    _refused = False

    #: The policy's answer to the arguments, once evaluated (``decide``):
    #: the refusal (or None) and the error its check raised (or None).
    _decision: tuple[request.SmartServerResponse | None, Exception | None] | None = None

    def decide(self, args: tuple) -> bool:
        """Evaluate the policy for ``args``, once per request: whether it
        refuses them (a check that fails refuses too: the verb answers its
        error when it runs)."""
        try:
            self._decision = (self.policy.refusal(self, args), None)
        except Exception as e:  # noqa: BLE001 - raised by execute
            self._decision = (None, e)
        refusal, error = self._decision
        return refusal is not None or error is not None

    def execute(self, *args):
        if self._decision is None:
            self.decide(args)
        refusal, error = self._decision
        if error is not None:
            raise error
        if refusal is not None:
            self._refused = True  # nothing runs, nor reads the body
            return refusal
        return self._run(super().execute, *args)

    @property
    def transport(self) -> Transport:
        """The transport of the location the request was sent to."""
        return self._backing_transport

    def translate_client_path(self, client_path: bytes) -> str:
        """breezy's translation of a path argument, refused unless it names
        a place the layout has (:func:`layout.request_path_refusal`): no
        verb reaches a control directory nested anywhere else."""
        relpath = super().translate_client_path(client_path)
        reason = layout.request_path_refusal(
            self._disk_of(relpath, client_path), isinstance(self, vfs.VfsRequest)
        )
        if reason is not None:
            raise errors.PermissionDenied(
                client_path.decode("utf-8", "replace"), reason
            )
        return relpath

    def disk_path(self, client_path: bytes) -> tuple[str, ...]:
        """On-disk path, relative to the codebase directory, of a path
        argument (relative to the request's location)."""
        return self._disk_of(super().translate_client_path(client_path), client_path)

    def _disk_of(self, relpath: str, client_path: bytes) -> tuple[str, ...]:
        url = self._backing_transport.abspath(relpath)
        root = self._jail_root.base
        if not url.startswith(root):  # the jail's own root, outside its codebase
            raise errors.PermissionDenied(
                client_path.decode("utf-8", "replace"), "outside the codebase"
            )
        return layout.to_disk(
            tuple(
                urlutils.unescape(p)
                for p in url[len(root) :].split("/")
                if p not in ("", ".")
            )
        )

    def do_chunk(self, chunk_bytes):
        if not self._refused:
            return self._run(super().do_chunk, chunk_bytes)
        return None

    def do_end(self):
        if not self._refused:
            return self._run(super().do_end)
        return None

    def _run(self, method: Callable, *args):
        """Call ``method``, its disk errors made plain and its failures logged.

        The transport translates the errors of its own calls; this catches
        those of the files it opened (a pack being written by an insert,
        say), which would otherwise reach the client as an internal error.
        Failures that are not the request's own fault (not a breezy error,
        or an internal one: a damaged repository, say) are logged with the
        request id; breezy logs their tracebacks to its own log.
        """
        try:
            return method(*args)
        except OSError as e:
            if e.errno not in DISK_ERRNOS:
                return self._unhandled(e)
            where = urlutils.unescape(self._backing_transport.base.split("://", 1)[-1])
            raise errors.PermissionDenied(
                where.rstrip("/") or "/", e.strerror
            ) from None
        except errors.BzrError as e:
            reason = damage.damage_of(e)
            if reason is not None:
                return self._damaged(reason)
            if e.internal_error:
                log_failure(self.verb, e)
            raise
        except Exception as e:  # noqa: BLE001 - logged, answered generically
            reason = damage.damage_of(e)
            if reason is not None:
                return self._damaged(reason)
            return self._unhandled(e)

    def _damaged(self, reason: str) -> request.FailedSmartServerResponse:
        """The answer to a failure showing the repository damaged, logged."""
        damage.report(codebase_of(self._jail_root), reason)
        self._refused = True
        message = str(damage.DamagedRepository(reason))
        return request.FailedSmartServerResponse((b"error", message.encode("utf-8")))

    def _unhandled(self, e: Exception) -> request.FailedSmartServerResponse:
        """The generic answer to failure ``e`` (not a breezy error), logged;
        the rest of the request's body is ignored."""
        log_failure(self.verb, e)
        trace.log_exception_quietly()
        self._refused = True
        return request.FailedSmartServerResponse(UNHANDLED_ERROR)


def first_chunk_damage(response: request.SmartServerResponse) -> str | None:
    """Produce the first chunk of a streamed response now: the damage of a
    repository it shows, if any (a failure after the stream has started
    reaches a client as a protocol error).  The stream is left whole."""
    body = iter(response.body_stream)
    try:
        first = next(body)
    except StopIteration:
        response.body_stream = iter(())
        return None
    except Exception as e:  # noqa: BLE001 - raised again by the stream
        reason = damage.damage_of(e)
        if reason is None:
            response.body_stream = _raising(e)
        return reason
    response.body_stream = itertools.chain((first,), body)
    return None


def _raising(e: BaseException) -> Iterator[bytes]:
    raise e
    yield b""  # a generator


def codebase_of(jail_root: Transport) -> str:
    """The codebase a jailed root transport (``janitor-store:///NAME/``) is of."""
    return urlutils.unescape(jail_root.base.split("///", 1)[-1].split("/", 1)[0])
