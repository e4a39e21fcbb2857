"""Small injectable policies: which codebases and campaigns exist, who writes.

An embedding application passes its own objects with the same shape:

* a *codebase policy* has ``codebase_exists(name) -> bool`` and, when it
  admits every valid name rather than listing codebases, a true
  ``admits_any_name`` attribute (see :func:`is_listed`);
* a *campaign policy* is any container of names (``name in policy``);
* a *write policy* is a callable ``policy(environ) -> bool`` telling whether
  this WSGI request may write.  If it has a ``realm`` attribute, a write
  refused to an anonymous request is answered with a ``401`` Basic challenge
  for that realm instead of a read-only error.

Any of them may raise :class:`PolicyUnavailable` (answered ``503``) when the
source it consults is down, and a write policy may raise
:class:`Unauthorized` (answered ``401``) for credentials it rejects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..store.layout import is_valid_name

Environ = dict[str, Any]
WritePolicy = Callable[[Environ], bool]


class PolicyUnavailable(Exception):
    """The source a policy consults cannot answer right now (HTTP 503).

    :param retry_after: seconds after which the client may try again
        (sent as ``Retry-After``), if known.
    """

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Unauthorized(Exception):
    """The request carried credentials that were rejected (HTTP 401)."""


class CodebasePolicy(Protocol):
    """Decides which codebases the store serves."""

    def codebase_exists(self, name: str) -> bool:
        """Whether ``name`` is a codebase of the store."""
        ...


class AnyCodebase:
    """Every validly named codebase may exist (the embedded default).

    A codebase of this policy exists once its repository is on disk (a
    codebase of a listing policy exists before that: its repository is
    created by the first write, and reads meanwhile see it empty).
    """

    #: Names every valid codebase rather than a list of them.
    admits_any_name = True

    def codebase_exists(self, name: str) -> bool:
        return is_valid_name(name)


class CodebaseList:
    """A fixed set of codebases."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = frozenset(names)

    def codebase_exists(self, name: str) -> bool:
        return name in self._names


def is_listed(policy: CodebasePolicy, name: str) -> bool:
    """Whether ``policy`` lists ``name`` as one of its codebases: it exists
    even while it has no repository on disk."""
    return not getattr(policy, "admits_any_name", False) and policy.codebase_exists(
        name
    )


class Campaigns:
    """The known campaigns; with no names configured, every valid name.

    :raises ValueError: a name that breaks the naming rule (it could never
        be reached).
    """

    def __init__(self, names: Iterable[str] | None = None) -> None:
        self.names = frozenset(names) if names else None
        for name in sorted(self.names or ()):
            if not is_valid_name(name):
                raise ValueError(f"invalid campaign name: {name!r}")

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not is_valid_name(name):
            return False
        return self.names is None or name in self.names

    def __repr__(self) -> str:
        return f"Campaigns({sorted(self.names) if self.names else 'any'})"


def allow_writes(environ: Environ) -> bool:
    """Write policy of the admin face: everything may write."""
    return True


def read_only(environ: Environ) -> bool:
    """Default write policy of the public face: nothing may write."""
    return False
